//! The error path: the errors, plus what the macro would have generated reduced to stubs (the
//! trait as written, `{Trait}Client` with a method per trait method, `{Trait}Server`), so that
//! code using them still compiles and the user sees the macro's errors alone instead of a cascade
//! of "cannot find type `FooClient`". As in thiserror's `impl/src/fallback.rs`, the stubs' bodies
//! are `unreachable!()`: a crate with these errors never runs.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::{
    parse_quote, FnArg, GenericParam, Generics, ItemTrait, ReturnType, Signature, TraitItem,
    TraitItemFn, Type,
};

use crate::attr::{self, CratePath};
use crate::expand::{client, idents_of, server, Names};
use crate::parse::{context_param, result_parts, RESERVED};

/// `item` is the trait as written, our attributes included.
pub(crate) fn expand(errors: syn::Error, krate: &CratePath, mut item: ItemTrait) -> TokenStream {
    let mut used = Vec::new();
    idents_of(item.to_token_stream(), &mut used);
    let names = Names::new(&item, &used);
    let name = item.ident.unraw().to_string();

    let mut seen = HashSet::new();
    let methods: Vec<TokenStream> = item
        .items
        .iter()
        .filter_map(|i| match i {
            TraitItem::Fn(f) => Some(f),
            _ => None,
        })
        .filter(|f| {
            let ident = f.sig.ident.unraw().to_string();
            !RESERVED.contains(&ident.as_str())
                && ident != "DESCRIPTOR"
                && !f.sig.inputs.iter().any(|input| match input {
                    FnArg::Typed(pt) => mentions(&pt.ty, "Self"),
                    FnArg::Receiver(_) => false,
                })
                && !mentions(&f.sig.output, "Self")
                && seen.insert(ident)
        })
        .map(|f| stub_method(krate, &names, &item.generics, f))
        .collect();
    let client_skeleton = client::skeleton(&names, krate, &name, "1");
    let client_calls = client::calls(&names, krate, methods);

    let descriptor = quote! {
        &#krate::describe::ServiceDescriptor {
            name: #name,
            version: "1",
            rust_name: #name,
            docs: "",
            methods: &[],
        }
    };
    let server_skeleton = server::skeleton(&names, krate, &name, &descriptor);
    let Names { server, t, .. } = &names;

    strip_ours(&mut item);
    let errors = errors.to_compile_error();
    quote! {
        #errors

        #item

        #client_skeleton

        #client_calls

        #server_skeleton

        impl<#t> #krate::server::NamedService for #server<#t> {
            fn service_name(&self) -> &str {
                #name
            }
        }

        impl<#t> #krate::__private::Service<#krate::Request> for #server<#t> {
            type Response = #krate::Response;
            type Error = #krate::Status;
            type Future = #krate::__private::ServerCall;

            fn poll_ready(
                &mut self,
                _: &mut ::core::task::Context<'_>,
            ) -> ::core::task::Poll<::core::result::Result<(), #krate::Status>> {
                ::core::unreachable!()
            }

            fn call(&mut self, _: #krate::Request) -> Self::Future {
                ::core::unreachable!()
            }
        }
    }
}

/// A client method with the arguments of the trait method (the context left out), returning the
/// `UnaryCall` its return type suggests: `Result<T, E>` as is, any other type `R` as
/// `Result<R, Status>`. (Methods that mention `Self` get no stub: in the client it would be
/// another type.)
fn stub_method(
    krate: &CratePath,
    names: &Names,
    trait_generics: &Generics,
    f: &TraitItemFn,
) -> TokenStream {
    let ident = &f.sig.ident;
    let s = &names.s;
    let generics = stub_generics(trait_generics, &f.sig);
    let where_clause = &generics.where_clause;
    let params = f.sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(pt) => {
            let context = context_param(&pt.ty, attr::says_context(&pt.attrs), krate);
            let ty = &pt.ty;
            context.is_none().then(|| quote!(_: #ty))
        }
        FnArg::Receiver(_) => None,
    });
    let status: Type = parse_quote!(#krate::Status);
    let (ok, err) = match &f.sig.output {
        ReturnType::Type(_, ty) => result_parts(ty).unwrap_or_else(|| ((**ty).clone(), status)),
        ReturnType::Default => (parse_quote!(()), status),
    };
    // `impl Trait` cannot be the hidden type of an `unreachable!()` body.
    let unit: Type = parse_quote!(());
    let ok = if mentions(&ok, "impl") {
        unit.clone()
    } else {
        ok
    };
    let err = if mentions(&err, "impl") { unit } else { err };
    let doc = format!("Calls `{ident}` (stub: the service definition has errors).");
    quote! {
        #[doc = #doc]
        pub fn #ident #generics (&self, #(#params),*)
            -> #krate::client::UnaryCall<#s, (), #ok, #err>
        #where_clause
        {
            ::core::unreachable!()
        }
    }
}

/// The method's generic parameters, after those of the trait that its signature names (a
/// generic trait is an error, but its methods may use its parameters), without defaults,
/// lifetimes first.
fn stub_generics(of_trait: &Generics, sig: &Signature) -> Generics {
    let mut named = Vec::new();
    idents_of(sig.inputs.to_token_stream(), &mut named);
    idents_of(sig.output.to_token_stream(), &mut named);
    let param_ident = |p: &GenericParam| match p {
        GenericParam::Lifetime(l) => l.lifetime.ident.to_string(),
        GenericParam::Type(t) => t.ident.to_string(),
        GenericParam::Const(c) => c.ident.to_string(),
    };
    let (used, unused): (Vec<&GenericParam>, Vec<&GenericParam>) = of_trait
        .params
        .iter()
        .partition(|p| named.contains(&param_ident(p)));
    let unused: Vec<String> = unused.into_iter().map(param_ident).collect();

    let mut out = sig.generics.clone();
    let mut lifetimes = Vec::new();
    let mut others = Vec::new();
    for param in used.into_iter().chain(&sig.generics.params) {
        let mut param = param.clone();
        match &mut param {
            GenericParam::Lifetime(_) => {
                lifetimes.push(param);
                continue;
            }
            GenericParam::Type(t) => {
                t.eq_token = None;
                t.default = None;
            }
            GenericParam::Const(c) => {
                c.eq_token = None;
                c.default = None;
            }
        }
        others.push(param);
    }
    out.params = lifetimes.into_iter().chain(others).collect();
    if let Some(trait_where) = &of_trait.where_clause {
        let predicates = trait_where
            .predicates
            .iter()
            .filter(|p| !unused.iter().any(|u| mentions(p, u)))
            .cloned();
        out.make_where_clause().predicates.extend(predicates);
    }
    out
}

/// Whether `tokens` hold the identifier `ident` (`Self` and `impl` are identifiers here).
fn mentions(tokens: impl ToTokens, ident: &str) -> bool {
    let mut idents = Vec::new();
    idents_of(tokens.to_token_stream(), &mut idents);
    idents.iter().any(|i| i == ident)
}

/// Removes the `#[rpc]` attributes of methods and arguments, which mean nothing to rustc.
fn strip_ours(item: &mut ItemTrait) {
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            continue;
        };
        f.attrs.retain(|a| !a.path().is_ident("rpc"));
        for input in &mut f.sig.inputs {
            let attrs = match input {
                FnArg::Typed(pt) => &mut pt.attrs,
                FnArg::Receiver(r) => &mut r.attrs,
            };
            attrs.retain(|a| !a.path().is_ident("rpc"));
        }
    }
}
