//! Reading a `#[service]` trait: its methods, the call context, and every check that gives a
//! clear error.

use std::collections::HashMap;

use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemTrait, Lit, Pat, PathArguments,
    ReturnType, TraitItem, TraitItemFn, Type, TypePath,
};

use crate::attr::{self, CratePath, ServiceArgs};
use crate::errors::Errors;

/// Names the generated client already uses for its own methods.
pub(crate) const RESERVED: &[&str] = &["new", "with_codec", "get_ref", "into_inner"];

/// The argument that receives the call's context.
pub(crate) struct ContextParam {
    /// `&Context` rather than `Context`.
    pub(crate) by_ref: bool,
    /// Its type as written, without the `&`.
    pub(crate) ty: Type,
}

/// One method of the trait.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    pub(crate) docs: String,
    pub(crate) one_way: bool,
    pub(crate) idempotent: bool,
    pub(crate) timeout_nanos: Option<u64>,
    /// The scope a caller needs, from `#[rpc(scope = "...")]`.
    pub(crate) scope: Option<String>,
    pub(crate) context: Option<ContextParam>,
    /// Arguments after `&self` and the context, but for the streams.
    pub(crate) args: Vec<(Ident, Type)>,
    /// A `Streaming<T>` argument: the client streams its requests, each a `T`.
    pub(crate) requests: Option<(Ident, Type)>,
    /// A `Sender<T>` argument: the server streams its replies, each a `T`.
    pub(crate) replies: Option<(Ident, Type)>,
    /// Every argument after the context, streams included, in the order written.
    pub(crate) call_order: Vec<Ident>,
    pub(crate) ok: Type,
    pub(crate) err: Type,
}

/// The whole definition.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) docs: String,
    pub(crate) methods: Vec<Method>,
    /// Where the generated code finds the runtime.
    pub(crate) krate: CratePath,
    /// Every message type must have a `Schema`.
    pub(crate) require_schemas: bool,
}

/// Reads the trait, removing the `#[rpc]` attributes it consumes. `errors` holds those found in
/// `args`; all are reported together.
pub(crate) fn parse(
    args: ServiceArgs,
    item: &mut ItemTrait,
    mut errors: Errors,
) -> syn::Result<Service> {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.on(
            &item.generics,
            "`#[service]` traits cannot be generic: each method has one concrete type on the wire",
        );
    }
    if let Some(unsafety) = &item.unsafety {
        errors.at(unsafety.span(), "`#[service]` traits cannot be `unsafe`");
    }
    let mut methods = Vec::new();
    let mut wire_names: HashMap<String, Ident> = HashMap::new();
    for trait_item in &mut item.items {
        let TraitItem::Fn(f) = trait_item else {
            errors.on(
                &*trait_item,
                "a `#[service]` trait holds only `async fn` methods",
            );
            continue;
        };
        let Some(m) = parse_method(f, &args.krate, &mut errors) else {
            continue;
        };
        if let Some(first) = wire_names.get(&m.wire_name) {
            errors.at(
                m.ident.span(),
                format!(
                    "duplicate wire name `{}`: method `{first}` already uses it; give one of them \
                     another with `#[rpc(name = \"...\")]`",
                    m.wire_name
                ),
            );
        } else {
            wire_names.insert(m.wire_name.clone(), m.ident.clone());
        }
        methods.push(m);
    }
    errors.finish()?;
    Ok(Service {
        name: args
            .name
            .map_or_else(|| item.ident.unraw().to_string(), |l| l.value()),
        version: args.version.unwrap_or_else(|| "1".to_owned()),
        docs: docs_of(&item.attrs),
        methods,
        krate: args.krate,
        require_schemas: args.require_schemas,
    })
}

fn parse_method(f: &mut TraitItemFn, krate: &CratePath, errors: &mut Errors) -> Option<Method> {
    let before = errors.count();
    let attrs = attr::method_attrs(&mut f.attrs, errors);
    let marks: Vec<bool> = f
        .sig
        .inputs
        .iter_mut()
        .map(|input| match input {
            FnArg::Typed(pt) => attr::param_attrs(&mut pt.attrs, errors),
            FnArg::Receiver(r) => {
                if attr::param_attrs(&mut r.attrs, errors) {
                    errors.on(&*r, "`#[rpc(context)]` goes on the argument after `&self`");
                }
                false
            }
        })
        .collect();
    let sig = &f.sig;
    let ident = sig.ident.clone();
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span(),
            format!(
                "`{ident}` must be an `async fn`: `#[service]` methods are called over the network"
            ),
        );
    }
    if let Some(c) = &sig.constness {
        errors.at(c.span(), "`#[service]` methods cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.at(u.span(), "`#[service]` methods cannot be `unsafe`");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.on(
            &sig.generics,
            format!(
                "`{ident}` cannot be generic: each argument and result needs one concrete type \
                 on the wire"
            ),
        );
    }
    if let Some(v) = &sig.variadic {
        errors.at(v.span(), "`#[service]` methods cannot be variadic");
    }
    if RESERVED.contains(&ident.unraw().to_string().as_str()) {
        errors.at(
            ident.span(),
            format!("`{ident}` is the name of a method of the generated client; rename it"),
        );
    }

    let mut inputs = sig.inputs.iter().zip(marks);
    match inputs.next() {
        Some((FnArg::Receiver(r), _)) if is_shared_self(&r.ty) => {}
        Some((FnArg::Receiver(r), _)) => errors.on(
            r,
            format!(
                "`{ident}` must take `&self`: one service value handles concurrent calls \
                 (keep mutable state behind a lock or an atomic)"
            ),
        ),
        _ => errors.at(
            sig.paren_token.span.join(),
            format!("`{ident}` must take `&self` as its first argument"),
        ),
    }

    let mut context = None;
    let mut args = Vec::new();
    let mut requests: Option<(Ident, Type)> = None;
    let mut replies: Option<(Ident, Type)> = None;
    let mut call_order = Vec::new();
    for (i, (input, marked)) in inputs.enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        if let (true, Type::Reference(r)) = (marked, &*pt.ty) {
            if r.mutability.is_some() {
                errors.on(
                    r,
                    "the call's context is taken by `&` or by value, not by `&mut`",
                );
                continue;
            }
        }
        if let Some(c) = context_param(&pt.ty, marked, krate) {
            if i == 0 {
                context = Some(c);
            } else if !marked && is_bare_context(&c.ty) {
                errors.on(
                    &pt.ty,
                    "the call's `Context` must be the first argument after `&self` (to pass a type \
                     of your own named `Context` as an argument, write its path, e.g. \
                     `crate::Context`)",
                );
            } else {
                errors.on(
                    &pt.ty,
                    "the call's `Context` must be the first argument after `&self`",
                );
            }
            continue;
        }
        let name = match &*pt.pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => pi.ident.clone(),
            other => {
                errors.on(
                    other,
                    "arguments of `#[service]` methods must be plain names",
                );
                continue;
            }
        };
        if let Type::Reference(r) = &*pt.ty {
            errors.on(
                r,
                "arguments are decoded from the wire and must be owned (e.g. `String` rather than `&str`)",
            );
            continue;
        }
        if let Type::ImplTrait(t) = &*pt.ty {
            errors.at(
                t.span(),
                "arguments must have concrete types, not `impl Trait`",
            );
            continue;
        }
        call_order.push(name.clone());
        match stream_arg(&pt.ty, krate) {
            Some(StreamArg::Requests(_)) if requests.is_some() => errors.on(
                &pt.ty,
                "a method takes at most one `Streaming<T>`: the client sends one request stream",
            ),
            Some(StreamArg::Requests(t)) => requests = Some((name, t)),
            Some(StreamArg::Replies(_)) if replies.is_some() => errors.on(
                &pt.ty,
                "a method takes at most one `Sender<T>`: the server sends one reply stream",
            ),
            Some(StreamArg::Replies(t)) => replies = Some((name, t)),
            None => args.push((name, (*pt.ty).clone())),
        }
    }
    if let (Some((stream, _)), Some((first, _))) = (&requests, args.first()) {
        errors.at(
            first.span(),
            format!(
                "`{ident}` takes a request stream (`{stream}`), so it takes no other arguments: \
                 the stream's messages are its request (metadata travels with the call)"
            ),
        );
    }

    let (ok, err) = match &sig.output {
        ReturnType::Type(_, ty) => match result_parts(ty) {
            Some(parts) => parts,
            None => {
                errors.on(ty, RETURN_MSG);
                return None;
            }
        },
        ReturnType::Default => {
            errors.at(
                ident.span(),
                format!("`{ident}` has no return type: {RETURN_MSG}"),
            );
            return None;
        }
    };
    if let Some((name, _)) = &replies {
        if !is_unit(&ok) {
            errors.at(
                ok.span(),
                format!(
                    "`{ident}` streams its replies through `{name}`, so it returns `Result<(), E>` \
                     (the `E` ends the stream with an error)"
                ),
            );
        }
    }
    if attrs.one_way && (requests.is_some() || replies.is_some()) {
        errors.at(
            ident.span(),
            format!("`{ident}` is `one_way`, so it cannot stream: a one-way call has no reply"),
        );
    }
    if attrs.one_way && !is_unit(&ok) {
        errors.at(
            ok.span(),
            format!(
                "`{ident}` is `one_way`: the caller gets no reply, so it returns `Result<(), E>`"
            ),
        );
    }
    if errors.count() > before {
        return None;
    }
    let wire_name = attrs
        .name
        .map_or_else(|| camel_case(&ident.unraw().to_string()), |l| l.value());
    Some(Method {
        docs: docs_of(&f.attrs),
        ident,
        wire_name,
        one_way: attrs.one_way,
        idempotent: attrs.idempotent,
        timeout_nanos: attrs.timeout_nanos,
        scope: attrs.scope.map(|l| l.value()),
        context,
        args,
        requests,
        replies,
        call_order,
        ok,
        err,
    })
}

/// A stream argument of a method.
enum StreamArg {
    /// `Streaming<T>`: the requests.
    Requests(Type),
    /// `Sender<T>`: the replies.
    Replies(Type),
}

/// Whether an argument is a stream: `Streaming<T>` or `Sender<T>` written as the bare name (as
/// after `use rpc_core::{Sender, Streaming}`), as `rpc_core::...` or through the `crate` path.
/// Any other path (`tokio::sync::mpsc::Sender<T>`) is an ordinary argument.
fn stream_arg(ty: &Type, krate: &CratePath) -> Option<StreamArg> {
    let Type::Path(TypePath { qself: None, path }) = ty else {
        return None;
    };
    let last = path.segments.last()?;
    let prefix: Vec<String> = path
        .segments
        .iter()
        .take(path.segments.len() - 1)
        .map(|s| s.ident.to_string())
        .collect();
    if !(prefix.is_empty() || prefix == ["rpc_core"] || prefix == krate.segment_names()) {
        return None;
    }
    let [t] = <[Type; 1]>::try_from(type_args(last)).ok()?;
    match last.ident.to_string().as_str() {
        "Streaming" => Some(StreamArg::Requests(t)),
        "Sender" => Some(StreamArg::Replies(t)),
        _ => None,
    }
}

const RETURN_MSG: &str = "`#[service]` methods return `Result<T, E>`, where `E` is \
    `rpc_core::Status` or implements `rpc_core::ServiceError`";

/// `&Self`: the type of `&self` and of `self: &Self`.
fn is_shared_self(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r)
        if r.mutability.is_none()
            && matches!(&*r.elem, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self")))
}

/// Whether an argument is the call's context, and how it takes it. The context is an argument
/// typed `Context` or `&Context` where `Context` is the bare name (a macro cannot see imports:
/// this is how every user writes it after `use rpc_core::Context`), `rpc_core::Context` or
/// `<crate>::Context` (with or without a leading `::`), or any argument marked
/// `#[rpc(context)]`. Every other path (`crate::Context`, `std::task::Context`) is an ordinary
/// argument. The generated server hands the runtime's context over through
/// `__private::CallContext`, which only `rpc_core::Context` implements, so a user type taken for
/// the context is one compile error at the argument.
pub(crate) fn context_param(ty: &Type, marked: bool, krate: &CratePath) -> Option<ContextParam> {
    let (by_ref, elem) = match ty {
        Type::Reference(r) if r.mutability.is_none() => (true, &*r.elem),
        Type::Reference(_) => return None,
        t => (false, t),
    };
    let named = match elem {
        Type::Path(TypePath { qself: None, path }) => {
            is_bare_context(elem) || krate.is_context(path)
        }
        _ => false,
    };
    (marked || named).then(|| ContextParam {
        by_ref,
        ty: elem.clone(),
    })
}

/// `Context`, as a bare name.
fn is_bare_context(ty: &Type) -> bool {
    matches!(ty, Type::Path(TypePath { qself: None, path }) if path.is_ident("Context"))
}

/// The `T` and `E` of `Result<T, E>` (any path ending in `Result` with two type arguments).
pub(crate) fn result_parts(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(TypePath { qself: None, path }) = ty else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let [ok, err] = <[Type; 2]>::try_from(type_args(last)).ok()?;
    Some((ok, err))
}

/// The type arguments of a path segment (`T` and `E` of `Result<T, E>`); none without `<..>`.
fn type_args(segment: &syn::PathSegment) -> Vec<Type> {
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return Vec::new();
    };
    args.args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// `place_order` -> `PlaceOrder`.
fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

/// The doc comment, one line per `///`, with the conventional leading space removed.
fn docs_of(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_owned())
        .collect();
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_of_snake_names() {
        assert_eq!(camel_case("place_order"), "PlaceOrder");
        assert_eq!(camel_case("get"), "Get");
        assert_eq!(camel_case("a__b_"), "AB");
    }

    #[test]
    fn context_rule() {
        let ctx = |s: &str, marked: bool| {
            let ty = syn::parse_str::<Type>(s).unwrap();
            context_param(&ty, marked, &CratePath::default()).map(|c| c.by_ref)
        };
        assert_eq!(ctx("&Context", false), Some(true));
        assert_eq!(ctx("Context", false), Some(false));
        assert_eq!(ctx("&rpc_core::Context", false), Some(true));
        assert_eq!(ctx("::rpc_core::Context", false), Some(false));
        assert_eq!(ctx("crate::Context", false), None);
        assert_eq!(ctx("&my::Context", false), None);
        assert_eq!(ctx("&mut Context", false), None);
        assert_eq!(ctx("std::task::Context<'static>", false), None);
        assert_eq!(ctx("&Ctx", true), Some(true));
        assert_eq!(ctx("my::Ctx", true), Some(false));
    }
}
