//! `#[derive(Schema)]`: a type's schema from its definition, its doc comments and the
//! `#[serde(...)]` and `#[prost(...)]` attributes other derives read.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, Lit, LitStr, Path, Type};

/// The derive's entry point on `proc_macro2` tokens.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match syn::parse2::<DeriveInput>(input).and_then(|i| expand(&i)) {
        Ok(out) => out,
        Err(e) => e.to_compile_error(),
    }
}

/// What `#[schema(...)]` and the container's `#[serde(...)]` say.
#[derive(Default)]
struct Container {
    krate: Option<Path>,
    name: Option<String>,
    rename_all: Option<String>,
    default: bool,
    transparent: bool,
    tag: Option<String>,
    content: Option<String>,
    untagged: bool,
}

/// What a field's (or variant's) `#[serde(...)]` says.
#[derive(Default)]
struct Serde {
    rename: Option<String>,
    rename_all: Option<String>,
    skip: bool,
    default: bool,
    flatten: bool,
    bytes: bool,
}

/// What a field's `#[prost(...)]` says.
struct Prost {
    kind: String,
    number: u32,
    repeated: bool,
    optional: bool,
    /// The enumeration's type, for `enumeration = "X"`.
    enumeration: Option<Type>,
    message: bool,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "Schema cannot be derived for generic types: describe a concrete type, or implement \
             Schema by hand",
        ));
    }
    let c = container(&input.attrs)?;
    let krate = c
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::rpc_core));
    let m = quote!(#krate::codec::schema);
    let ident = &input.ident;
    let name = c.name.clone().unwrap_or_else(|| ident.to_string());
    let type_docs = docs(&input.attrs);
    let body = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) if c.transparent => {
                let f = named
                    .named
                    .iter()
                    .find(|f| !serde(&f.attrs).map(|s| s.skip).unwrap_or(false))
                    .ok_or_else(|| syn::Error::new_spanned(ident, "no field to be transparent"))?;
                of(&krate, &f.ty)
            }
            Fields::Named(named) => {
                let fields = named
                    .named
                    .iter()
                    .map(|f| {
                        let rust = f
                            .ident
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default();
                        field(&krate, &c, &rust, &f.ty, &f.attrs, Case::Field)
                    })
                    .collect::<syn::Result<Vec<_>>>()?;
                let fields = fields.into_iter().flatten();
                quote! {
                    __defs.named(#name, __rust_type, |__defs| {
                        #m::TypeDef::Message(#m::MessageDef::new(
                            #type_docs,
                            ::std::vec![#(#fields),*],
                        ))
                    })
                }
            }
            // A newtype is its field in serde's forms.
            Fields::Unnamed(u) if u.unnamed.len() == 1 => of(&krate, &u.unnamed[0].ty),
            Fields::Unnamed(_) => quote!(#m::TypeRef::Opaque(
                ::std::string::ToString::to_string(__rust_type)
            )),
            Fields::Unit => quote!(#m::TypeRef::Unit),
        },
        Data::Enum(e) => {
            let repr = match (&c.tag, &c.content, c.untagged) {
                (_, _, true) => quote!(#m::EnumRepr::Untagged),
                (Some(tag), Some(content), _) => quote!(#m::EnumRepr::Adjacent {
                    tag: ::std::string::ToString::to_string(#tag),
                    content: ::std::string::ToString::to_string(#content),
                }),
                (Some(tag), None, _) => quote!(#m::EnumRepr::Internal {
                    tag: ::std::string::ToString::to_string(#tag),
                }),
                _ => quote!(#m::EnumRepr::External),
            };
            let mut variants = Vec::new();
            for v in &e.variants {
                let s = serde(&v.attrs)?;
                if s.skip {
                    continue;
                }
                let rust = v.ident.to_string();
                let wire = s
                    .rename
                    .clone()
                    .unwrap_or_else(|| rename(&rust, c.rename_all.as_deref(), Case::Variant));
                let vdocs = docs(&v.attrs);
                let inner = Container {
                    rename_all: s.rename_all.clone(),
                    ..Container::default()
                };
                let (shape, fields) = match &v.fields {
                    Fields::Unit => (quote!(Unit), Vec::new()),
                    Fields::Named(named) => {
                        let mut out = Vec::new();
                        for f in &named.named {
                            let r = f
                                .ident
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default();
                            out.extend(field(&krate, &inner, &r, &f.ty, &f.attrs, Case::Field)?);
                        }
                        (quote!(Struct), out)
                    }
                    Fields::Unnamed(u) => {
                        let mut out = Vec::new();
                        // A prost oneof's variant says its field's number and type on the
                        // variant: `#[prost(string, tag = "5")] GuestName(String)`.
                        let oneof = u.unnamed.len() == 1 && prost(&v.attrs)?.is_some();
                        for (i, f) in u.unnamed.iter().enumerate() {
                            let n = i.to_string();
                            let mut attrs = f.attrs.clone();
                            if oneof {
                                attrs.extend(
                                    v.attrs
                                        .iter()
                                        .filter(|a| a.path().is_ident("prost"))
                                        .cloned(),
                                );
                            }
                            out.extend(field(&krate, &inner, &n, &f.ty, &attrs, Case::Keep)?);
                        }
                        let shape = if u.unnamed.len() == 1 {
                            quote!(Newtype)
                        } else {
                            quote!(Tuple)
                        };
                        (shape, out)
                    }
                };
                let mut variant = quote! {
                    #m::VariantDef::with_fields(#wire, #m::VariantShape::#shape, ::std::vec![#(#fields),*])
                };
                if wire != rust {
                    variant = quote!(#variant.rust_name(#rust));
                }
                if !vdocs.is_empty() {
                    variant = quote!(#variant.docs(#vdocs));
                }
                if let Some((_, Expr::Lit(lit))) = &v.discriminant {
                    if let Lit::Int(n) = &lit.lit {
                        let n: i64 = n.base10_parse()?;
                        variant = quote!(#variant.number(#n));
                    }
                }
                variants.push(variant);
            }
            quote! {
                __defs.named(#name, __rust_type, |__defs| {
                    #m::TypeDef::Enum(#m::EnumDef::new(#type_docs, #repr, ::std::vec![#(#variants),*]))
                })
            }
        }
        Data::Union(u) => {
            return Err(syn::Error::new_spanned(
                u.union_token,
                "Schema cannot be derived for unions",
            ))
        }
    };
    let rust_type = format!("::{ident}");
    Ok(quote! {
        impl #m::Schema for #ident {
            fn type_ref(__defs: &mut #m::Definitions) -> #m::TypeRef {
                let __rust_type: &str = ::core::concat!(::core::module_path!(), #rust_type);
                let _ = &__rust_type;
                #body
            }
        }
    })
}

/// The schema of `ty`, or opaque (by the probe; `__defs` in scope).
fn of(krate: &Path, ty: &Type) -> TokenStream {
    quote!(#krate::__private::message_schema!(#ty, __defs))
}

/// One field's `FieldDef` expression, or `None` for a field serde skips.
fn field(
    krate: &Path,
    c: &Container,
    rust: &str,
    ty: &Type,
    attrs: &[Attribute],
    case: Case,
) -> syn::Result<Option<TokenStream>> {
    let m = quote!(#krate::codec::schema);
    let s = serde(attrs)?;
    if s.skip {
        return Ok(None);
    }
    let wire = s
        .rename
        .clone()
        .unwrap_or_else(|| rename(rust, c.rename_all.as_deref(), case));
    let ty_expr = if s.flatten {
        // The fields of the flattened type sit beside these: described as opaque here.
        quote!(#m::TypeRef::Opaque(::std::format!(
            "flattened {}",
            ::core::any::type_name::<#ty>()
        )))
    } else if s.bytes {
        bytes_like(&m, ty)
    } else {
        of(krate, ty)
    };
    let mut out = quote!(#m::FieldDef::new(#wire, ::core::clone::Clone::clone(&__ty)));
    if wire != rust {
        out = quote!(#out.rust_name(#rust));
    }
    let fdocs = docs(attrs);
    if !fdocs.is_empty() {
        out = quote!(#out.docs(#fdocs));
    }
    if s.default || c.default || s.flatten {
        out = quote!(#out.required(false));
    }
    if let Some(p) = prost(attrs)? {
        let kind = &p.kind;
        let number = p.number;
        let (repeated, optional) = (p.repeated, p.optional);
        let type_name = if let Some(e) = &p.enumeration {
            let e = of(krate, e);
            quote!(#e.named().map(::std::string::ToString::to_string))
        } else if p.message || kind.starts_with("map<") || kind == "oneof" {
            quote!(__ty.named().map(::std::string::ToString::to_string))
        } else {
            quote!(::core::option::Option::None)
        };
        out = quote! {
            #out.proto(
                #m::ProtoField::new(#number, #kind)
                    .repeated(#repeated)
                    .optional(#optional)
                    .type_name(#type_name)
            )
        };
    }
    Ok(Some(quote!({
        let __ty = #ty_expr;
        #out
    })))
}

/// `serde_bytes` on a field: a byte string, however many layers of `Option` wrap it.
fn bytes_like(m: &TokenStream, ty: &Type) -> TokenStream {
    if let Some(inner) = option_inner(ty) {
        let inner = bytes_like(m, inner);
        return quote!(#m::TypeRef::Optional(::std::boxed::Box::new(#inner)));
    }
    quote!(#m::TypeRef::Bytes)
}

/// `T` of `Option<T>` (written `Option`, `std::option::Option` or `core::option::Option`).
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// The doc comment, lines joined, one leading space per line removed.
fn docs(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
            {
                let line = s.value();
                lines.push(line.strip_prefix(' ').unwrap_or(&line).to_owned());
            }
        }
    }
    lines.join("\n").trim().to_owned()
}

/// Skips the value of a nested meta item this derive does not read: `= expr`, `(…)` or nothing.
fn skip(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// A string value (`key = "…"`), or `None` for the `key(serialize = …, deserialize = …)` form,
/// which is skipped (the two directions could differ; neither is taken).
fn string(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<String>> {
    if meta.input.peek(syn::Token![=]) {
        let lit: LitStr = meta.value()?.parse()?;
        Ok(Some(lit.value()))
    } else {
        skip(meta)?;
        Ok(None)
    }
}

fn container(attrs: &[Attribute]) -> syn::Result<Container> {
    let mut c = Container::default();
    for a in attrs {
        if a.path().is_ident("schema") {
            a.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    let lit: LitStr = meta.value()?.parse()?;
                    c.krate = Some(lit.parse()?);
                } else if meta.path.is_ident("name") {
                    c.name = string(&meta)?;
                } else {
                    return Err(meta.error("expected `crate = \"...\"` or `name = \"...\"`"));
                }
                Ok(())
            })?;
        } else if a.path().is_ident("serde") {
            a.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    if let Some(n) = string(&meta)? {
                        c.name.get_or_insert(n);
                    }
                } else if meta.path.is_ident("rename_all") {
                    c.rename_all = string(&meta)?;
                } else if meta.path.is_ident("default") {
                    c.default = true;
                    skip(&meta)?;
                } else if meta.path.is_ident("transparent") {
                    c.transparent = true;
                } else if meta.path.is_ident("tag") {
                    c.tag = string(&meta)?;
                } else if meta.path.is_ident("content") {
                    c.content = string(&meta)?;
                } else if meta.path.is_ident("untagged") {
                    c.untagged = true;
                } else {
                    skip(&meta)?;
                }
                Ok(())
            })?;
        }
    }
    Ok(c)
}

fn serde(attrs: &[Attribute]) -> syn::Result<Serde> {
    let mut s = Serde::default();
    for a in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        a.parse_nested_meta(|meta| {
            let p = &meta.path;
            if p.is_ident("rename") {
                s.rename = string(&meta)?;
            } else if p.is_ident("rename_all") {
                s.rename_all = string(&meta)?;
            } else if p.is_ident("skip") {
                s.skip = true;
            } else if p.is_ident("default") {
                s.default = true;
                skip(&meta)?;
            } else if p.is_ident("flatten") {
                s.flatten = true;
            } else if p.is_ident("with") {
                s.bytes = string(&meta)?.is_some_and(|w| w == "serde_bytes");
            } else {
                skip(&meta)?;
            }
            Ok(())
        })?;
    }
    Ok(s)
}

/// The Protobuf scalar types prost names (the `.proto` spellings).
const SCALARS: &[&str] = &[
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
];

fn prost(attrs: &[Attribute]) -> syn::Result<Option<Prost>> {
    let Some(a) = attrs.iter().find(|a| a.path().is_ident("prost")) else {
        return Ok(None);
    };
    let mut kind = None;
    let mut number = None;
    let (mut repeated, mut optional, mut message) = (false, false, false);
    let mut enumeration = None;
    a.parse_nested_meta(|meta| {
        let Some(id) = meta.path.get_ident().map(ToString::to_string) else {
            return skip(&meta);
        };
        match id.as_str() {
            "tag" => {
                let lit: LitStr = meta.value()?.parse()?;
                number = Some(
                    lit.value()
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| syn::Error::new(lit.span(), "a Protobuf field number"))?,
                );
            }
            "tags" => {
                // A oneof's tags: its first stands for it here.
                let lit: LitStr = meta.value()?.parse()?;
                number = lit
                    .value()
                    .split(',')
                    .next()
                    .and_then(|t| t.trim().parse::<u32>().ok());
                kind.get_or_insert_with(|| "oneof".to_owned());
            }
            "repeated" => repeated = true,
            "optional" => optional = true,
            "message" => {
                message = true;
                kind = Some("message".to_owned());
            }
            "enumeration" => {
                let lit: LitStr = meta.value()?.parse()?;
                enumeration = Some(lit.parse::<Type>()?);
                kind = Some("enum".to_owned());
            }
            "map" | "btree_map" | "hash_map" => {
                let lit: LitStr = meta.value()?.parse()?;
                let inner: Vec<String> = lit
                    .value()
                    .splitn(2, ',')
                    .map(|p| {
                        let p = p.trim();
                        if p.starts_with("enumeration") {
                            "enum".to_owned()
                        } else {
                            p.to_owned()
                        }
                    })
                    .collect();
                kind = Some(format!("map<{}>", inner.join(", ")));
            }
            "oneof" => {
                skip(&meta)?;
                kind = Some("oneof".to_owned());
            }
            "bytes" => {
                skip(&meta)?;
                kind = Some("bytes".to_owned());
            }
            s if SCALARS.contains(&s) => kind = Some(s.to_owned()),
            _ => skip(&meta)?,
        }
        Ok(())
    })?;
    match (kind, number) {
        (Some(kind), Some(number)) => Ok(Some(Prost {
            kind,
            number,
            repeated,
            optional,
            enumeration,
            message,
        })),
        _ => Err(syn::Error::new(
            a.span_or_call_site(),
            "a #[prost(...)] attribute without a type or a tag",
        )),
    }
}

trait SpanOr {
    fn span_or_call_site(&self) -> Span;
}

impl SpanOr for Attribute {
    fn span_or_call_site(&self) -> Span {
        self.to_token_stream()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |t| t.span())
    }
}

/// Whether a name is a field's (snake_case in Rust) or a variant's (PascalCase).
#[derive(Clone, Copy)]
enum Case {
    Field,
    Variant,
    /// A tuple position: never renamed.
    Keep,
}

/// serde's `rename_all` applied to a field or variant name.
fn rename(rust: &str, rule: Option<&str>, case: Case) -> String {
    let Some(rule) = rule else {
        return rust.to_owned();
    };
    let words: Vec<String> = match case {
        Case::Keep => return rust.to_owned(),
        Case::Field => rust.split('_').map(str::to_owned).collect(),
        Case::Variant => {
            let mut words = Vec::new();
            let mut cur = String::new();
            for ch in rust.chars() {
                if ch.is_uppercase() && !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                cur.push(ch);
            }
            words.push(cur);
            words.into_iter().map(|w| w.to_lowercase()).collect()
        }
    };
    let capitalized = |w: &String| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    match rule {
        "lowercase" => words.concat().to_lowercase(),
        "UPPERCASE" => words.concat().to_uppercase(),
        "PascalCase" => words.iter().map(capitalized).collect(),
        "camelCase" => {
            let mut out = words.first().cloned().unwrap_or_default();
            out.extend(words.iter().skip(1).map(capitalized));
            out
        }
        "snake_case" => words.join("_"),
        "SCREAMING_SNAKE_CASE" => words.join("_").to_uppercase(),
        "kebab-case" => words.join("-"),
        "SCREAMING-KEBAB-CASE" => words.join("-").to_uppercase(),
        _ => rust.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_follow_serde() {
        assert_eq!(
            rename("order_id", Some("camelCase"), Case::Field),
            "orderId"
        );
        assert_eq!(
            rename("order_id", Some("PascalCase"), Case::Field),
            "OrderId"
        );
        assert_eq!(
            rename("order_id", Some("SCREAMING_SNAKE_CASE"), Case::Field),
            "ORDER_ID"
        );
        assert_eq!(
            rename("NoHold", Some("snake_case"), Case::Variant),
            "no_hold"
        );
        assert_eq!(
            rename("NoHold", Some("kebab-case"), Case::Variant),
            "no-hold"
        );
        assert_eq!(rename("NoHold", Some("camelCase"), Case::Variant), "noHold");
        assert_eq!(rename("NoHold", None, Case::Variant), "NoHold");
        assert_eq!(rename("0", Some("camelCase"), Case::Keep), "0");
    }

    #[test]
    fn generic_types_are_refused_with_a_reason() {
        let out = derive(quote!(
            struct Wrap<T> {
                inner: T,
            }
        ));
        assert!(out.to_string().contains("generic types"), "{out}");
    }

    #[test]
    fn prost_attributes_are_read() {
        let item: DeriveInput = syn::parse_quote! {
            struct Order {
                #[prost(uint64, tag = "1")]
                id: u64,
                #[prost(message, repeated, tag = "2")]
                lines: Vec<Line>,
                #[prost(enumeration = "State", tag = "3")]
                state: i32,
                #[prost(map = "string, uint32", tag = "4")]
                counts: std::collections::HashMap<String, u32>,
            }
        };
        let Data::Struct(s) = &item.data else {
            panic!()
        };
        let p: Vec<Prost> = s
            .fields
            .iter()
            .map(|f| prost(&f.attrs).unwrap().unwrap())
            .collect();
        assert_eq!((p[0].kind.as_str(), p[0].number), ("uint64", 1));
        assert!(p[1].message && p[1].repeated);
        assert_eq!(p[2].kind, "enum");
        assert!(p[2].enumeration.is_some());
        assert_eq!(p[3].kind, "map<string, uint32>");
    }
}
