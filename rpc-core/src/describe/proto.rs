//! The `.proto` export: a proto3 file whose messages encode as this framework's Protobuf codec
//! encodes the described types, so that a client generated from it by `protoc` talks to the
//! service in Protobuf.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use std::collections::BTreeMap;

use rpc_codec::schema::{
    Definitions, EnumDef, MessageDef, ProtoField, TypeDef, TypeRef, VariantShape,
};

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
    /// Two names of the description become one name in the `.proto` file, which `protoc`
    /// refuses: types or services whose names differ only in separators (`rpc.Status` and
    /// `rpc_Status`), enum values of one package scope, or fields of one message whose JSON
    /// names collide (proto3 compares them lower-cased, without underscores: `order_id`,
    /// `orderId` and `orderid` are one).
    #[error("{first} and {second} are both `{proto}` in the .proto file")]
    NameCollision {
        /// The first name, as described (`Order.order_id` for a field).
        first: String,
        /// The second name.
        second: String,
        /// What both became.
        proto: String,
    },
}

/// Names already given in one scope of the `.proto` file, by what they are compared as.
#[derive(Default)]
struct Scope(BTreeMap<String, String>);

impl Scope {
    /// Records that `described` becomes `key`; an error if another name did already.
    fn claim(&mut self, key: String, described: &str) -> Result<(), ProtoExportError> {
        match self.0.get(&key) {
            Some(first) if first != described => Err(ProtoExportError::NameCollision {
                first: first.clone(),
                second: described.to_owned(),
                proto: key,
            }),
            _ => {
                self.0.insert(key, described.to_owned());
                Ok(())
            }
        }
    }
}

/// How proto3 compares field names (and enum values after their prefix): lower case, without
/// underscores (`protoc` 3.21: "The JSON camel-case name of field … conflicts").
fn json_key(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
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
/// keyword gets a trailing `_` (a message named `string` could not be told from the scalar).
fn ident(name: &str) -> String {
    let mut out = field_ident(name);
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// A field's name as a `.proto` identifier: separators become `_`. Keywords stay: `protoc`
/// reads `string message = 1;` as a field named `message` (as in `google.rpc.Status`).
fn field_ident(name: &str) -> String {
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
    out
}

/// `OrderState` → `ORDER_STATE`, for enum value prefixes (values share the package's scope).
fn screaming(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !out.ends_with('_') {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `GuestName` → `guest_name`: a oneof member's field name from prost's variant name.
fn snake(name: &str) -> String {
    screaming(name).to_ascii_lowercase()
}

/// Whether an enum is a prost oneof: every variant holds one value with a Protobuf field.
fn is_oneof(e: &EnumDef) -> bool {
    !e.variants.is_empty()
        && e.variants.iter().all(|v| {
            v.shape == VariantShape::Newtype && v.fields.len() == 1 && v.fields[0].proto.is_some()
        })
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
    check_names(description)?;
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
                    // google/protobuf/descriptor.proto, MethodOptions.IdempotencyLevel.
                    let options = if m.idempotent {
                        " { option idempotency_level = IDEMPOTENT; }"
                    } else {
                        ";"
                    };
                    let req_stream = if m.client_streaming { "stream " } else { "" };
                    let resp_stream = if m.server_streaming { "stream " } else { "" };
                    let _ = writeln!(
                        body,
                        "  rpc {} ({req_stream}{req}) returns ({resp_stream}{resp}){options}",
                        m.name
                    );
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
            TypeDef::Message(m) if has_proto(m) => message(&mut body, name, m, defs),
            // Written inside the messages that hold them.
            TypeDef::Enum(e) if is_oneof(e) => {}
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

/// Refuses descriptions whose names would collide in the `.proto` file.
fn check_names(description: &Description) -> Result<(), ProtoExportError> {
    // Services, messages and enums share the package's scope, and so do enum values.
    let mut types = Scope::default();
    let mut values = Scope::default();
    for s in &description.services {
        let name = s.name.rsplit_once('.').map_or(s.name.as_str(), |(_, n)| n);
        types.claim(ident(name), &s.name)?;
    }
    for (name, def) in description.types.iter() {
        match def {
            TypeDef::Message(m) if has_proto(m) => {
                types.claim(ident(name), name)?;
                let mut fields = Scope::default();
                for f in &m.fields {
                    let field_name = f.rust_name.as_deref().unwrap_or(&f.name);
                    let described = format!("{name}.{field_name}");
                    fields.claim(json_key(&field_ident(field_name)), &described)?;
                    if let Some(TypeDef::Enum(e)) = oneof_of(f.proto.as_ref(), &description.types) {
                        for v in &e.variants {
                            let member = snake(v.rust_name.as_deref().unwrap_or(&v.name));
                            fields.claim(json_key(&member), &format!("{name}.{member}"))?;
                        }
                    }
                }
            }
            TypeDef::Enum(e) if is_oneof(e) => {}
            TypeDef::Enum(e) if e.variants.iter().all(|v| v.number.is_some()) => {
                types.claim(ident(name), name)?;
                let prefix = screaming(&ident(name));
                let mut stripped = Scope::default();
                for v in &e.variants {
                    let variant = v.rust_name.as_deref().unwrap_or(&v.name);
                    let described = format!("{name}.{variant}");
                    let value = screaming(variant);
                    stripped.claim(json_key(&value), &described)?;
                    values.claim(format!("{prefix}_{value}"), &described)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The oneof enum a `oneof` field refers to.
fn oneof_of<'d>(p: Option<&ProtoField>, defs: &'d Definitions) -> Option<&'d TypeDef> {
    let p = p.filter(|p| p.kind == "oneof")?;
    defs.get(p.type_name.as_deref()?)
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

fn message(out: &mut String, name: &str, m: &MessageDef, defs: &Definitions) {
    if !m.docs.is_empty() {
        comment(out, "", &m.docs);
    }
    let _ = writeln!(out, "message {} {{", ident(name));
    for f in &m.fields {
        let Some(p) = &f.proto else { continue };
        let field_name = field_ident(f.rust_name.as_deref().unwrap_or(&f.name));
        if !f.docs.is_empty() {
            comment(out, "  ", &f.docs);
        }
        if p.kind == "oneof" {
            match oneof_of(Some(p), defs) {
                Some(TypeDef::Enum(e)) if is_oneof(e) => {
                    let _ = writeln!(out, "  oneof {field_name} {{");
                    for v in &e.variants {
                        let Some(vp) = &v.fields[0].proto else {
                            continue;
                        };
                        if !v.docs.is_empty() {
                            comment(out, "    ", &v.docs);
                        }
                        let member = field_ident(&snake(v.rust_name.as_deref().unwrap_or(&v.name)));
                        let _ = writeln!(out, "    {} {member} = {};", field_type(vp), vp.number);
                    }
                    out.push_str("  }\n");
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "  // {field_name}: a oneof whose members are not described"
                    );
                }
            }
            continue;
        }
        // A message field has presence without `optional` (prost marks it optional: an Option).
        let label = if p.repeated {
            "repeated "
        } else if p.optional && p.kind != "message" {
            "optional "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {label}{} {field_name} = {};",
            field_type(p),
            p.number
        );
    }
    out.push_str("}\n\n");
}

/// A field's type as `.proto` spells it: a scalar, a message or enum name, or a map.
fn field_type(p: &ProtoField) -> String {
    let named = p.type_name.as_deref().map(ident);
    if let Some(inner) = p
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
    }
}

fn enumeration(out: &mut String, name: &str, e: &EnumDef) {
    if !e.docs.is_empty() {
        comment(out, "", &e.docs);
    }
    let _ = writeln!(out, "enum {} {{", ident(name));
    let prefix = screaming(&ident(name));
    for v in &e.variants {
        if !v.docs.is_empty() {
            comment(out, "  ", &v.docs);
        }
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
        assert_eq!(field_ident("message"), "message");
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

    /// A description of one service `shop.Orders` with no methods, and these types.
    fn with_types(types: serde_json::Value) -> Description {
        let doc = serde_json::json!({
            "format_version": 2,
            "services": [{"name": "shop.Orders", "version": "1", "docs": "", "methods": []}],
            "types": types,
        });
        Description::from_json(&doc.to_string()).expect("a valid description")
    }

    fn message(fields: &[(&str, u32)]) -> serde_json::Value {
        let fields: Vec<_> = fields
            .iter()
            .map(|(name, n)| {
                serde_json::json!({"name": name, "type": "u64", "required": true,
                    "proto": {"number": n, "type": "uint64"}})
            })
            .collect();
        serde_json::json!({"kind": "message", "rust_type": "x", "docs": "", "fields": fields})
    }

    fn enumeration(variants: &[(&str, i64)]) -> serde_json::Value {
        let variants: Vec<_> = variants
            .iter()
            .map(|(name, n)| serde_json::json!({"name": name, "shape": "unit", "number": n}))
            .collect();
        serde_json::json!({"kind": "enum", "rust_type": "x", "docs": "", "repr": "external",
            "variants": variants})
    }

    fn collision(d: &Description) -> (String, String, String) {
        match to_proto(d) {
            Err(ProtoExportError::NameCollision {
                first,
                second,
                proto,
            }) => (first, second, proto),
            other => panic!("expected a collision, got {other:?}"),
        }
    }

    #[test]
    fn names_that_collide_in_the_file_are_refused() {
        let d = with_types(serde_json::json!({
            "rpc.Status": message(&[("code", 1)]),
            "rpc_Status": message(&[("code", 1)]),
        }));
        assert_eq!(
            collision(&d),
            (
                "rpc.Status".into(),
                "rpc_Status".into(),
                "rpc_Status".into()
            )
        );
        // A message named as a service of the package.
        let d = with_types(serde_json::json!({ "Orders": message(&[("id", 1)]) }));
        assert_eq!(collision(&d).2, "Orders");
        // Fields proto3 compares as one (protoc: "The JSON camel-case name of field …").
        let d = with_types(serde_json::json!({
            "Order": message(&[("order_id", 1), ("orderId", 2)]),
        }));
        assert_eq!(
            collision(&d),
            (
                "Order.order_id".into(),
                "Order.orderId".into(),
                "orderid".into()
            )
        );
        // Enum values share the package's scope: ORDER_STATE_PAID twice.
        let d = with_types(serde_json::json!({
            "Order": enumeration(&[("StatePaid", 0)]),
            "OrderState": enumeration(&[("Paid", 0)]),
        }));
        assert_eq!(collision(&d).2, "ORDER_STATE_PAID");
        // Values of one enum that differ in case only.
        let d = with_types(serde_json::json!({
            "Level": enumeration(&[("Low", 0), ("LOW", 1)]),
        }));
        assert_eq!(collision(&d).2, "low");
        // Distinct names pass.
        let d = with_types(serde_json::json!({
            "Order": message(&[("order_id", 1), ("state", 2)]),
            "OrderState": enumeration(&[("Open", 0), ("Paid", 1)]),
        }));
        let text = to_proto(&d).unwrap();
        assert!(text.contains("ORDER_STATE_PAID = 1;"), "{text}");
    }

    #[test]
    fn a_oneof_is_written_with_its_members() {
        let d = with_types(serde_json::json!({
            "Review": {"kind": "message", "rust_type": "x", "docs": "", "fields": [
                {"name": "id", "type": "u64", "required": true,
                 "proto": {"number": 1, "type": "uint64"}},
                {"name": "author", "type": {"optional": {"ref": "Review.author"}},
                 "required": false,
                 "proto": {"number": 4, "type": "oneof", "type_name": "Review.author"}},
            ]},
            "Review.author": {"kind": "enum", "rust_type": "x", "docs": "", "repr": "external",
                "variants": [
                    {"name": "CustomerId", "shape": "newtype", "fields": [
                        {"name": "0", "type": "u64", "required": true,
                         "proto": {"number": 4, "type": "uint64"}}]},
                    {"name": "GuestName", "shape": "newtype", "docs": "Not signed in.",
                     "fields": [{"name": "0", "type": "string", "required": true,
                         "proto": {"number": 5, "type": "string"}}]},
                ]},
        }));
        let text = to_proto(&d).unwrap();
        let expected = "message Review {\n  uint64 id = 1;\n  oneof author {\n    \
                        uint64 customer_id = 4;\n    // Not signed in.\n    \
                        string guest_name = 5;\n  }\n}\n";
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains("Review_author"), "{text}");
        // Two members that are one name to proto3.
        let d = with_types(serde_json::json!({
            "Review": {"kind": "message", "rust_type": "x", "docs": "", "fields": [
                {"name": "guestName", "type": "u64", "required": true,
                 "proto": {"number": 1, "type": "uint64"}},
                {"name": "author", "type": {"optional": {"ref": "Review.author"}},
                 "required": false,
                 "proto": {"number": 4, "type": "oneof", "type_name": "Review.author"}},
            ]},
            "Review.author": {"kind": "enum", "rust_type": "x", "docs": "", "repr": "external",
                "variants": [{"name": "GuestName", "shape": "newtype", "fields": [
                    {"name": "0", "type": "string", "required": true,
                     "proto": {"number": 5, "type": "string"}}]}]},
        }));
        assert_eq!(collision(&d).2, "guestname");
    }
}
