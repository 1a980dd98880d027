//! Schemas of message types: what a client written in another language needs to build a request
//! and read a reply without the Rust source.
//!
//! A type describes itself through [`Schema`]: scalars, strings, bytes, lists, maps and optionals
//! directly, messages and enums as a [`TypeRef::Named`] reference into a [`Definitions`] table,
//! which holds each one's fields (with their serde names and, for types that derive
//! `prost::Message`, their Protobuf field numbers and types) or variants. `#[derive(Schema)]`
//! (re-exported by `rpc-core`) writes the implementation from the type's definition and its
//! `#[serde(...)]` and `#[prost(...)]` attributes; `#[service]` asks for the schema of every
//! request, response and error type, and a type without one is described as
//! [`TypeRef::Opaque`] (it still works in every codec it supports).
//!
//! ```
//! use rpc_codec::schema::{Definitions, FieldDef, MessageDef, Schema, TypeDef, TypeRef};
//!
//! // What `#[derive(Schema)]` writes for `struct Line { sku: String, quantity: u32 }`.
//! struct Line;
//! impl Schema for Line {
//!     fn type_ref(defs: &mut Definitions) -> TypeRef {
//!         defs.named("Line", "demo::Line", |defs| {
//!             TypeDef::Message(MessageDef::new("An order line.", vec![
//!                 FieldDef::new("sku", String::type_ref(defs)),
//!                 FieldDef::new("quantity", u32::type_ref(defs)),
//!             ]))
//!         })
//!     }
//! }
//!
//! let mut defs = Definitions::new();
//! let lines = <Vec<Line>>::type_ref(&mut defs);
//! assert_eq!(lines, TypeRef::List(Box::new(TypeRef::Named("Line".into()))));
//! assert_eq!(lines.to_json(), serde_json::json!({ "list": { "ref": "Line" } }));
//! assert_eq!(defs.to_json()["Line"]["fields"][1]["type"], "u32");
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Map, Value};

/// A type as a field, a request or a reply sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TypeRef {
    /// `true` or `false`.
    Bool,
    /// An unsigned integer of at most 32 bits (`u8`, `u16`, `u32`).
    U32,
    /// An unsigned integer of 64 bits (`u64`, `usize`).
    U64,
    /// A signed integer of at most 32 bits (`i8`, `i16`, `i32`).
    I32,
    /// A signed integer of 64 bits (`i64`, `isize`).
    I64,
    /// A 32-bit float.
    F32,
    /// A 64-bit float.
    F64,
    /// A UTF-8 string (also `char`).
    String,
    /// A byte string (`bytes::Bytes`): base64 in JSON, `bin` in MessagePack, `bytes` in
    /// Protobuf. (`Vec<u8>` is a list of numbers in serde's forms.)
    Bytes,
    /// No value: the empty body of a method without arguments or results.
    Unit,
    /// A sequence of the element type.
    List(Box<TypeRef>),
    /// A map from the key type to the value type (a JSON object when keys are strings).
    Map(Box<TypeRef>, Box<TypeRef>),
    /// The type or nothing (`null` in JSON, `nil` in MessagePack, an absent field in Protobuf).
    Optional(Box<TypeRef>),
    /// A message or enum of the [`Definitions`], by name.
    Named(String),
    /// A type without a schema, by its Rust name: it works in the codecs it supports, but this
    /// description cannot say how it looks.
    Opaque(String),
}

impl TypeRef {
    /// The JSON form used in descriptions: a scalar is its name (`"u64"`, `"string"`,
    /// `"bytes"`, `"unit"`, …); the others are objects of one member: `{"list": T}`,
    /// `{"map": {"key": K, "value": V}}`, `{"optional": T}`, `{"ref": "Name"}`,
    /// `{"opaque": "rust::Type"}`.
    pub fn to_json(&self) -> Value {
        match self {
            TypeRef::Bool => json!("bool"),
            TypeRef::U32 => json!("u32"),
            TypeRef::U64 => json!("u64"),
            TypeRef::I32 => json!("i32"),
            TypeRef::I64 => json!("i64"),
            TypeRef::F32 => json!("f32"),
            TypeRef::F64 => json!("f64"),
            TypeRef::String => json!("string"),
            TypeRef::Bytes => json!("bytes"),
            TypeRef::Unit => json!("unit"),
            TypeRef::List(t) => json!({ "list": t.to_json() }),
            TypeRef::Map(k, v) => json!({ "map": { "key": k.to_json(), "value": v.to_json() } }),
            TypeRef::Optional(t) => json!({ "optional": t.to_json() }),
            TypeRef::Named(n) => json!({ "ref": n }),
            TypeRef::Opaque(n) => json!({ "opaque": n }),
        }
    }

    /// The name of the message or enum this type is, holds or is optional of (through lists,
    /// maps' values and optionals), if any.
    pub fn named(&self) -> Option<&str> {
        match self {
            TypeRef::Named(n) => Some(n),
            TypeRef::List(t) | TypeRef::Optional(t) | TypeRef::Map(_, t) => t.named(),
            _ => None,
        }
    }
}

/// A named type's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeDef {
    /// A struct: named fields (a JSON object, a MessagePack map, a Protobuf message).
    Message(MessageDef),
    /// An enum: named variants.
    Enum(EnumDef),
}

impl TypeDef {
    fn to_json(&self, rust_type: &str) -> Value {
        match self {
            TypeDef::Message(m) => json!({
                "kind": "message",
                "rust_type": rust_type,
                "docs": m.docs,
                "fields": m.fields.iter().map(FieldDef::to_json).collect::<Vec<_>>(),
            }),
            TypeDef::Enum(e) => json!({
                "kind": "enum",
                "rust_type": rust_type,
                "docs": e.docs,
                "repr": e.repr.to_json(),
                "variants": e.variants.iter().map(VariantDef::to_json).collect::<Vec<_>>(),
            }),
        }
    }
}

/// The fields of a message, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageDef {
    /// The type's doc comment.
    pub docs: String,
    /// Its fields (those serde skips are left out).
    pub fields: Vec<FieldDef>,
}

impl MessageDef {
    /// A message with these docs and fields.
    pub fn new(docs: impl Into<String>, fields: Vec<FieldDef>) -> MessageDef {
        MessageDef {
            docs: docs.into(),
            fields,
        }
    }
}

/// One field of a message (or of an enum's struct variant).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldDef {
    /// Its name in JSON and MessagePack (serde's, after `rename` and `rename_all`).
    pub name: String,
    /// Its name in Rust, when it differs from `name`.
    pub rust_name: Option<String>,
    /// Its doc comment.
    pub docs: String,
    /// Its type in serde's forms (JSON, MessagePack).
    pub ty: TypeRef,
    /// Whether a message without it fails to decode (serde: not an `Option`, no `default`).
    pub required: bool,
    /// Its Protobuf field, for types that derive `prost::Message`.
    pub proto: Option<ProtoField>,
}

impl FieldDef {
    /// A required field without Protobuf information or docs.
    pub fn new(name: impl Into<String>, ty: TypeRef) -> FieldDef {
        let required = !matches!(ty, TypeRef::Optional(_));
        FieldDef {
            name: name.into(),
            rust_name: None,
            docs: String::new(),
            ty,
            required,
            proto: None,
        }
    }

    /// With its Rust name (when serde renames it).
    #[must_use]
    pub fn rust_name(mut self, name: impl Into<String>) -> FieldDef {
        self.rust_name = Some(name.into());
        self
    }

    /// With its doc comment.
    #[must_use]
    pub fn docs(mut self, docs: impl Into<String>) -> FieldDef {
        self.docs = docs.into();
        self
    }

    /// Required or not (a serde `default` makes a field optional on decoding).
    #[must_use]
    pub fn required(mut self, required: bool) -> FieldDef {
        self.required = required;
        self
    }

    /// With its Protobuf field.
    #[must_use]
    pub fn proto(mut self, proto: ProtoField) -> FieldDef {
        self.proto = Some(proto);
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.ty.to_json(),
            "required": self.required,
        });
        if let Some(r) = &self.rust_name {
            v["rust_name"] = json!(r);
        }
        if !self.docs.is_empty() {
            v["docs"] = json!(self.docs);
        }
        if let Some(p) = &self.proto {
            v["proto"] = p.to_json();
        }
        v
    }
}

/// A field's Protobuf encoding, from its `#[prost(...)]` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtoField {
    /// The field number (`tag`).
    pub number: u32,
    /// The Protobuf type as `.proto` spells it: a scalar (`uint64`, `string`, `bytes`,
    /// `sint32`, `fixed64`, …), or `message` / `enum` (their name is [`type_name`]), or
    /// `map<K, V>` with scalar or `message`/`enum` names inside.
    ///
    /// [`type_name`]: ProtoField::type_name
    pub kind: String,
    /// `repeated`.
    pub repeated: bool,
    /// proto3 `optional` (explicit presence).
    pub optional: bool,
    /// For `message` and `enum` fields (and map values), the name of the type in the
    /// [`Definitions`].
    pub type_name: Option<String>,
}

impl ProtoField {
    /// A singular field `number` of `kind`.
    pub fn new(number: u32, kind: impl Into<String>) -> ProtoField {
        ProtoField {
            number,
            kind: kind.into(),
            repeated: false,
            optional: false,
            type_name: None,
        }
    }

    /// `repeated` or not.
    #[must_use]
    pub fn repeated(mut self, repeated: bool) -> ProtoField {
        self.repeated = repeated;
        self
    }

    /// proto3 `optional` or not.
    #[must_use]
    pub fn optional(mut self, optional: bool) -> ProtoField {
        self.optional = optional;
        self
    }

    /// With the name of its message or enum type.
    #[must_use]
    pub fn type_name(mut self, name: Option<String>) -> ProtoField {
        self.type_name = name;
        self
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "number": self.number, "type": self.kind });
        if self.repeated {
            v["repeated"] = json!(true);
        }
        if self.optional {
            v["optional"] = json!(true);
        }
        if let Some(n) = &self.type_name {
            v["type_name"] = json!(n);
        }
        v
    }
}

/// How an enum's value looks in serde's forms (serde's enum representations).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnumRepr {
    /// A unit variant is its name as a string; another is an object of one member, the
    /// variant's name, holding its content (serde's default).
    External,
    /// An object with the variant's name under `tag` beside its fields.
    Internal {
        /// The tag's member name.
        tag: String,
    },
    /// An object with the variant's name under `tag` and its content under `content`.
    Adjacent {
        /// The tag's member name.
        tag: String,
        /// The content's member name.
        content: String,
    },
    /// The content alone; the first variant it decodes as wins.
    Untagged,
    /// A number: a Protobuf enumeration carried as its `i32` (fields that hold one say so in
    /// their [`ProtoField`]).
    Number,
}

impl EnumRepr {
    fn to_json(&self) -> Value {
        match self {
            EnumRepr::External => json!("external"),
            EnumRepr::Internal { tag } => json!({ "internal": { "tag": tag } }),
            EnumRepr::Adjacent { tag, content } => {
                json!({ "adjacent": { "tag": tag, "content": content } })
            }
            EnumRepr::Untagged => json!("untagged"),
            EnumRepr::Number => json!("number"),
        }
    }
}

/// The variants of an enum, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnumDef {
    /// The type's doc comment.
    pub docs: String,
    /// How a value looks.
    pub repr: EnumRepr,
    /// Its variants (those serde skips are left out).
    pub variants: Vec<VariantDef>,
}

impl EnumDef {
    /// An enum with these docs, representation and variants.
    pub fn new(docs: impl Into<String>, repr: EnumRepr, variants: Vec<VariantDef>) -> EnumDef {
        EnumDef {
            docs: docs.into(),
            repr,
            variants,
        }
    }
}

/// The shape of a variant's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VariantShape {
    /// No content.
    Unit,
    /// Named fields (an object).
    Struct,
    /// One unnamed field: the content is that value.
    Newtype,
    /// Several unnamed fields: the content is an array (the fields are named `0`, `1`, …).
    Tuple,
}

/// One variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VariantDef {
    /// Its name in JSON and MessagePack (serde's).
    pub name: String,
    /// Its Rust name, when it differs.
    pub rust_name: Option<String>,
    /// Its doc comment.
    pub docs: String,
    /// Its number, for enums with explicit discriminants (Protobuf enumerations).
    pub number: Option<i64>,
    /// The shape of its content.
    pub shape: VariantShape,
    /// Its fields (struct, newtype and tuple variants).
    pub fields: Vec<FieldDef>,
}

impl VariantDef {
    /// A unit variant.
    pub fn unit(name: impl Into<String>) -> VariantDef {
        VariantDef {
            name: name.into(),
            rust_name: None,
            docs: String::new(),
            number: None,
            shape: VariantShape::Unit,
            fields: Vec::new(),
        }
    }

    /// A variant of `shape` with `fields`.
    pub fn with_fields(
        name: impl Into<String>,
        shape: VariantShape,
        fields: Vec<FieldDef>,
    ) -> VariantDef {
        VariantDef {
            shape,
            fields,
            ..VariantDef::unit(name)
        }
    }

    /// With its Rust name (when serde renames it).
    #[must_use]
    pub fn rust_name(mut self, name: impl Into<String>) -> VariantDef {
        self.rust_name = Some(name.into());
        self
    }

    /// With its doc comment.
    #[must_use]
    pub fn docs(mut self, docs: impl Into<String>) -> VariantDef {
        self.docs = docs.into();
        self
    }

    /// With its number.
    #[must_use]
    pub fn number(mut self, number: i64) -> VariantDef {
        self.number = Some(number);
        self
    }

    fn to_json(&self) -> Value {
        let shape = match self.shape {
            VariantShape::Unit => "unit",
            VariantShape::Struct => "struct",
            VariantShape::Newtype => "newtype",
            VariantShape::Tuple => "tuple",
        };
        let mut v = json!({ "name": self.name, "shape": shape });
        if let Some(r) = &self.rust_name {
            v["rust_name"] = json!(r);
        }
        if !self.docs.is_empty() {
            v["docs"] = json!(self.docs);
        }
        if let Some(n) = self.number {
            v["number"] = json!(n);
        }
        if !self.fields.is_empty() {
            v["fields"] = Value::Array(self.fields.iter().map(FieldDef::to_json).collect());
        }
        v
    }
}

/// The named types a set of schemas refers to, by name, each defined once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definitions {
    /// name → (the Rust type that claimed it, its definition).
    types: BTreeMap<String, (String, TypeDef)>,
}

impl Definitions {
    /// An empty table.
    pub fn new() -> Definitions {
        Definitions::default()
    }

    /// A reference to the type `name` (the Rust type `rust_type`), defining it with `define` the
    /// first time. A type that refers to itself, directly or not, finds its name already taken
    /// while it is being defined, so recursive types are described by reference. When another
    /// Rust type already took `name`, this one is named by its Rust path instead (`::` read as
    /// `.`), so that two types never share a definition.
    pub fn named(
        &mut self,
        name: &str,
        rust_type: &str,
        define: impl FnOnce(&mut Definitions) -> TypeDef,
    ) -> TypeRef {
        let name = match self.types.get(name) {
            Some((owner, _)) if owner == rust_type => return TypeRef::Named(name.to_owned()),
            Some(_) => rust_type.replace("::", "."),
            None => name.to_owned(),
        };
        if self.types.contains_key(&name) {
            return TypeRef::Named(name);
        }
        // A placeholder while the fields are described: a reference back to this type ends
        // there.
        let placeholder = TypeDef::Message(MessageDef::default());
        self.types
            .insert(name.clone(), (rust_type.to_owned(), placeholder));
        let def = define(self);
        self.types.insert(name.clone(), (rust_type.to_owned(), def));
        TypeRef::Named(name)
    }

    /// The definition of `name`.
    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name).map(|(_, d)| d)
    }

    /// The Rust type that defined `name`.
    pub fn rust_type(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(|(r, _)| r.as_str())
    }

    /// Every definition, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TypeDef)> {
        self.types.iter().map(|(n, (_, d))| (n.as_str(), d))
    }

    /// How many types are defined.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether no type is defined.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The JSON form used in descriptions: an object from each name to its definition,
    /// `{"kind": "message", "rust_type", "docs", "fields": [{"name", "type", "required",
    /// "rust_name"?, "docs"?, "proto"?: {"number", "type", "repeated"?, "optional"?,
    /// "type_name"?}}]}` or `{"kind": "enum", "rust_type", "docs", "repr", "variants": [{"name",
    /// "shape", "rust_name"?, "docs"?, "number"?, "fields"?}]}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        for (name, (rust_type, def)) in &self.types {
            out.insert(name.clone(), def.to_json(rust_type));
        }
        Value::Object(out)
    }
}

/// A description's schema JSON that does not read as one: what and where (a JSON pointer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {what}")]
pub struct SchemaError {
    /// Where in the document, as a JSON pointer (`/types/Order/fields/2/type`).
    pub at: String,
    /// What is wrong.
    pub what: String,
}

impl SchemaError {
    fn new(at: &str, what: impl Into<String>) -> SchemaError {
        SchemaError {
            at: at.to_owned(),
            what: what.into(),
        }
    }
}

fn str_at<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a str, SchemaError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| SchemaError::new(at, format!("`{key}` must be a string")))
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl TypeRef {
    /// Reads the JSON form of [`TypeRef::to_json`]; `at` says where, for errors.
    ///
    /// # Errors
    /// [`SchemaError`] for anything else (an unknown scalar name, an object that is not one of
    /// the forms).
    pub fn from_json(v: &Value, at: &str) -> Result<TypeRef, SchemaError> {
        if let Some(name) = v.as_str() {
            return Ok(match name {
                "bool" => TypeRef::Bool,
                "u32" => TypeRef::U32,
                "u64" => TypeRef::U64,
                "i32" => TypeRef::I32,
                "i64" => TypeRef::I64,
                "f32" => TypeRef::F32,
                "f64" => TypeRef::F64,
                "string" => TypeRef::String,
                "bytes" => TypeRef::Bytes,
                "unit" => TypeRef::Unit,
                other => return Err(SchemaError::new(at, format!("unknown type {other:?}"))),
            });
        }
        let Some((key, inner)) = v
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return Err(SchemaError::new(
                at,
                "a type is a name or an object of one member",
            ));
        };
        let sub = |k: &str| format!("{at}/{k}");
        Ok(match key.as_str() {
            "list" => TypeRef::List(Box::new(TypeRef::from_json(inner, &sub("list"))?)),
            "optional" => TypeRef::Optional(Box::new(TypeRef::from_json(inner, &sub("optional"))?)),
            "map" => {
                let at = sub("map");
                let k = inner
                    .get("key")
                    .ok_or_else(|| SchemaError::new(&at, "no `key`"))?;
                let v = inner
                    .get("value")
                    .ok_or_else(|| SchemaError::new(&at, "no `value`"))?;
                TypeRef::Map(
                    Box::new(TypeRef::from_json(k, &format!("{at}/key"))?),
                    Box::new(TypeRef::from_json(v, &format!("{at}/value"))?),
                )
            }
            "ref" => TypeRef::Named(
                inner
                    .as_str()
                    .ok_or_else(|| SchemaError::new(&sub("ref"), "must be a string"))?
                    .to_owned(),
            ),
            "opaque" => TypeRef::Opaque(inner.as_str().unwrap_or_default().to_owned()),
            other => return Err(SchemaError::new(at, format!("unknown type form {other:?}"))),
        })
    }

    /// Every name this type refers to.
    fn refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            TypeRef::Named(n) => out.push(n),
            TypeRef::List(t) | TypeRef::Optional(t) => t.refs(out),
            TypeRef::Map(k, v) => {
                k.refs(out);
                v.refs(out);
            }
            _ => {}
        }
    }
}

impl FieldDef {
    fn from_json(v: &Value, at: &str) -> Result<FieldDef, SchemaError> {
        let name = str_at(v, "name", at)?;
        let ty = TypeRef::from_json(
            v.get("type")
                .ok_or_else(|| SchemaError::new(at, "no `type`"))?,
            &format!("{at}/type"),
        )?;
        let proto = match v.get("proto") {
            None | Some(Value::Null) => None,
            Some(p) => {
                let at = format!("{at}/proto");
                let number = p
                    .get("number")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| SchemaError::new(&at, "`number` must be a field number"))?;
                Some(ProtoField {
                    number,
                    kind: str_at(p, "type", &at)?.to_owned(),
                    repeated: p.get("repeated").and_then(Value::as_bool).unwrap_or(false),
                    optional: p.get("optional").and_then(Value::as_bool).unwrap_or(false),
                    type_name: opt_str(p, "type_name"),
                })
            }
        };
        Ok(FieldDef {
            name: name.to_owned(),
            rust_name: opt_str(v, "rust_name"),
            docs: opt_str(v, "docs").unwrap_or_default(),
            ty,
            required: v.get("required").and_then(Value::as_bool).unwrap_or(true),
            proto,
        })
    }
}

/// Fields in order; two with one name are an error (which one a value's member belongs to
/// would be anyone's guess).
fn fields_from_json(v: Option<&Value>, at: &str) -> Result<Vec<FieldDef>, SchemaError> {
    let fields: Vec<FieldDef> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, f)| FieldDef::from_json(f, &format!("{at}/{i}")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(SchemaError::new(at, "`fields` must be an array")),
    };
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.name == f.name) {
            return Err(SchemaError::new(
                &format!("{at}/{i}"),
                format!("a second field named {:?}", f.name),
            ));
        }
    }
    Ok(fields)
}

impl Definitions {
    /// Reads the JSON form of [`Definitions::to_json`] (the `types` of a description), and
    /// checks that every name a definition refers to is defined.
    ///
    /// # Errors
    /// [`SchemaError`] for a definition that does not read, or a reference to a missing type.
    pub fn from_json(v: &Value, at: &str) -> Result<Definitions, SchemaError> {
        let Some(types) = v.as_object() else {
            return Err(SchemaError::new(at, "`types` must be an object"));
        };
        let mut defs = Definitions::new();
        for (name, d) in types {
            let at = format!("{at}/{}", name.replace('~', "~0").replace('/', "~1"));
            let rust_type = opt_str(d, "rust_type").unwrap_or_default();
            let docs = opt_str(d, "docs").unwrap_or_default();
            let def = match d.get("kind").and_then(Value::as_str) {
                Some("message") => TypeDef::Message(MessageDef {
                    docs,
                    fields: fields_from_json(d.get("fields"), &format!("{at}/fields"))?,
                }),
                Some("enum") => {
                    let repr = match d.get("repr") {
                        Some(Value::String(s)) if s == "external" => EnumRepr::External,
                        Some(Value::String(s)) if s == "untagged" => EnumRepr::Untagged,
                        Some(Value::String(s)) if s == "number" => EnumRepr::Number,
                        Some(Value::Object(o)) if o.contains_key("internal") => {
                            EnumRepr::Internal {
                                tag: str_at(&o["internal"], "tag", &at)?.to_owned(),
                            }
                        }
                        Some(Value::Object(o)) if o.contains_key("adjacent") => {
                            EnumRepr::Adjacent {
                                tag: str_at(&o["adjacent"], "tag", &at)?.to_owned(),
                                content: str_at(&o["adjacent"], "content", &at)?.to_owned(),
                            }
                        }
                        _ => return Err(SchemaError::new(&at, "unknown enum `repr`")),
                    };
                    let mut variants: Vec<VariantDef> = Vec::new();
                    let list = d.get("variants").and_then(Value::as_array);
                    for (i, v) in list.into_iter().flatten().enumerate() {
                        let at = format!("{at}/variants/{i}");
                        let vname = str_at(v, "name", &at)?;
                        if variants.iter().any(|w| w.name == vname) {
                            return Err(SchemaError::new(
                                &at,
                                format!("a second variant named {vname:?}"),
                            ));
                        }
                        let shape = match v.get("shape").and_then(Value::as_str) {
                            Some("unit") => VariantShape::Unit,
                            Some("struct") => VariantShape::Struct,
                            Some("newtype") => VariantShape::Newtype,
                            Some("tuple") => VariantShape::Tuple,
                            _ => return Err(SchemaError::new(&at, "unknown variant `shape`")),
                        };
                        variants.push(VariantDef {
                            name: str_at(v, "name", &at)?.to_owned(),
                            rust_name: opt_str(v, "rust_name"),
                            docs: opt_str(v, "docs").unwrap_or_default(),
                            number: v.get("number").and_then(Value::as_i64),
                            shape,
                            fields: fields_from_json(v.get("fields"), &format!("{at}/fields"))?,
                        });
                    }
                    TypeDef::Enum(EnumDef {
                        docs,
                        repr,
                        variants,
                    })
                }
                _ => {
                    return Err(SchemaError::new(
                        &at,
                        "`kind` must be \"message\" or \"enum\"",
                    ))
                }
            };
            defs.types.insert(name.clone(), (rust_type, def));
        }
        defs.check(at)?;
        Ok(defs)
    }

    /// Every reference inside a definition names a defined type.
    fn check(&self, at: &str) -> Result<(), SchemaError> {
        for (name, (_, def)) in &self.types {
            let mut refs = Vec::new();
            match def {
                TypeDef::Message(m) => m.fields.iter().for_each(|f| f.ty.refs(&mut refs)),
                TypeDef::Enum(e) => e
                    .variants
                    .iter()
                    .flat_map(|v| &v.fields)
                    .for_each(|f| f.ty.refs(&mut refs)),
            }
            if let Some(missing) = refs.into_iter().find(|r| !self.types.contains_key(*r)) {
                return Err(SchemaError::new(
                    &format!("{at}/{name}"),
                    format!("refers to {missing:?}, which is not defined"),
                ));
            }
        }
        Ok(())
    }

    /// Checks that `t` refers only to defined types.
    ///
    /// # Errors
    /// [`SchemaError`] naming the first missing type.
    pub fn check_type(&self, t: &TypeRef, at: &str) -> Result<(), SchemaError> {
        let mut refs = Vec::new();
        t.refs(&mut refs);
        match refs.into_iter().find(|r| !self.types.contains_key(*r)) {
            Some(missing) => Err(SchemaError::new(
                at,
                format!("refers to {missing:?}, which is not defined"),
            )),
            None => Ok(()),
        }
    }

    /// Adds the definitions of `other` that are not here yet.
    pub fn extend(&mut self, other: Definitions) {
        for (name, entry) in other.types {
            self.types.entry(name).or_insert(entry);
        }
    }
}

/// A type that can describe itself. Implemented here for the scalars, strings, [`bytes::Bytes`],
/// `Vec`, `Option`, maps and sets and smart pointers; `#[derive(Schema)]` (from `rpc-core`)
/// implements it for structs and enums.
pub trait Schema {
    /// The type, after adding the messages and enums it uses to `defs`.
    fn type_ref(defs: &mut Definitions) -> TypeRef;
}

macro_rules! scalar {
    ($($t:ty => $r:ident),* $(,)?) => {
        $(
            impl Schema for $t {
                fn type_ref(_: &mut Definitions) -> TypeRef {
                    TypeRef::$r
                }
            }
        )*
    };
}

scalar!(
    bool => Bool,
    u8 => U32, u16 => U32, u32 => U32, u64 => U64, usize => U64,
    i8 => I32, i16 => I32, i32 => I32, i64 => I64, isize => I64,
    f32 => F32, f64 => F64,
    String => String, char => String, str => String,
    bytes::Bytes => Bytes,
    () => Unit,
);

impl<T: Schema + ?Sized> Schema for &T {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        T::type_ref(defs)
    }
}

impl<T: Schema + ?Sized> Schema for Box<T> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        T::type_ref(defs)
    }
}

impl<T: Schema + ?Sized> Schema for Arc<T> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        T::type_ref(defs)
    }
}

impl<T: Schema> Schema for Option<T> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::Optional(Box::new(T::type_ref(defs)))
    }
}

impl<T: Schema> Schema for Vec<T> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::List(Box::new(T::type_ref(defs)))
    }
}

impl<T: Schema> Schema for [T] {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::List(Box::new(T::type_ref(defs)))
    }
}

impl<T: Schema, S> Schema for HashSet<T, S> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::List(Box::new(T::type_ref(defs)))
    }
}

impl<T: Schema> Schema for BTreeSet<T> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::List(Box::new(T::type_ref(defs)))
    }
}

impl<K: Schema, V: Schema, S> Schema for HashMap<K, V, S> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::Map(Box::new(K::type_ref(defs)), Box::new(V::type_ref(defs)))
    }
}

impl<K: Schema, V: Schema> Schema for BTreeMap<K, V> {
    fn type_ref(defs: &mut Definitions) -> TypeRef {
        TypeRef::Map(Box::new(K::type_ref(defs)), Box::new(V::type_ref(defs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of itself: described by reference, defined once.
    struct Tree;
    impl Schema for Tree {
        fn type_ref(defs: &mut Definitions) -> TypeRef {
            defs.named("Tree", "t::Tree", |defs| {
                TypeDef::Message(MessageDef::new(
                    "",
                    vec![FieldDef::new("children", <Vec<Tree>>::type_ref(defs))],
                ))
            })
        }
    }

    /// Another Rust type that wants the name `Tree`.
    struct OtherTree;
    impl Schema for OtherTree {
        fn type_ref(defs: &mut Definitions) -> TypeRef {
            defs.named("Tree", "other::Tree", |_| {
                TypeDef::Message(MessageDef::default())
            })
        }
    }

    #[test]
    fn recursive_types_are_described_by_reference() {
        let mut defs = Definitions::new();
        assert_eq!(Tree::type_ref(&mut defs), TypeRef::Named("Tree".into()));
        assert_eq!(defs.len(), 1);
        let Some(TypeDef::Message(m)) = defs.get("Tree") else {
            panic!("{defs:?}");
        };
        assert_eq!(
            m.fields[0].ty,
            TypeRef::List(Box::new(TypeRef::Named("Tree".into())))
        );
    }

    #[test]
    fn two_types_never_share_a_name() {
        let mut defs = Definitions::new();
        Tree::type_ref(&mut defs);
        assert_eq!(
            OtherTree::type_ref(&mut defs),
            TypeRef::Named("other.Tree".into())
        );
        assert_eq!(Tree::type_ref(&mut defs), TypeRef::Named("Tree".into()));
        assert_eq!(defs.rust_type("other.Tree"), Some("other::Tree"));
        assert_eq!(defs.len(), 2);
    }

    #[test]
    fn the_json_form_reads_back() {
        let mut defs = Definitions::new();
        let t = <Vec<Option<Tree>>>::type_ref(&mut defs);
        assert_eq!(TypeRef::from_json(&t.to_json(), "").unwrap(), t);
        let read = Definitions::from_json(&defs.to_json(), "/types").unwrap();
        assert_eq!(read, defs);
    }

    #[test]
    fn bad_schema_json_is_refused_with_where() {
        let e = TypeRef::from_json(&json!({ "list": "u128" }), "/t").unwrap_err();
        assert_eq!(e.at, "/t/list");
        assert!(TypeRef::from_json(&json!({ "list": 1, "map": 2 }), "").is_err());
        let dangling = json!({ "A": { "kind": "message", "fields": [
            { "name": "b", "type": { "ref": "B" }, "required": true }
        ] } });
        let e = Definitions::from_json(&dangling, "/types").unwrap_err();
        assert!(e.what.contains("\"B\""), "{e}");
        let e = Definitions::from_json(&json!({ "A": { "kind": "union" } }), "/types").unwrap_err();
        assert_eq!(e.at, "/types/A");
        // Two fields of one name (found by fuzzing: a description then differed from itself).
        let twice = json!({ "A": { "kind": "message", "fields": [
            { "name": "x", "type": "u32", "required": true },
            { "name": "x", "type": "bool", "required": true }
        ] } });
        let e = Definitions::from_json(&twice, "/types").unwrap_err();
        assert_eq!(e.at, "/types/A/fields/1");
        let twice = json!({ "E": { "kind": "enum", "repr": "external", "variants": [
            { "name": "V", "shape": "unit" }, { "name": "V", "shape": "unit" }
        ] } });
        assert!(Definitions::from_json(&twice, "/types").is_err());
    }

    #[test]
    fn containers_and_scalars_render() {
        let mut defs = Definitions::new();
        let t = <HashMap<String, Option<Vec<u8>>>>::type_ref(&mut defs);
        assert_eq!(
            t.to_json(),
            json!({ "map": { "key": "string", "value": { "optional": { "list": "u32" } } } })
        );
        assert_eq!(
            <bytes::Bytes>::type_ref(&mut defs).to_json(),
            json!("bytes")
        );
        assert_eq!(<Box<str>>::type_ref(&mut defs), TypeRef::String);
        assert!(defs.is_empty());
    }
}
