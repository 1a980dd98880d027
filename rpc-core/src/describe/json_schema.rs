//! The JSON Schema export: the JSON form of every message a set of services uses, as JSON Schema
//! 2020-12, for validators and code generators of other languages.

use serde_json::{json, Map, Value};

use rpc_codec::schema::{
    Definitions, EnumDef, EnumRepr, FieldDef, MessageDef, TypeDef, TypeRef, VariantDef,
    VariantShape,
};

use super::model::Description;

/// The dialect every exported document declares.
pub const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The JSON Schema (2020-12) of the JSON codec's form of a type; named types are
/// `{"$ref": "#/$defs/NAME"}`.
pub fn type_schema(t: &TypeRef) -> Value {
    schema_at(t, "#/$defs/")
}

/// As [`type_schema`], with named types under `base` (`#/components/schemas/` in OpenAPI).
pub(super) fn schema_at(t: &TypeRef, base: &str) -> Value {
    let type_schema = |t: &TypeRef| schema_at(t, base);
    match t {
        TypeRef::Bool => json!({ "type": "boolean" }),
        TypeRef::U32 => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
        TypeRef::U64 => json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }),
        TypeRef::I32 => json!({ "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX }),
        TypeRef::I64 => json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX }),
        TypeRef::F32 | TypeRef::F64 => json!({ "type": "number" }),
        TypeRef::String => json!({ "type": "string" }),
        TypeRef::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        TypeRef::Unit => json!({ "type": "null" }),
        TypeRef::List(t) => json!({ "type": "array", "items": type_schema(t) }),
        TypeRef::Map(_, v) => json!({ "type": "object", "additionalProperties": type_schema(v) }),
        TypeRef::Optional(t) => json!({ "anyOf": [type_schema(t), { "type": "null" }] }),
        TypeRef::Named(n) => json!({ "$ref": format!("{base}{n}") }),
        TypeRef::Opaque(n) => json!({ "description": format!("{n}: no schema") }),
        _ => json!({}),
    }
}

/// An object with these fields: unknown members are allowed (they are ignored, `docs/protocol.md`
/// §16), required ones listed.
fn object(fields: &[FieldDef], docs: &str, base: &str) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for f in fields {
        let mut schema = schema_at(&f.ty, base);
        if !f.docs.is_empty() {
            schema["description"] = json!(f.docs);
        }
        properties.insert(f.name.clone(), schema);
        if f.required {
            required.push(json!(f.name));
        }
    }
    let mut v = json!({ "type": "object", "properties": properties, "required": required });
    if !docs.is_empty() {
        v["description"] = json!(docs);
    }
    v
}

/// A variant's content: nothing, an object of its fields, its one field, or an array of them.
fn content(v: &VariantDef, base: &str) -> Option<Value> {
    match v.shape {
        VariantShape::Struct => Some(object(&v.fields, "", base)),
        VariantShape::Newtype => v.fields.first().map(|f| schema_at(&f.ty, base)),
        VariantShape::Tuple => Some(json!({
            "type": "array",
            "prefixItems": v.fields.iter().map(|f| schema_at(&f.ty, base)).collect::<Vec<_>>(),
            "minItems": v.fields.len(),
            "maxItems": v.fields.len(),
        })),
        _ => None,
    }
}

fn enumeration(e: &EnumDef, base: &str) -> Value {
    let alternatives: Vec<Value> = e
        .variants
        .iter()
        .map(|v| match (&e.repr, content(v, base)) {
            (EnumRepr::External, None) => json!({ "const": v.name }),
            (EnumRepr::External, Some(c)) => json!({
                "type": "object",
                "properties": { v.name.clone(): c },
                "required": [v.name],
                "additionalProperties": false,
            }),
            (EnumRepr::Internal { tag }, c) => {
                let mut o = match c {
                    Some(o) if o["type"] == "object" => o,
                    _ => json!({ "type": "object", "properties": {}, "required": [] }),
                };
                o["properties"][tag] = json!({ "const": v.name });
                if let Some(r) = o["required"].as_array_mut() {
                    r.push(json!(tag));
                }
                o
            }
            (EnumRepr::Adjacent { tag, content: key }, c) => {
                let mut o = json!({
                    "type": "object",
                    "properties": { tag.clone(): { "const": v.name } },
                    "required": [tag],
                });
                if let Some(c) = c {
                    o["properties"][key] = c;
                    if let Some(r) = o["required"].as_array_mut() {
                        r.push(json!(key));
                    }
                }
                o
            }
            (EnumRepr::Untagged, c) => c.unwrap_or_else(|| json!({ "type": "null" })),
            (_, _) => json!({ "const": v.number.unwrap_or_default() }),
        })
        .collect();
    let mut v = json!({ "oneOf": alternatives });
    if !e.docs.is_empty() {
        v["description"] = json!(e.docs);
    }
    v
}

/// A named type's schema, its references under `base`.
pub(super) fn definition(def: &TypeDef, base: &str) -> Value {
    match def {
        TypeDef::Message(MessageDef { docs, fields, .. }) => object(fields, docs, base),
        TypeDef::Enum(e) => enumeration(e, base),
        _ => json!({}),
    }
}

/// A JSON Schema (2020-12) document with every message and enum the services' methods use in
/// `$defs`, and under `properties`, one entry per method path (`shop.Orders/Place`) whose
/// `request`, `response` and `error` are the schemas of its JSON bodies (the error: of a typed
/// error's value in `rpc-error-bin`; `rpc.Status` for a plain status). Unknown members are
/// allowed everywhere, as decoders ignore them.
///
/// ```
/// use rpc_core::describe::{to_json_schema, Description, ServiceDescriptor};
///
/// static EMPTY: ServiceDescriptor = ServiceDescriptor {
///     name: "demo.Empty", version: "1", rust_name: "Empty", docs: "", methods: &[],
/// };
/// let doc = to_json_schema(&Description::of(&[&EMPTY]));
/// assert_eq!(doc["$schema"], "https://json-schema.org/draft/2020-12/schema");
/// ```
pub fn to_json_schema(description: &Description) -> Value {
    let defs: &Definitions = &description.types;
    let services = &description.services;
    let mut methods = Map::new();
    for s in services {
        for m in &s.methods {
            let Some(schemas) = &m.types else {
                continue;
            };
            let mut method = json!({
                "type": "object",
                "properties": {
                    "request": type_schema(&schemas.request),
                    "response": type_schema(&schemas.response),
                    "error": type_schema(&schemas.error),
                },
            });
            if !m.docs.is_empty() {
                method["description"] = json!(m.docs);
            }
            methods.insert(m.path.clone(), method);
        }
    }
    let mut all = Map::new();
    for (name, def) in defs.iter() {
        all.insert(name.to_owned(), definition(def, "#/$defs/"));
    }
    json!({
        "$schema": JSON_SCHEMA_DIALECT,
        "title": services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        "type": "object",
        "properties": methods,
        "$defs": all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_and_containers_map_to_json_schema() {
        assert_eq!(type_schema(&TypeRef::Bool), json!({ "type": "boolean" }));
        assert_eq!(
            type_schema(&TypeRef::Optional(Box::new(TypeRef::Named("Order".into())))),
            json!({ "anyOf": [{ "$ref": "#/$defs/Order" }, { "type": "null" }] })
        );
        assert_eq!(
            type_schema(&TypeRef::Bytes),
            json!({ "type": "string", "contentEncoding": "base64" })
        );
        assert_eq!(type_schema(&TypeRef::U32)["maximum"], 4_294_967_295u64);
    }

    #[test]
    fn enums_follow_their_representation() {
        let e = EnumDef::new(
            "",
            EnumRepr::External,
            vec![
                VariantDef::unit("Closed"),
                VariantDef::with_fields(
                    "OutOfStock",
                    VariantShape::Struct,
                    vec![FieldDef::new("sku", TypeRef::String)],
                ),
            ],
        );
        let s = enumeration(&e, "#/$defs/");
        assert_eq!(s["oneOf"][0], json!({ "const": "Closed" }));
        assert_eq!(s["oneOf"][1]["required"], json!(["OutOfStock"]));
        assert_eq!(
            s["oneOf"][1]["properties"]["OutOfStock"]["required"],
            json!(["sku"])
        );
        let tagged = EnumDef::new(
            "",
            EnumRepr::Internal { tag: "kind".into() },
            vec![VariantDef::with_fields(
                "Paid",
                VariantShape::Struct,
                vec![FieldDef::new("cents", TypeRef::U64)],
            )],
        );
        let s = enumeration(&tagged, "#/$defs/");
        assert_eq!(
            s["oneOf"][0]["properties"]["kind"],
            json!({ "const": "Paid" })
        );
        assert_eq!(s["oneOf"][0]["required"], json!(["cents", "kind"]));
    }
}
