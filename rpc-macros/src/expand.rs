//! Writing the generated code: the trait with `Send` futures, the client, the server and the
//! description. Everything refers to the runtime by absolute paths (`::rpc_core::...`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote, ItemTrait, ReturnType, TraitItem, Type};

use crate::parse::{is_unit, ContextArg, Method, Service};

pub(crate) fn expand(svc: &Service, mut item: ItemTrait) -> TokenStream {
    let vis = item.vis.clone();
    let trait_ident = item.ident.clone();
    let client = format_ident!("{}Client", trait_ident);
    let server = format_ident!("{}Server", trait_ident);
    // The generic parameters of the client and server, named so as not to shadow a user type.
    let used = idents_in(svc);
    let s = free_ident(&used, &["S", "Svc", "RpcService"]);
    let t = free_ident(&used, &["T", "Impl", "RpcImpl"]);

    let args_structs: Vec<TokenStream> = svc
        .methods
        .iter()
        .filter_map(|m| args_struct(&trait_ident, &vis, m))
        .collect();
    let descriptor = descriptor(svc, &trait_ident);
    let client_methods = svc
        .methods
        .iter()
        .enumerate()
        .map(|(i, m)| client_method(svc, &trait_ident, &s, i, m));
    let route_arms = svc
        .methods
        .iter()
        .enumerate()
        .map(|(i, m)| route_arm(&trait_ident, &t, i, m));
    rewrite_trait(&mut item);

    let name = &svc.name;
    let trait_link = format!("[`{trait_ident}`]");
    let client_doc = format!(
        "A client of `{name}` (version {}): one method per method of {trait_link}.\n\n\
         Each method returns a [`UnaryCall`](::rpc_core::client::UnaryCall): await it, or set \
         per-call options first (`.timeout(..)`, `.codec(..)`, `.metadata(..)`). Calls go through \
         any tower service of [`Request`](::rpc_core::Request)s: a \
         [`Channel`](::rpc_core::Channel), a balanced channel, or either under middleware.",
        svc.version
    );
    let server_doc = format!(
        "Serves an implementation of {trait_link} as `{name}`: decodes each request in the \
         codec it arrived in, calls the method, encodes the reply. Mount it with \
         [`Server::add_service`](::rpc_core::Server::add_service); it is also a tower service."
    );

    quote! {
        #item

        #(#args_structs)*

        #[doc = #client_doc]
        #vis struct #client<#s = ::rpc_core::Channel> {
            inner: #s,
            codec: ::core::option::Option<::rpc_core::CodecId>,
        }

        impl<#s: ::core::clone::Clone> ::core::clone::Clone for #client<#s> {
            fn clone(&self) -> Self {
                #client { inner: ::core::clone::Clone::clone(&self.inner), codec: self.codec }
            }
        }

        impl<#s: ::core::fmt::Debug> ::core::fmt::Debug for #client<#s> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#client))
                    .field("service", &#name)
                    .field("inner", &self.inner)
                    .field("codec", &self.codec)
                    .finish()
            }
        }

        impl<#s> #client<#s> {
            /// The description of the service.
            pub const DESCRIPTOR: &'static ::rpc_core::describe::ServiceDescriptor =
                #server::<()>::DESCRIPTOR;

            /// A client that calls through `inner`. Calls use Protobuf when both of a method's
            /// types support it, else the first codec both do; see `with_codec`.
            pub fn new(inner: #s) -> Self {
                #client { inner, codec: ::core::option::Option::None }
            }

            /// Prefers `codec` for every call (a call's own `.codec(..)` still wins).
            #[must_use]
            pub fn with_codec(mut self, codec: ::rpc_core::CodecId) -> Self {
                self.codec = ::core::option::Option::Some(codec);
                self
            }

            /// The service calls go through.
            pub fn get_ref(&self) -> &#s {
                &self.inner
            }

            /// Takes back the service calls go through.
            pub fn into_inner(self) -> #s {
                self.inner
            }
        }

        impl<#s> #client<#s>
        where
            #s: ::rpc_core::__private::Service<
                    ::rpc_core::Request,
                    Response = ::rpc_core::Response,
                    Error = ::rpc_core::Status,
                > + ::core::clone::Clone,
        {
            #(#client_methods)*
        }

        #[doc = #server_doc]
        #vis struct #server<#t> {
            inner: ::std::sync::Arc<#t>,
        }

        impl<#t> #server<#t> {
            /// The description of the service.
            pub const DESCRIPTOR: &'static ::rpc_core::describe::ServiceDescriptor = #descriptor;

            /// Serves `service`.
            pub fn new(service: #t) -> Self {
                #server { inner: ::std::sync::Arc::new(service) }
            }

            /// Serves a service that is shared with other code.
            pub fn from_arc(service: ::std::sync::Arc<#t>) -> Self {
                #server { inner: service }
            }

            /// The service being served.
            pub fn get_ref(&self) -> &#t {
                &self.inner
            }
        }

        impl<#t> ::core::clone::Clone for #server<#t> {
            fn clone(&self) -> Self {
                #server { inner: ::core::clone::Clone::clone(&self.inner) }
            }
        }

        impl<#t> ::core::fmt::Debug for #server<#t> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#server))
                    .field("service", &#name)
                    .finish_non_exhaustive()
            }
        }

        impl<#t: #trait_ident> #server<#t> {
            async fn __rpc_route(
                __rpc_inner: ::std::sync::Arc<#t>,
                __rpc_req: ::rpc_core::Request,
            ) -> ::core::result::Result<::rpc_core::Response, ::rpc_core::Status> {
                let __rpc_codec = __rpc_req.codec();
                match __rpc_req.method() {
                    #(#route_arms)*
                    __rpc_other => ::core::result::Result::Err(
                        ::rpc_core::__private::unknown_method(#name, __rpc_other),
                    ),
                }
            }
        }

        impl<#t: #trait_ident> ::rpc_core::__private::Dispatch for #server<#t> {
            fn dispatch(
                &self,
                req: ::rpc_core::Request,
                ctx: ::rpc_core::Context,
                deadline: ::core::option::Option<::rpc_core::__private::Instant>,
            ) -> ::rpc_core::__private::ServerCall {
                ::rpc_core::__private::server_call(
                    ctx,
                    deadline,
                    Self::__rpc_route(::core::clone::Clone::clone(&self.inner), req),
                )
            }
        }

        impl<#t: #trait_ident> ::rpc_core::server::NamedService for #server<#t> {
            fn service_name(&self) -> &str {
                #name
            }

            fn descriptor(
                &self,
            ) -> ::core::option::Option<&'static ::rpc_core::describe::ServiceDescriptor> {
                ::core::option::Option::Some(Self::DESCRIPTOR)
            }

            fn __dispatcher(
                &self,
            ) -> ::core::option::Option<::std::sync::Arc<dyn ::rpc_core::__private::Dispatch>> {
                ::core::option::Option::Some(::std::sync::Arc::new(::core::clone::Clone::clone(self)))
            }
        }

        impl<#t: #trait_ident> ::rpc_core::__private::Service<::rpc_core::Request> for #server<#t> {
            type Response = ::rpc_core::Response;
            type Error = ::rpc_core::Status;
            type Future = ::rpc_core::__private::ServerCall;

            fn poll_ready(
                &mut self,
                _cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::core::result::Result<(), ::rpc_core::Status>> {
                ::core::task::Poll::Ready(::core::result::Result::Ok(()))
            }

            fn call(&mut self, req: ::rpc_core::Request) -> Self::Future {
                ::std::boxed::Box::pin(Self::__rpc_route(
                    ::core::clone::Clone::clone(&self.inner),
                    req,
                ))
            }
        }
    }
}

/// Every identifier in the argument, reply and error types.
fn idents_in(svc: &Service) -> Vec<String> {
    fn walk(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                proc_macro2::TokenTree::Ident(i) => out.push(i.to_string()),
                proc_macro2::TokenTree::Group(g) => walk(g.stream(), out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for m in &svc.methods {
        for (_, ty) in &m.args {
            walk(ty.to_token_stream(), &mut out);
        }
        walk(m.ok.to_token_stream(), &mut out);
        walk(m.err.to_token_stream(), &mut out);
    }
    out
}

fn free_ident(used: &[String], candidates: &[&str]) -> syn::Ident {
    let name = candidates
        .iter()
        .find(|c| !used.iter().any(|u| u == *c))
        .copied()
        .unwrap_or("__RpcGeneric");
    format_ident!("{}", name)
}

/// `async fn m(&self, ..) -> R` becomes `fn m(&self, ..) -> impl Future<Output = R> + Send`, so
/// that servers can run handlers on any thread; implementations still write `async fn`.
fn rewrite_trait(item: &mut ItemTrait) {
    item.supertraits.push(parse_quote!(::core::marker::Send));
    item.supertraits.push(parse_quote!(::core::marker::Sync));
    item.supertraits.push(parse_quote!('static));
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            continue;
        };
        f.sig.asyncness = None;
        let output = match &f.sig.output {
            ReturnType::Type(_, ty) => ty.to_token_stream(),
            ReturnType::Default => quote!(()),
        };
        f.sig.output = parse_quote! {
            -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        };
        if let Some(block) = f.default.take() {
            f.default = Some(parse_quote!({ async move #block }));
        }
    }
}

fn args_struct_ident(trait_ident: &syn::Ident, m: &Method) -> syn::Ident {
    format_ident!("__{}{}Args", trait_ident, m.wire_name)
}

/// Several arguments travel as one generated message with a field per argument.
fn args_struct(trait_ident: &syn::Ident, vis: &syn::Visibility, m: &Method) -> Option<TokenStream> {
    if m.args.len() < 2 {
        return None;
    }
    let ident = args_struct_ident(trait_ident, m);
    let doc = format!(
        "The arguments of `{trait_ident}::{}`, carried as one message.",
        m.ident
    );
    let fields = m.args.iter().map(|(name, ty)| {
        let doc = format!("The `{name}` argument.");
        quote!(#[doc = #doc] pub #name: #ty,)
    });
    Some(quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(missing_debug_implementations, non_camel_case_types)]
        #[derive(::rpc_core::__private::serde::Serialize, ::rpc_core::__private::serde::Deserialize)]
        #[serde(crate = "::rpc_core::__private::serde")]
        #vis struct #ident {
            #(#fields)*
        }
    })
}

/// The request type of a method: its one argument, the generated message, or `()`.
fn request_type(trait_ident: &syn::Ident, m: &Method) -> TokenStream {
    match m.args.len() {
        0 => quote!(()),
        1 => m.args[0].1.to_token_stream(),
        _ => args_struct_ident(trait_ident, m).into_token_stream(),
    }
}

fn codecs_of(ty: &TokenStream, unit: bool) -> TokenStream {
    if unit {
        quote!(::rpc_core::__private::MessageCodecs::unit())
    } else {
        quote!(::rpc_core::__private::message_codecs!(#ty))
    }
}

fn client_method(
    svc: &Service,
    trait_ident: &syn::Ident,
    s: &syn::Ident,
    index: usize,
    m: &Method,
) -> TokenStream {
    let ident = &m.ident;
    let ok = &m.ok;
    let err = &m.err;
    let req_ty = request_type(trait_ident, m);
    let params = m.args.iter().map(|(n, t)| quote!(#n: #t));
    let req_expr = match m.args.len() {
        0 => quote!(()),
        1 => m.args[0].0.to_token_stream(),
        _ => {
            let s = args_struct_ident(trait_ident, m);
            let names = m.args.iter().map(|(n, _)| n);
            quote!(#s { #(#names),* })
        }
    };
    let req_codecs = codecs_of(&req_ty, m.args.is_empty());
    let resp_codecs = codecs_of(&ok.to_token_stream(), is_unit(ok));
    let mut doc = m.docs.clone();
    if !doc.is_empty() {
        doc.push_str("\n\n");
    }
    doc.push_str(&format!("Calls `{}/{}`", svc.name, m.wire_name));
    let mut notes = Vec::new();
    if m.one_way {
        notes.push(
            "one-way: returns once the request is sent; the server sends no reply".to_owned(),
        );
    }
    if m.idempotent {
        notes.push("idempotent: retries and hedging may repeat it".to_owned());
    }
    if let Some(ns) = m.timeout_nanos {
        notes.push(format!("default timeout {}", human_duration(ns)));
    }
    if notes.is_empty() {
        doc.push('.');
    } else {
        doc.push_str(&format!(" ({}).", notes.join("; ")));
    }
    quote! {
        #[doc = #doc]
        pub fn #ident(&self, #(#params),*) -> ::rpc_core::client::UnaryCall<#s, #req_ty, #ok, #err> {
            ::rpc_core::client::UnaryCall::new(
                ::core::clone::Clone::clone(&self.inner),
                &Self::DESCRIPTOR.methods[#index],
                #req_expr,
                #req_codecs,
                #resp_codecs,
                self.codec,
            )
        }
    }
}

fn route_arm(trait_ident: &syn::Ident, t: &syn::Ident, index: usize, m: &Method) -> TokenStream {
    let wire = &m.wire_name;
    let ident = &m.ident;
    let req_ty = request_type(trait_ident, m);
    let req_codecs = codecs_of(&req_ty, m.args.is_empty());
    let resp_codecs = codecs_of(&m.ok.to_token_stream(), is_unit(&m.ok));
    let (split, ctx_arg) = match m.context {
        ContextArg::None => (quote!(let __rpc_body = __rpc_req.into_body();), quote!()),
        ContextArg::ByRef => (
            quote!(let (__rpc_ctx, __rpc_body) = __rpc_req.into_parts();),
            quote!(&__rpc_ctx,),
        ),
        ContextArg::ByValue => (
            quote!(let (__rpc_ctx, __rpc_body) = __rpc_req.into_parts();),
            quote!(__rpc_ctx,),
        ),
    };
    let names: Vec<&syn::Ident> = m.args.iter().map(|(n, _)| n).collect();
    // Spanned at the error type, so that an error type that is not a `ServiceError` is reported
    // there.
    let encode = quote_spanned! {m.err.span()=>
        ::rpc_core::__private::encode_reply(#resp_codecs, __rpc_codec, __rpc_result)
    };
    let decode = match m.args.len() {
        0 => quote!(let _ = __rpc_body;),
        1 => {
            let n = names[0];
            quote! {
                let #n: #req_ty = ::rpc_core::__private::decode_request(
                    &Self::DESCRIPTOR.methods[#index], #req_codecs, __rpc_codec, __rpc_body,
                )?;
            }
        }
        _ => {
            let s = args_struct_ident(trait_ident, m);
            quote! {
                let #s { #(#names),* } = ::rpc_core::__private::decode_request(
                    &Self::DESCRIPTOR.methods[#index], #req_codecs, __rpc_codec, __rpc_body,
                )?;
            }
        }
    };
    quote! {
        #wire => {
            #split
            #decode
            let __rpc_result = <#t as #trait_ident>::#ident(&*__rpc_inner, #ctx_arg #(#names),*).await;
            #encode
        }
    }
}

fn descriptor(svc: &Service, trait_ident: &syn::Ident) -> TokenStream {
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
        quote! {
            ::rpc_core::describe::MethodDescriptor {
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
            }
        }
    });
    quote! {
        &::rpc_core::describe::ServiceDescriptor {
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

fn human_duration(nanos: u64) -> String {
    match nanos {
        n if n.is_multiple_of(1_000_000_000) => format!("{} s", n / 1_000_000_000),
        n if n.is_multiple_of(1_000_000) => format!("{} ms", n / 1_000_000),
        n if n.is_multiple_of(1_000) => format!("{} µs", n / 1_000),
        n => format!("{n} ns"),
    }
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
