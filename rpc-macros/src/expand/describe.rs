//! The `DESCRIPTOR`: names, types, attributes and doc comments as a `ServiceDescriptor`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use crate::parse::{Method, Service};

pub(super) fn descriptor(svc: &Service, trait_ident: &Ident) -> TokenStream {
    let rpc = &svc.krate;
    let name = &svc.name;
    let version = &svc.version;
    let docs = &svc.docs;
    let rust_name = trait_ident.to_string();
    let methods = svc.methods.iter().map(|m| {
        let wire = &m.wire_name;
        let rust_name = m.ident.to_string();
        let path = format!("{name}/{wire}");
        let docs = &m.docs;
        let args = m.args.iter().map(|(n, t)| {
            let n = n.to_string();
            let t = type_text(t);
            quote!((#n, #t))
        });
        let request = match m.args.len() {
            _ if m.requests.is_some() => m
                .requests
                .as_ref()
                .map_or_else(String::new, |(_, t)| type_text(t)),
            0 => "()".to_owned(),
            1 => type_text(&m.args[0].1),
            _ => {
                let fields: Vec<String> = m
                    .args
                    .iter()
                    .map(|(n, t)| format!("{n}: {}", type_text(t)))
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }
        };
        let response = type_text(super::response_type(m));
        let error = type_text(&m.err);
        let one_way = m.one_way;
        let client_streaming = m.requests.is_some();
        let server_streaming = m.replies.is_some();
        let idempotent = m.idempotent;
        let timeout = match m.timeout_nanos {
            Some(ns) => {
                quote!(::core::option::Option::Some(::core::time::Duration::from_nanos(#ns)))
            }
            None => quote!(::core::option::Option::None),
        };
        let scope = match &m.scope {
            Some(s) => quote!(::core::option::Option::Some(#s)),
            None => quote!(::core::option::Option::None),
        };
        let schemas = schemas(svc, trait_ident, m);
        quote! {
            #rpc::describe::MethodDescriptor {
                name: #wire,
                rust_name: #rust_name,
                path: #path,
                docs: #docs,
                args: &[#(#args),*],
                request: #request,
                response: #response,
                error: #error,
                one_way: #one_way,
                client_streaming: #client_streaming,
                server_streaming: #server_streaming,
                idempotent: #idempotent,
                timeout: #timeout,
                scope: #scope,
                schemas: #schemas,
            }
        }
    });
    quote! {
        &#rpc::describe::ServiceDescriptor {
            name: #name,
            version: #version,
            rust_name: #rust_name,
            docs: #docs,
            methods: &[#(#methods),*],
        }
    }
}

/// `Some(SchemaFn(f))`, where `f` describes the method's request, response and error: each
/// type's `Schema`, or opaque when it has none (found by the probe, so types without a schema
/// still compile). Several arguments are a message of their own, `{Trait}{Method}Args`.
fn schemas(svc: &Service, trait_ident: &Ident, m: &Method) -> TokenStream {
    let rpc = &svc.krate;
    let schema_mod = quote!(#rpc::codec::schema);
    let of = |ty: &Type| {
        if svc.require_schemas {
            // A type without a schema is a compile error here, at the type.
            quote_spanned!(ty.span()=> <#ty as #schema_mod::Schema>::type_ref(__defs))
        } else {
            quote!(#rpc::__private::message_schema!(#ty, __defs))
        }
    };
    let request = match m.args.len() {
        _ if m.requests.is_some() => {
            let t = m.requests.as_ref().map(|(_, t)| of(t));
            quote!(#t)
        }
        0 => quote!(#schema_mod::TypeRef::Unit),
        1 => of(&m.args[0].1),
        _ => {
            let name = format!("{trait_ident}{}Args", m.wire_name);
            let fields = m.args.iter().map(|(n, t)| {
                let n = n.to_string();
                let t = of(t);
                quote!(#schema_mod::FieldDef::new(#n, #t))
            });
            let docs = format!("The arguments of `{}/{}`, by name.", svc.name, m.wire_name);
            quote! {
                __defs.named(#name, #name, |__defs| {
                    #schema_mod::TypeDef::Message(#schema_mod::MessageDef::new(
                        #docs,
                        ::std::vec![#(#fields),*],
                    ))
                })
            }
        }
    };
    let response = if super::response_is_unit(m) {
        quote!(#schema_mod::TypeRef::Unit)
    } else {
        of(super::response_type(m))
    };
    let error = of(&m.err);
    let req_codecs = super::codecs_of(
        rpc,
        &super::request_type(trait_ident, m),
        super::request_is_unit(m),
    );
    let resp_codecs = super::codecs_of(
        rpc,
        &super::response_type(m).to_token_stream(),
        super::response_is_unit(m),
    );
    quote! {
        ::core::option::Option::Some(#rpc::describe::SchemaFn({
            fn __schemas(
                __defs: &mut #schema_mod::Definitions,
            ) -> #rpc::describe::MethodSchemas {
                #rpc::describe::MethodSchemas {
                    request: #request,
                    response: #response,
                    error: #error,
                    codecs: #req_codecs
                        .supported()
                        .intersection(#resp_codecs.supported()),
                }
            }
            __schemas
        }))
    }
}

/// A type as a person writes it: `Vec<String>` rather than `Vec < String >`.
fn type_text(ty: &Type) -> String {
    let raw = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let tight_after = matches!(prev, '<' | '&' | '(' | '[' | ':');
            let tight_before = matches!(next, '<' | '>' | ',' | ';' | ')' | ']' | ':');
            if tight_after || tight_before {
                continue;
            }
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_as_written() {
        let t = |s: &str| type_text(&syn::parse_str::<Type>(s).unwrap());
        assert_eq!(t("Vec<String>"), "Vec<String>");
        assert_eq!(
            t("std::collections::HashMap<String, Vec<u8>>"),
            "std::collections::HashMap<String, Vec<u8>>"
        );
        assert_eq!(t("(u32, String)"), "(u32, String)");
        assert_eq!(t("[u8; 4]"), "[u8; 4]");
        assert_eq!(t("()"), "()");
    }
}
