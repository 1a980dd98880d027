//! The `.proto` export: a proto3 file whose messages encode as this framework's Protobuf codec
//! encodes the described types, so that a client generated from it by `protoc` talks to the
//! service in Protobuf.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rpc_codec::schema::{Definitions, EnumDef, MessageDef, TypeDef, TypeRef};

use super::model::{Description, ServiceDescription};

/// Why a set of services could not be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoExportError {
    /// The services are in different packages (`shop.Orders`, `billing.Ledger`): a `.proto`
    /// file has one.
    #[error("the services are in different packages: {0} and {1}")]
    MixedPackages(String, String),
    /// No service to export.
    #[error("no service to export")]
    Empty,
}

/// Words `protoc` reserves; a name that is one gets a trailing `_`.
const KEYWORDS: &[&str] = &[
    "syntax",
    "import",
    "weak",
    "public",
    "package",
    "option",
    "message",
    "enum",
    "service",
    "rpc",
    "returns",
    "stream",
    "repeated",
    "optional",
    "required",
    "reserved",
    "extensions",
    "extend",
    "oneof",
    "map",
    "to",
    "max",
    "true",
    "false",
    "inf",
    "nan",
    "group",
    "double",
    "float",
    "int32",
    "int64",
    "uint32",
    "uint64",
    "sint32",
    "sint64",
    "fixed32",
    "fixed64",
    "sfixed32",
    "sfixed64",
    "bool",
    "string",
    "bytes",
];

/// A definition's name as a `.proto` identifier: dots and other separators become `_`, and a
/// keyword gets a trailing `_`.
fn ident(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// `OrderState` → `ORDER_STATE`, for enum value prefixes (values share the package's scope).
fn screaming(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The `.proto` type of a request or response: a message, a well-known wrapper for a scalar
/// (`docs/protocol.md` §16), `google.protobuf.Empty` for none; `None` if it has no Protobuf form.
fn rpc_type(
    t: &TypeRef,
    defs: &Definitions,
    imports: &mut BTreeSet<&'static str>,
) -> Option<String> {
    let wrapper = |name: &str, imports: &mut BTreeSet<&'static str>| {
        imports.insert("google/protobuf/wrappers.proto");
        Some(format!("google.protobuf.{name}"))
    };
    match t {
        TypeRef::Unit => {
            imports.insert("google/protobuf/empty.proto");
            Some("google.protobuf.Empty".to_owned())
        }
        TypeRef::Bool => wrapper("BoolValue", imports),
        TypeRef::U32 => wrapper("UInt32Value", imports),
        TypeRef::U64 => wrapper("UInt64Value", imports),
        TypeRef::I32 => wrapper("Int32Value", imports),
        TypeRef::I64 => wrapper("Int64Value", imports),
        TypeRef::F32 => wrapper("FloatValue", imports),
        TypeRef::F64 => wrapper("DoubleValue", imports),
        TypeRef::String => wrapper("StringValue", imports),
        TypeRef::Bytes => wrapper("BytesValue", imports),
        TypeRef::Named(n) => match defs.get(n) {
            Some(TypeDef::Message(m)) if has_proto(m) => Some(ident(n)),
            _ => None,
        },
        _ => None,
    }
}

/// Whether every field of a message says how it encodes in Protobuf (it derives
/// `prost::Message`); a message without fields has nothing to say and qualifies.
fn has_proto(m: &MessageDef) -> bool {
    m.fields.iter().all(|f| f.proto.is_some())
}

/// Renders services of one package as a proto3 file: the package, the imports it needs, a
/// `service` per service with an `rpc` per method that can be called in Protobuf, then every
/// message and enum they use. Methods that cannot be called in Protobuf (several arguments, or a
/// request or reply type without a Protobuf encoding) are left out with a comment saying why,
/// as are messages without one. Names that are `.proto` keywords get a trailing `_`; enum
/// values are prefixed with their enum's name (`ORDER_STATE_PAID`), which `prost-build`
/// removes again.
///
/// # Errors
/// [`ProtoExportError`] for no services or services in different packages.
pub fn to_proto(description: &Description) -> Result<String, ProtoExportError> {
    let services = &description.services;
    let first = services.first().ok_or(ProtoExportError::Empty)?;
    let package = |s: &ServiceDescription| {
        s.name
            .rsplit_once('.')
            .map_or(String::new(), |(p, _)| p.to_owned())
    };
    let pkg = package(first);
    for s in services {
        if package(s) != pkg {
            return Err(ProtoExportError::MixedPackages(
                first.name.clone(),
                s.name.clone(),
            ));
        }
    }
    let defs: &Definitions = &description.types;
    let mut imports = BTreeSet::new();
    let mut body = String::new();
    for s in services {
        let name = s.name.rsplit_once('.').map_or(s.name.as_str(), |(_, n)| n);
        if !s.docs.is_empty() {
            comment(&mut body, "", &s.docs);
        }
        let _ = writeln!(body, "service {} {{", ident(name));
        for m in &s.methods {
            let Some(types) = &m.types else {
                let _ = writeln!(body, "  // {}: described without schemas", m.name);
                continue;
            };
            let req = if m.arity > 1 {
                None
            } else {
                rpc_type(&types.request, defs, &mut imports)
            };
            let resp = if m.one_way {
                rpc_type(&TypeRef::Unit, defs, &mut imports)
            } else {
                rpc_type(&types.response, defs, &mut imports)
            };
            match (req, resp) {
                (Some(req), Some(resp)) => {
                    if !m.docs.is_empty() {
                        comment(&mut body, "  ", &m.docs);
                    }
                    let _ = writeln!(body, "  rpc {} ({req}) returns ({resp});", m.name);
                }
                _ => {
                    let _ = writeln!(
                        body,
                        "  // {}: not callable in Protobuf (several arguments, or a message \
                         without a Protobuf encoding)",
                        m.name
                    );
                }
            }
        }
        body.push_str("}\n\n");
    }
    for (name, def) in defs.iter() {
        match def {
            TypeDef::Message(m) if has_proto(m) => message(&mut body, name, m),
            TypeDef::Message(_) => {
                let _ = writeln!(body, "// {name}: no Protobuf encoding\n");
            }
            TypeDef::Enum(e) if e.variants.iter().all(|v| v.number.is_some()) => {
                enumeration(&mut body, name, e)
            }
            _ => {
                let _ = writeln!(
                    body,
                    "// {name}: an enum without numbers has no Protobuf form\n"
                );
            }
        }
    }
    let mut out = String::from(
        "// Generated from the service descriptions (rpc_core::describe::to_proto).\n",
    );
    out.push_str("syntax = \"proto3\";\n\n");
    if !pkg.is_empty() {
        let _ = writeln!(out, "package {pkg};\n");
    }
    for i in &imports {
        let _ = writeln!(out, "import \"{i}\";");
    }
    if !imports.is_empty() {
        out.push('\n');
    }
    out.push_str(&body);
    Ok(out)
}

fn comment(out: &mut String, indent: &str, docs: &str) {
    for line in docs.lines() {
        let _ = writeln!(
            out,
            "{indent}//{}{line}",
            if line.is_empty() { "" } else { " " }
        );
    }
}

fn message(out: &mut String, name: &str, m: &MessageDef) {
    if !m.docs.is_empty() {
        comment(out, "", &m.docs);
    }
    let _ = writeln!(out, "message {} {{", ident(name));
    for f in &m.fields {
        let Some(p) = &f.proto else { continue };
        let field_name = ident(f.rust_name.as_deref().unwrap_or(&f.name));
        let named = p.type_name.as_deref().map(ident);
        let ty = if let Some(inner) = p
            .kind
            .strip_prefix("map<")
            .and_then(|k| k.strip_suffix('>'))
        {
            let parts: Vec<String> = inner
                .split(',')
                .map(|t| match t.trim() {
                    "message" | "enum" => named.clone().unwrap_or_else(|| "bytes".to_owned()),
                    other => other.to_owned(),
                })
                .collect();
            format!("map<{}>", parts.join(", "))
        } else if p.kind == "message" || p.kind == "enum" {
            named.unwrap_or_else(|| "bytes".to_owned())
        } else {
            p.kind.clone()
        };
        let label = if p.repeated {
            "repeated "
        } else if p.optional {
            "optional "
        } else {
            ""
        };
        if !f.docs.is_empty() {
            comment(out, "  ", &f.docs);
        }
        let _ = writeln!(out, "  {label}{ty} {field_name} = {};", p.number);
    }
    out.push_str("}\n\n");
}

fn enumeration(out: &mut String, name: &str, e: &EnumDef) {
    if !e.docs.is_empty() {
        comment(out, "", &e.docs);
    }
    let _ = writeln!(out, "enum {} {{", ident(name));
    let prefix = screaming(&ident(name));
    for v in &e.variants {
        let value = screaming(v.rust_name.as_deref().unwrap_or(&v.name));
        let _ = writeln!(
            out,
            "  {prefix}_{value} = {};",
            v.number.unwrap_or_default()
        );
    }
    out.push_str("}\n\n");
}

#[cfg(test)]
mod tests {
    use super::super::ServiceDescriptor;
    use super::*;

    #[test]
    fn names_become_proto_identifiers() {
        assert_eq!(ident("Order"), "Order");
        assert_eq!(ident("rpc.Status"), "rpc_Status");
        assert_eq!(ident("message"), "message_");
        assert_eq!(ident("9lives"), "_9lives");
        assert_eq!(screaming("OrderState"), "ORDER_STATE");
        assert_eq!(screaming("Paid"), "PAID");
    }

    #[test]
    fn no_services_or_mixed_packages_are_errors() {
        let of = |s: &[&ServiceDescriptor]| to_proto(&Description::of(s));
        assert_eq!(of(&[]), Err(ProtoExportError::Empty));
        static A: ServiceDescriptor = ServiceDescriptor {
            name: "shop.Orders",
            version: "1",
            rust_name: "Orders",
            docs: "",
            methods: &[],
        };
        static B: ServiceDescriptor = ServiceDescriptor {
            name: "billing.Ledger",
            version: "1",
            rust_name: "Ledger",
            docs: "",
            methods: &[],
        };
        assert!(matches!(
            of(&[&A, &B]),
            Err(ProtoExportError::MixedPackages(..))
        ));
        let text = of(&[&A]).unwrap();
        assert!(text.contains("package shop;"), "{text}");
        assert!(text.contains("service Orders {"), "{text}");
    }
}
