//! The `DESCRIPTOR`: names, types, attributes and doc comments as a `ServiceDescriptor`.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{Ident, Type};

use crate::parse::Service;

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
        let response = type_text(&m.ok);
        let error = type_text(&m.err);
        let one_way = m.one_way;
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
                idempotent: #idempotent,
                timeout: #timeout,
                scope: #scope,
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
