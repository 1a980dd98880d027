//! `{Trait}Client<S = Channel>`: a method per trait method, each returning a `UnaryCall`.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

use super::{
    args_struct_ident, codecs_of, request_is_unit, request_type, response_is_unit, response_type,
    Names,
};
use crate::attr::CratePath;
use crate::parse::{is_unit, Method, Service};

pub(super) fn expand(svc: &Service, n: &Names) -> TokenStream {
    let skeleton = skeleton(n, &svc.krate, &svc.name, &svc.version);
    let methods = svc
        .methods
        .iter()
        .enumerate()
        .map(|(i, m)| method(svc, n, i, m));
    let calls = calls(n, &svc.krate, methods);
    quote! {
        #skeleton

        #calls
    }
}

/// The struct and what does not depend on the methods: `new`, `with_codec`, `get_ref`,
/// `into_inner`, `DESCRIPTOR` (the server's), `Clone` and `Debug`. Shared with the error path.
pub(crate) fn skeleton(n: &Names, rpc: &CratePath, name: &str, version: &str) -> TokenStream {
    let Names {
        vis,
        trait_ident,
        client,
        server,
        s,
        ..
    } = n;
    let k = rpc.text();
    let doc = format!(
        "A client of `{name}` (version {version}): one method per method of [`{trait_ident}`].\n\n\
         Each method returns a [`UnaryCall`]({k}::client::UnaryCall): await it, or set \
         per-call options first (`.timeout(..)`, `.codec(..)`, `.metadata(..)`). Calls go through \
         any tower service of [`Request`]({k}::Request)s: a \
         [`Channel`]({k}::Channel), a balanced channel, or either under middleware."
    );
    quote! {
        #[doc = #doc]
        #vis struct #client<#s = #rpc::Channel> {
            inner: #s,
            codec: ::core::option::Option<#rpc::CodecId>,
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
            pub const DESCRIPTOR: &'static #rpc::describe::ServiceDescriptor =
                #server::<()>::DESCRIPTOR;

            /// A client that calls through `inner`. When `inner` is a `Channel`, calls prefer
            /// its `Endpoint::codec`; otherwise Protobuf when both of a method's types support
            /// it, else JSON (the order is `rpc_core::choose_codec`'s); see `with_codec`.
            pub fn new(inner: #s) -> Self
            where
                #s: 'static,
            {
                let codec = #rpc::__private::channel_codec(&inner);
                #client { inner, codec }
            }

            /// Prefers `codec` for every call, instead of the channel's (a call's own
            /// `.codec(..)` still wins).
            #[must_use]
            pub fn with_codec(mut self, codec: #rpc::CodecId) -> Self {
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
    }
}

/// The impl block of the call methods, for clients over a tower service of requests.
pub(crate) fn calls(
    n: &Names,
    rpc: &CratePath,
    methods: impl IntoIterator<Item = TokenStream>,
) -> TokenStream {
    let Names { client, s, .. } = n;
    let methods = methods.into_iter();
    quote! {
        impl<#s> #client<#s>
        where
            #s: #rpc::__private::Service<
                    #rpc::Request,
                    Response = #rpc::Response,
                    Error = #rpc::Status,
                > + ::core::clone::Clone,
        {
            #(#methods)*
        }
    }
}

fn method(svc: &Service, n: &Names, index: usize, m: &Method) -> TokenStream {
    if m.requests.is_some() || m.replies.is_some() {
        return stream_method(svc, n, index, m);
    }
    let rpc = &svc.krate;
    let s = &n.s;
    let ident = &m.ident;
    let ok = &m.ok;
    let err = &m.err;
    let req_ty = request_type(&n.trait_ident, m);
    let params = m.args.iter().map(|(n, t)| quote!(#n: #t));
    let req_expr = request_expr(n, m);
    let req_codecs = codecs_of(rpc, &req_ty, m.args.is_empty());
    let resp_codecs = codecs_of(rpc, &ok.to_token_stream(), is_unit(ok));
    let doc = method_doc(svc, m);
    quote! {
        #[doc = #doc]
        pub fn #ident(&self, #(#params),*) -> #rpc::client::UnaryCall<#s, #req_ty, #ok, #err> {
            #rpc::client::UnaryCall::new(
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

/// The request value from the method's arguments: `()`, the one argument, or the generated
/// message of several.
fn request_expr(n: &Names, m: &Method) -> TokenStream {
    match m.args.len() {
        0 => quote!(()),
        1 => m.args[0].0.to_token_stream(),
        _ => {
            let st = args_struct_ident(&n.trait_ident, m);
            let names = m.args.iter().map(|(n, _)| n);
            quote!(#st { #(#names),* })
        }
    }
}

/// A streaming method: a `StreamCall` of its shape, over a transport that opens streams.
fn stream_method(svc: &Service, n: &Names, index: usize, m: &Method) -> TokenStream {
    let rpc = &svc.krate;
    let s = &n.s;
    let ident = &m.ident;
    let params = m.args.iter().map(|(n, t)| quote!(#n: #t));
    let req_ty = request_type(&n.trait_ident, m);
    let resp_ty = response_type(m);
    let (shape, req_expr) = match (&m.requests, &m.replies) {
        (Some(_), Some(_)) => (quote!(BidiStreaming), quote!(::core::option::Option::None)),
        (Some(_), None) => (
            quote!(ClientStreaming),
            quote!(::core::option::Option::None),
        ),
        _ => {
            let req = request_expr(n, m);
            (
                quote!(ServerStreaming),
                quote!(::core::option::Option::Some(#req)),
            )
        }
    };
    let req_codecs = codecs_of(rpc, &req_ty, request_is_unit(m));
    let resp_codecs = codecs_of(rpc, &resp_ty.to_token_stream(), response_is_unit(m));
    let doc = method_doc(svc, m);
    quote! {
        #[doc = #doc]
        pub fn #ident(
            &self,
            #(#params),*
        ) -> #rpc::client::StreamCall<#s, #req_ty, #resp_ty, #rpc::client::#shape>
        where
            #s: #rpc::client::OpenStream,
        {
            #rpc::client::StreamCall::new(
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

/// The method's own docs, then its path and what its attributes say.
fn method_doc(svc: &Service, m: &Method) -> String {
    let mut doc = m.docs.clone();
    if !doc.is_empty() {
        doc.push_str("\n\n");
    }
    doc.push_str(&format!("Calls `{}/{}`", svc.name, m.wire_name));
    let mut notes = Vec::new();
    match (&m.requests, &m.replies) {
        (Some(_), Some(_)) => notes.push(
            "streams both ways: awaited, it gives the `Sender` of the requests and the \
             `Streaming` of the replies"
                .to_owned(),
        ),
        (Some(_), None) => notes.push(
            "client stream: awaited, it gives the `Sender` of the requests and the `Reply`"
                .to_owned(),
        ),
        (None, Some(_)) => {
            notes.push("server stream: awaited, it gives the `Streaming` of the replies".to_owned())
        }
        (None, None) => {}
    }
    if m.one_way {
        notes.push(
            "one-way: the server sends no reply; `Ok` once the server is known to have taken the \
             request (see `Channel`'s one-way calls)"
                .to_owned(),
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
    doc
}

fn human_duration(nanos: u64) -> String {
    match nanos {
        n if n.is_multiple_of(1_000_000_000) => format!("{} s", n / 1_000_000_000),
        n if n.is_multiple_of(1_000_000) => format!("{} ms", n / 1_000_000),
        n if n.is_multiple_of(1_000) => format!("{} µs", n / 1_000),
        n => format!("{n} ns"),
    }
}
