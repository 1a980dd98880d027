//! The macro's own attributes: `#[service(...)]` on the trait, `#[rpc(...)]` on its methods and
//! arguments, and the path of the runtime crate the generated code refers to.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{token, Attribute, Expr, Lit, LitStr, Path, Token};

use crate::errors::Errors;

/// Where the generated code finds the runtime: `::rpc_core` unless `crate = "..."` says otherwise.
#[derive(Clone)]
pub(crate) struct CratePath {
    path: Path,
}

impl Default for CratePath {
    fn default() -> Self {
        CratePath {
            path: syn::parse_quote!(::rpc_core),
        }
    }
}

impl CratePath {
    /// A bare name is a crate (`"renamed_rpc"` means `::renamed_rpc`, which resolves in any
    /// module, `#![no_implicit_prelude]` ones included); a longer path (`"::facade::rpc"`,
    /// `"crate::rpc"`) is used as written.
    fn parse(lit: &LitStr) -> syn::Result<CratePath> {
        let mut path: Path = lit.parse().map_err(|_| {
            syn::Error::new(
                lit.span(),
                "`crate` takes the path of the runtime crate, e.g. `crate = \"renamed_rpc\"`",
            )
        })?;
        if path.segments.iter().any(|s| !s.arguments.is_empty()) {
            return Err(syn::Error::new(
                lit.span(),
                "the path of the runtime crate has no generic arguments",
            ));
        }
        let bare = path.leading_colon.is_none()
            && path.segments.len() == 1
            && !["crate", "self", "super"]
                .iter()
                .any(|k| path.segments[0].ident == k);
        if bare {
            path.leading_colon = Some(Token![::](lit.span()));
        }
        Ok(CratePath { path })
    }

    /// The path as a person writes it (`::renamed_rpc`), for doc links and serde's attribute.
    pub(crate) fn text(&self) -> String {
        let segments: Vec<String> = self
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        let lead = if self.path.leading_colon.is_some() {
            "::"
        } else {
            ""
        };
        format!("{lead}{}", segments.join("::"))
    }

    /// The path with every token at `span`, for code whose errors are reported there.
    pub(crate) fn at(&self, span: Span) -> TokenStream {
        self.path
            .to_token_stream()
            .into_iter()
            .map(|mut tt| {
                tt.set_span(span);
                tt
            })
            .collect()
    }

    /// The names of the path's segments (`["renamed_rpc"]`, `["platform", "rpc"]`).
    pub(crate) fn segment_names(&self) -> Vec<String> {
        self.path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect()
    }

    /// Whether `path` names the runtime's `Context`: `rpc_core::Context` or `<crate>::Context`,
    /// with or without a leading `::`.
    pub(crate) fn is_context(&self, path: &Path) -> bool {
        if path.segments.iter().any(|s| !s.arguments.is_empty()) {
            return false;
        }
        let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let mut ours: Vec<String> = self
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        ours.push("Context".to_owned());
        names == ours || names == ["rpc_core", "Context"]
    }
}

impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.path.to_tokens(tokens);
    }
}

/// The arguments of `#[service(...)]`.
#[derive(Default)]
pub(crate) struct ServiceArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<String>,
    pub(crate) krate: CratePath,
    /// `require_schemas`: every message type must implement `Schema` (a compile error
    /// otherwise) instead of being described as opaque.
    pub(crate) require_schemas: bool,
}

impl ServiceArgs {
    /// Reads what it can: a bad value is reported and the other arguments are still read, so that
    /// even the error path knows the crate path.
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> ServiceArgs {
        let mut args = ServiceArgs::default();
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                match check_name(&lit, "service") {
                    Ok(()) => args.name = Some(lit),
                    Err(e) => errors.push(e),
                }
            } else if meta.path.is_ident("version") {
                let lit: Lit = meta.value()?.parse()?;
                match lit {
                    Lit::Str(s) => args.version = Some(s.value()),
                    Lit::Int(i) => args.version = Some(i.base10_digits().to_owned()),
                    other => errors.push(syn::Error::new(
                        other.span(),
                        "`version` takes a string or an integer, e.g. `version = \"1\"`",
                    )),
                }
            } else if meta.path.is_ident("require_schemas") {
                args.require_schemas = true;
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                match CratePath::parse(&lit) {
                    Ok(krate) => args.krate = krate,
                    Err(e) => errors.push(e),
                }
            } else {
                errors.push(meta.error(format!(
                    "unknown `#[service]` attribute `{}`; expected `name = \"pkg.Service\"` or `version = \"1\"`",
                    path_text(&meta.path)
                )));
                // Step over its value to read the arguments after it.
                if meta.input.peek(Token![=]) {
                    meta.value()?.parse::<Expr>()?;
                } else if meta.input.peek(token::Paren) {
                    let _skipped;
                    syn::parenthesized!(_skipped in meta.input);
                }
            }
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
            errors.push(e);
        }
        args
    }
}

pub(crate) fn check_name(lit: &LitStr, what: &str) -> syn::Result<()> {
    let v = lit.value();
    if v.is_empty() || v.contains('/') || v.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            lit.span(),
            format!("a {what} name must be non-empty, without `/` or spaces"),
        ));
    }
    Ok(())
}

pub(crate) fn path_text(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The `#[rpc(...)]` settings of one method.
#[derive(Default)]
pub(crate) struct RpcAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) one_way: bool,
    pub(crate) idempotent: bool,
    pub(crate) timeout_nanos: Option<u64>,
    pub(crate) scope: Option<LitStr>,
}

/// Reads and removes the `#[rpc(...)]` attributes of a method.
pub(crate) fn method_attrs(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> RpcAttrs {
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
                "scope" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    check_scope(&lit)?;
                    out.scope = Some(lit);
                }
                _ => {
                    return Err(meta.error(format!(
                        "unknown `#[rpc]` attribute `{key}`; expected `name = \"...\"`, \
                         `one_way`, `idempotent`, `timeout = \"250ms\"` or `scope = \"...\"`"
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

/// A scope is one token of an OAuth 2.0 `scope` claim (RFC 6749 §3.3): printable ASCII
/// without spaces, quotes or backslashes, and not empty.
fn check_scope(lit: &LitStr) -> syn::Result<()> {
    let v = lit.value();
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new(
            lit.span(),
            "a scope is one OAuth 2.0 scope token (RFC 6749 §3.3): printable ASCII without \
             spaces, `\"` or `\\`, such as \"orders:write\"",
        ))
    }
}

/// Reads and removes the `#[rpc(...)]` attributes of an argument: whether it says
/// `#[rpc(context)]`.
pub(crate) fn param_attrs(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> bool {
    let mut context = false;
    attrs.retain(|attr| {
        if !attr.path().is_ident("rpc") {
            return true;
        }
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("context") {
                context = true;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown `#[rpc]` attribute `{}` on an argument; expected `context`",
                    path_text(&meta.path)
                )))
            }
        });
        if let Err(e) = result {
            errors.push(e);
        }
        false
    });
    context
}

/// Whether an argument says `#[rpc(context)]`, for the error path: nothing is reported.
pub(crate) fn says_context(attrs: &[Attribute]) -> bool {
    attrs.iter().filter(|a| a.path().is_ident("rpc")).any(|a| {
        let mut found = false;
        let _ = a.parse_nested_meta(|meta| {
            found |= meta.path.is_ident("context");
            Ok(())
        });
        found
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn crate_paths() {
        let k = |s: &str| CratePath::parse(&LitStr::new(s, Span::call_site()));
        assert_eq!(CratePath::default().text(), "::rpc_core");
        assert_eq!(k("renamed_rpc").unwrap().text(), "::renamed_rpc");
        assert_eq!(k("::facade::rpc").unwrap().text(), "::facade::rpc");
        assert_eq!(k("crate::rpc").unwrap().text(), "crate::rpc");
        assert_eq!(k("self").unwrap().text(), "self");
        assert!(k("a::<T>").is_err());
        assert!(k("not a path").is_err());
    }

    #[test]
    fn context_paths() {
        let p = |s: &str| syn::parse_str::<Path>(s).unwrap();
        let default = CratePath::default();
        assert!(default.is_context(&p("rpc_core::Context")));
        assert!(default.is_context(&p("::rpc_core::Context")));
        assert!(!default.is_context(&p("Context")));
        assert!(!default.is_context(&p("crate::Context")));
        assert!(!default.is_context(&p("std::task::Context")));
        let renamed = CratePath::parse(&LitStr::new("renamed_rpc", Span::call_site())).unwrap();
        assert!(renamed.is_context(&p("renamed_rpc::Context")));
        assert!(renamed.is_context(&p("::renamed_rpc::Context")));
        assert!(renamed.is_context(&p("rpc_core::Context")));
        assert!(!renamed.is_context(&p("other::Context")));
    }
}
