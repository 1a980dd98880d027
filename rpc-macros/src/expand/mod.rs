//! Writing the generated code: the trait with `Send` futures, the client ([`client`]), the server
//! ([`server`]) and the description ([`describe`]). Everything refers to the runtime by absolute
//! paths: `::rpc_core::...`, or the path given with `crate = "..."`; and to the standard library
//! as `::core::...` and `::std::...`, so that it compiles in a `#![no_implicit_prelude]` module.

pub(crate) mod client;
mod describe;
pub(crate) mod server;

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::{parse_quote, Ident, ItemTrait, ReturnType, TraitItem, Visibility};

use crate::attr::CratePath;
use crate::parse::{Method, Service};

/// The names the generated items share.
pub(crate) struct Names {
    pub(crate) vis: Visibility,
    pub(crate) trait_ident: Ident,
    pub(crate) client: Ident,
    pub(crate) server: Ident,
    /// The client's generic parameter (the service calls go through), named so as not to shadow
    /// a user type.
    pub(crate) s: Ident,
    /// The server's generic parameter (the implementation).
    pub(crate) t: Ident,
}

impl Names {
    /// `used` is every identifier the generic parameters must not shadow.
    pub(crate) fn new(item: &ItemTrait, used: &[String]) -> Names {
        let trait_ident = item.ident.clone();
        Names {
            vis: item.vis.clone(),
            client: format_ident!("{}Client", trait_ident),
            server: format_ident!("{}Server", trait_ident),
            s: free_ident(used, &["S", "Svc", "RpcService"]),
            t: free_ident(used, &["T", "Impl", "RpcImpl"]),
            trait_ident,
        }
    }
}

pub(crate) fn expand(svc: &Service, mut item: ItemTrait) -> TokenStream {
    let names = Names::new(&item, &idents_in(svc));
    let args_structs: Vec<TokenStream> = svc
        .methods
        .iter()
        .filter_map(|m| args_struct(svc, &names, m))
        .collect();
    let client = client::expand(svc, &names);
    let server = server::expand(svc, &names);
    rewrite_trait(&mut item);
    quote! {
        #item

        #(#args_structs)*

        #client

        #server
    }
}

/// Every identifier in the argument, reply and error types.
fn idents_in(svc: &Service) -> Vec<String> {
    let mut out = Vec::new();
    for m in &svc.methods {
        for (_, ty) in m.args.iter().chain(&m.requests).chain(&m.replies) {
            idents_of(ty.to_token_stream(), &mut out);
        }
        idents_of(m.ok.to_token_stream(), &mut out);
        idents_of(m.err.to_token_stream(), &mut out);
    }
    out
}

/// Every identifier in `tokens`, groups included.
pub(crate) fn idents_of(tokens: TokenStream, out: &mut Vec<String>) {
    for tt in tokens {
        match tt {
            proc_macro2::TokenTree::Ident(i) => out.push(i.to_string()),
            proc_macro2::TokenTree::Group(g) => idents_of(g.stream(), out),
            _ => {}
        }
    }
}

fn free_ident(used: &[String], candidates: &[&str]) -> Ident {
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

fn args_struct_ident(trait_ident: &Ident, m: &Method) -> Ident {
    format_ident!("__{}{}Args", trait_ident, m.wire_name)
}

/// Several arguments travel as one generated message with a field per argument.
fn args_struct(svc: &Service, n: &Names, m: &Method) -> Option<TokenStream> {
    if m.args.len() < 2 {
        return None;
    }
    let vis = &n.vis;
    let ident = args_struct_ident(&n.trait_ident, m);
    let doc = format!(
        "The arguments of `{}::{}`, carried as one message.",
        n.trait_ident, m.ident
    );
    let fields = m.args.iter().map(|(name, ty)| {
        let doc = format!("The `{name}` argument.");
        quote!(#[doc = #doc] pub #name: #ty,)
    });
    let rpc = &svc.krate;
    let serde_crate = format!("{}::__private::serde", rpc.text());
    Some(quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(missing_debug_implementations, non_camel_case_types)]
        #[derive(#rpc::__private::serde::Serialize, #rpc::__private::serde::Deserialize)]
        #[serde(crate = #serde_crate)]
        #vis struct #ident {
            #(#fields)*
        }
    })
}

/// The request type of a method: the message of its request stream, its one argument, the
/// generated message, or `()`.
fn request_type(trait_ident: &Ident, m: &Method) -> TokenStream {
    if let Some((_, t)) = &m.requests {
        return t.to_token_stream();
    }
    match m.args.len() {
        0 => quote!(()),
        1 => m.args[0].1.to_token_stream(),
        _ => args_struct_ident(trait_ident, m).into_token_stream(),
    }
}

/// Whether a method's request is empty (no argument and no request stream).
fn request_is_unit(m: &Method) -> bool {
    m.requests.is_none() && m.args.is_empty()
}

/// The type of one reply: the message of the reply stream, or the `T` of `Result<T, E>`.
fn response_type(m: &Method) -> &syn::Type {
    m.replies.as_ref().map_or(&m.ok, |(_, t)| t)
}

/// Whether a method's reply is empty.
fn response_is_unit(m: &Method) -> bool {
    m.replies.is_none() && crate::parse::is_unit(&m.ok)
}

fn codecs_of(rpc: &CratePath, ty: &TokenStream, unit: bool) -> TokenStream {
    if unit {
        quote!(#rpc::__private::MessageCodecs::unit())
    } else {
        quote!(#rpc::__private::message_codecs!(#ty))
    }
}
