//! `{Trait}Server<T>`: routes each request to the method of `T` it names, decoding and encoding in
//! the request's codec; mounts on `Server` and is a tower service.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;

use super::{args_struct_ident, codecs_of, describe, request_type, Names};
use crate::attr::CratePath;
use crate::parse::{is_unit, Method, Service};

pub(super) fn expand(svc: &Service, n: &Names) -> TokenStream {
    let rpc = &svc.krate;
    let Names {
        trait_ident,
        server,
        t,
        ..
    } = n;
    let name = &svc.name;
    let skeleton = skeleton(n, rpc, name, &describe::descriptor(svc, trait_ident));
    let route_arms = svc
        .methods
        .iter()
        .enumerate()
        .map(|(i, m)| route_arm(rpc, n, i, m));
    quote! {
        #skeleton

        impl<#t: #trait_ident> #server<#t> {
            async fn __rpc_route(
                __rpc_inner: ::std::sync::Arc<#t>,
                __rpc_req: #rpc::Request,
            ) -> ::core::result::Result<#rpc::Response, #rpc::Status> {
                let __rpc_codec = __rpc_req.codec();
                match __rpc_req.method() {
                    #(#route_arms)*
                    __rpc_other => ::core::result::Result::Err(
                        #rpc::__private::unknown_method(#name, __rpc_other),
                    ),
                }
            }
        }

        impl<#t: #trait_ident> #rpc::__private::Dispatch for #server<#t> {
            fn dispatch(
                &self,
                req: #rpc::Request,
                ctx: #rpc::Context,
                deadline: ::core::option::Option<#rpc::__private::Instant>,
            ) -> #rpc::__private::ServerCall {
                #rpc::__private::server_call(
                    ctx,
                    deadline,
                    Self::__rpc_route(::core::clone::Clone::clone(&self.inner), req),
                )
            }
        }

        impl<#t: #trait_ident> #rpc::server::NamedService for #server<#t> {
            fn service_name(&self) -> &str {
                #name
            }

            fn descriptor(
                &self,
            ) -> ::core::option::Option<&'static #rpc::describe::ServiceDescriptor> {
                ::core::option::Option::Some(Self::DESCRIPTOR)
            }

            fn __dispatcher(
                &self,
            ) -> ::core::option::Option<::std::sync::Arc<dyn #rpc::__private::Dispatch>> {
                ::core::option::Option::Some(::std::sync::Arc::new(::core::clone::Clone::clone(self)))
            }
        }

        impl<#t: #trait_ident> #rpc::__private::Service<#rpc::Request> for #server<#t> {
            type Response = #rpc::Response;
            type Error = #rpc::Status;
            type Future = #rpc::__private::ServerCall;

            fn poll_ready(
                &mut self,
                _cx: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::core::result::Result<(), #rpc::Status>> {
                ::core::task::Poll::Ready(::core::result::Result::Ok(()))
            }

            fn call(&mut self, req: #rpc::Request) -> Self::Future {
                ::std::boxed::Box::pin(Self::__rpc_route(
                    ::core::clone::Clone::clone(&self.inner),
                    req,
                ))
            }
        }
    }
}

/// The struct and what does not depend on the methods: `DESCRIPTOR`, `new`, `from_arc`,
/// `get_ref`, `Clone` and `Debug`. Shared with the error path.
pub(crate) fn skeleton(
    n: &Names,
    rpc: &CratePath,
    name: &str,
    descriptor: &TokenStream,
) -> TokenStream {
    let Names {
        vis,
        trait_ident,
        server,
        t,
        ..
    } = n;
    let doc = format!(
        "Serves an implementation of [`{trait_ident}`] as `{name}`: decodes each request in the \
         codec it arrived in, calls the method, encodes the reply. Mount it with \
         [`Server::add_service`]({}::Server::add_service); it is also a tower service.",
        rpc.text()
    );
    quote! {
        #[doc = #doc]
        #vis struct #server<#t> {
            inner: ::std::sync::Arc<#t>,
        }

        impl<#t> #server<#t> {
            /// The description of the service.
            pub const DESCRIPTOR: &'static #rpc::describe::ServiceDescriptor = #descriptor;

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
    }
}

fn route_arm(rpc: &CratePath, n: &Names, index: usize, m: &Method) -> TokenStream {
    let Names { trait_ident, t, .. } = n;
    let wire = &m.wire_name;
    let ident = &m.ident;
    let req_ty = request_type(trait_ident, m);
    let req_codecs = codecs_of(rpc, &req_ty, m.args.is_empty());
    let resp_codecs = codecs_of(rpc, &m.ok.to_token_stream(), is_unit(&m.ok));
    // The streams go into the handler as they were written among its arguments; taken from the
    // request before its body (a call of another shape is answered `Unimplemented`).
    let take_requests = m.requests.as_ref().map(|(name, t)| {
        let codecs = codecs_of(rpc, &t.to_token_stream(), false);
        quote!(let #name = #rpc::__private::stream_requests(&__rpc_req, #codecs)?;)
    });
    let take_replies = m.replies.as_ref().map(|(name, t)| {
        let codecs = codecs_of(rpc, &t.to_token_stream(), false);
        quote!(let #name = #rpc::__private::stream_sender(&__rpc_req, #codecs)?;)
    });
    // The context goes through `CallContext`, which only the runtime's `Context` implements:
    // spanned at the argument's type, so that a type of the user's taken for the context is
    // reported there.
    let (split, ctx_arg) = match &m.context {
        None => (quote!(let __rpc_body = __rpc_req.into_body();), quote!()),
        Some(c) => {
            let ty = &c.ty;
            let rpc = rpc.at(ty.span());
            let take = if c.by_ref {
                quote_spanned! {ty.span()=>
                    <#ty as #rpc::__private::CallContext>::by_ref(&__rpc_ctx),
                }
            } else {
                quote_spanned! {ty.span()=>
                    <#ty as #rpc::__private::CallContext>::by_value(__rpc_ctx),
                }
            };
            (
                quote!(let (__rpc_ctx, __rpc_body) = __rpc_req.into_parts();),
                take,
            )
        }
    };
    let names: Vec<&syn::Ident> = m.args.iter().map(|(n, _)| n).collect();
    let call_order = &m.call_order;
    // Spanned at the error type, so that an error type that is not a `ServiceError` is reported
    // there.
    let rpc_at_err = rpc.at(m.err.span());
    let encode = quote_spanned! {m.err.span()=>
        #rpc_at_err::__private::encode_reply(#resp_codecs, __rpc_codec, __rpc_result)
    };
    let decode = match m.args.len() {
        0 => quote!(let _ = __rpc_body;),
        1 => {
            let n = names[0];
            quote! {
                let #n: #req_ty = #rpc::__private::decode_request(
                    &Self::DESCRIPTOR.methods[#index], #req_codecs, __rpc_codec, __rpc_body,
                )?;
            }
        }
        _ => {
            let s = args_struct_ident(trait_ident, m);
            quote! {
                let #s { #(#names),* } = #rpc::__private::decode_request(
                    &Self::DESCRIPTOR.methods[#index], #req_codecs, __rpc_codec, __rpc_body,
                )?;
            }
        }
    };
    quote! {
        #wire => {
            #take_requests
            #take_replies
            #split
            #decode
            let __rpc_result =
                <#t as #trait_ident>::#ident(&*__rpc_inner, #ctx_arg #(#call_order),*).await;
            #encode
        }
    }
}
