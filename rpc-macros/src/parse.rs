//! Reading a `#[service]` trait: attributes, methods, and every check that gives a clear error.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, Ident, ItemTrait, Lit, LitStr, Pat,
    PathArguments, ReturnType, TraitItem, TraitItemFn, Type, TypePath,
};

/// Names the generated client already uses for its own methods.
const RESERVED: &[&str] = &["new", "with_codec", "get_ref", "into_inner"];

/// Accumulates errors so that one compile shows all of them.
#[derive(Default)]
pub(crate) struct Errors {
    all: Option<syn::Error>,
    count: usize,
}

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        self.count += 1;
        match &mut self.all {
            Some(all) => all.combine(e),
            None => self.all = Some(e),
        }
    }

    fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    /// An error underlining all of `node` (a span of several tokens cannot be joined on stable).
    fn on(&mut self, node: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(node, msg));
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.all.map_or(Ok(()), Err)
    }
}

/// The arguments of `#[service(...)]`.
pub(crate) struct ServiceArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<String>,
}

impl ServiceArgs {
    pub(crate) fn parse(attr: proc_macro2::TokenStream) -> syn::Result<ServiceArgs> {
        let mut args = ServiceArgs {
            name: None,
            version: None,
        };
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                check_name(&lit, "service")?;
                args.name = Some(lit);
                Ok(())
            } else if meta.path.is_ident("version") {
                let lit: Lit = meta.value()?.parse()?;
                args.version = Some(match lit {
                    Lit::Str(s) => s.value(),
                    Lit::Int(i) => i.base10_digits().to_owned(),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "`version` takes a string or an integer, e.g. `version = \"1\"`",
                        ))
                    }
                });
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown `#[service]` attribute `{}`; expected `name = \"pkg.Service\"` or `version = \"1\"`",
                    path_text(&meta.path)
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
        Ok(args)
    }
}

fn check_name(lit: &LitStr, what: &str) -> syn::Result<()> {
    let v = lit.value();
    if v.is_empty() || v.contains('/') || v.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            lit.span(),
            format!("a {what} name must be non-empty, without `/` or spaces"),
        ));
    }
    Ok(())
}

fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// How a handler receives the call's context.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextArg {
    None,
    ByRef,
    ByValue,
}

/// One method of the trait.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    pub(crate) docs: String,
    pub(crate) one_way: bool,
    pub(crate) idempotent: bool,
    pub(crate) timeout_nanos: Option<u64>,
    pub(crate) context: ContextArg,
    /// Arguments after `&self` and the context.
    pub(crate) args: Vec<(Ident, Type)>,
    pub(crate) ok: Type,
    pub(crate) err: Type,
}

/// The whole definition.
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) docs: String,
    pub(crate) methods: Vec<Method>,
}

/// Reads the trait, removing the `#[rpc]` attributes it consumes.
pub(crate) fn parse(args: ServiceArgs, item: &mut ItemTrait) -> syn::Result<Service> {
    let mut errors = Errors::default();
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
        let Some(m) = parse_method(f, &mut errors) else {
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
    })
}

/// The `#[rpc(...)]` settings of one method.
#[derive(Default)]
struct RpcAttrs {
    name: Option<LitStr>,
    one_way: bool,
    idempotent: bool,
    timeout_nanos: Option<u64>,
}

fn parse_rpc_attrs(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> RpcAttrs {
    let mut out = RpcAttrs::default();
    let mut seen: Vec<String> = Vec::new();
    attrs.retain(|attr| {
        if !attr.path().is_ident("rpc") {
            return true;
        }
        let result = attr.parse_nested_meta(|meta| {
            let key = path_text(&meta.path);
            if seen.contains(&key) {
                return Err(meta.error(format!("`{key}` is given twice")));
            }
            seen.push(key.clone());
            match key.as_str() {
                "one_way" => out.one_way = true,
                "idempotent" => out.idempotent = true,
                "name" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    check_name(&lit, "method")?;
                    out.name = Some(lit);
                }
                "timeout" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    out.timeout_nanos = Some(parse_duration(&lit)?);
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown `#[rpc]` attribute `{key}`; expected `name = \"...\"`, \
                         `one_way`, `idempotent` or `timeout = \"250ms\"`"
                    )))
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
        false
    });
    out
}

/// `"250ms"`, `"2s"`, `"1m"`, `"500us"`, `"100ns"`.
fn parse_duration(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let scale: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if scale != 0 && n > 0 => n
            .checked_mul(scale)
            .ok_or_else(|| syn::Error::new(lit.span(), "this timeout is too long")),
        _ => Err(syn::Error::new(
            lit.span(),
            "a timeout is a positive integer and a unit: ns, us, ms, s or m (e.g. \"250ms\")",
        )),
    }
}

fn parse_method(f: &mut TraitItemFn, errors: &mut Errors) -> Option<Method> {
    let before = errors.count;
    let attrs = parse_rpc_attrs(&mut f.attrs, errors);
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

    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if is_shared_self(&r.ty) => {}
        Some(FnArg::Receiver(r)) => errors.on(
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

    let mut context = ContextArg::None;
    let mut args = Vec::new();
    for (i, input) in inputs.enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        let kind = context_kind(&pt.ty);
        if kind != ContextArg::None {
            if i == 0 {
                context = kind;
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
        args.push((name, (*pt.ty).clone()));
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
    if attrs.one_way && !is_unit(&ok) {
        errors.at(
            ok.span(),
            format!(
                "`{ident}` is `one_way`: the caller gets no reply, so it returns `Result<(), E>`"
            ),
        );
    }
    if errors.count > before {
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
        context,
        args,
        ok,
        err,
    })
}

const RETURN_MSG: &str = "`#[service]` methods return `Result<T, E>`, where `E` is \
    `rpc_core::Status` or implements `rpc_core::ServiceError`";

/// `&Self`: the type of `&self` and of `self: &Self`.
fn is_shared_self(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r)
        if r.mutability.is_none()
            && matches!(&*r.elem, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self")))
}

/// `Context`, `&Context` or a path ending in `Context`.
fn context_kind(ty: &Type) -> ContextArg {
    let is_ctx = |t: &Type| match t {
        Type::Path(TypePath { qself: None, path }) => path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Context" && s.arguments.is_empty()),
        _ => false,
    };
    match ty {
        Type::Reference(r) if r.mutability.is_none() && is_ctx(&r.elem) => ContextArg::ByRef,
        t if is_ctx(t) => ContextArg::ByValue,
        _ => ContextArg::None,
    }
}

/// The `T` and `E` of `Result<T, E>` (any path ending in `Result` with two type arguments).
fn result_parts(ty: &Type) -> Option<(Type, Type)> {
    let Type::Path(TypePath { qself: None, path }) = ty else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    let ok = types.next()?;
    let err = types.next()?;
    types.next().is_none().then_some((ok, err))
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
    fn durations() {
        let d = |s: &str| parse_duration(&LitStr::new(s, Span::call_site()));
        assert_eq!(d("250ms").unwrap(), 250_000_000);
        assert_eq!(d("2s").unwrap(), 2_000_000_000);
        assert_eq!(d("1m").unwrap(), 60_000_000_000);
        assert!(d("0s").is_err());
        assert!(d("5 parsecs").is_err());
        assert!(d("ms").is_err());
    }
}
