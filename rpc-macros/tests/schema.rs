//! `#[derive(Schema)]` and the schemas `#[service]` puts in descriptions: fields by their serde
//! names with Protobuf numbers, enums and typed errors, recursive types, types without a schema,
//! and the JSON a client in another language reads. Compiled with `deny(warnings)`.

#![deny(warnings, missing_docs)]

use std::collections::HashMap;

use bytes::Bytes;
use rpc_core::codec::schema::{
    Definitions, EnumRepr, FieldDef, ProtoField, Schema, TypeDef, TypeRef, VariantShape,
};
use rpc_core::describe;
use rpc_core::{service, Status};

/// The state of an order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    prost::Enumeration,
    serde::Serialize,
    serde::Deserialize,
    rpc_core::Schema,
)]
#[repr(i32)]
pub enum State {
    /// Not paid yet.
    Open = 0,
    /// Paid.
    Paid = 1,
}

/// One line of an order.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
pub struct Line {
    /// What.
    #[prost(string, tag = "1")]
    pub sku: String,
    /// How many.
    #[prost(uint32, tag = "2")]
    pub quantity: u32,
}

/// An order, in every codec.
#[derive(
    Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize, rpc_core::Schema,
)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Chosen by the caller.
    #[prost(uint64, tag = "1")]
    pub order_id: u64,
    /// The lines.
    #[prost(message, repeated, tag = "2")]
    pub lines: Vec<Line>,
    /// Its state, as the enumeration's number.
    #[prost(enumeration = "State", tag = "3")]
    pub state: i32,
    /// Counts by SKU.
    #[prost(map = "string, uint32", tag = "4")]
    pub counts: HashMap<String, u32>,
    /// A note, if any.
    #[prost(string, optional, tag = "5")]
    #[serde(rename = "remark", default)]
    pub note: Option<String>,
    /// Opaque bytes.
    #[prost(bytes = "bytes", tag = "6")]
    pub blob: Bytes,
    /// Not on the wire in serde's forms.
    #[prost(bool, tag = "7")]
    #[serde(skip)]
    pub internal: bool,
}

/// A tree: refers to itself.
#[derive(Debug, serde::Serialize, serde::Deserialize, rpc_core::Schema)]
pub struct Tree {
    /// Its children.
    pub children: Vec<Tree>,
}

/// Why an order was refused: a typed error.
#[derive(Debug, serde::Serialize, serde::Deserialize, rpc_core::Schema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Not enough stock.
    OutOfStock {
        /// The SKU.
        sku: String,
        /// What is left.
        available: u32,
    },
    /// Closed for the day.
    Closed,
    /// By another reason, in words.
    Other(String),
    /// The call's own failure: not part of the typed value.
    #[serde(skip)]
    Rpc(Status),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl rpc_core::ServiceError for Refusal {
    fn into_status(self) -> Status {
        match self {
            Refusal::Rpc(s) => s,
            e => Status::failed_precondition(e.to_string()).with_details(&e),
        }
    }

    fn from_status(status: Status) -> Self {
        match status.details() {
            Ok(Some(e)) => e,
            _ => Refusal::Rpc(status),
        }
    }
}

/// A type without a schema: still usable, described as opaque.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Secret {
    /// Something.
    pub x: u8,
}

/// The shop.
#[service(name = "demo.Shop")]
pub trait Shop {
    /// Places an order.
    async fn place(&self, order: Order) -> Result<State, Refusal>;
    /// Looks an order up by two keys.
    async fn find(&self, customer: String, order_id: u64) -> Result<Option<Order>, Status>;
    /// Forgets everything.
    async fn reset(&self) -> Result<(), Status>;
    /// Takes a secret.
    async fn keep(&self, secret: Secret) -> Result<Tree, Status>;
}

/// Every message type has a schema: `require_schemas` holds.
#[service(name = "demo.Strict", require_schemas)]
pub trait Strict {
    /// Places an order.
    async fn place(&self, order: Order, note: Option<String>) -> Result<Vec<Line>, Refusal>;
}

fn field<'a>(defs: &'a Definitions, ty: &str, name: &str) -> &'a FieldDef {
    let Some(TypeDef::Message(m)) = defs.get(ty) else {
        panic!("no message {ty} in {defs:?}");
    };
    m.fields
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name} in {ty}"))
}

#[test]
fn a_message_has_its_serde_names_and_protobuf_numbers() {
    let mut defs = Definitions::new();
    assert_eq!(Order::type_ref(&mut defs), TypeRef::Named("Order".into()));
    let id = field(&defs, "Order", "orderId");
    assert_eq!(id.ty, TypeRef::U64);
    assert_eq!(id.rust_name.as_deref(), Some("order_id"));
    assert!(id.required);
    assert_eq!(id.docs, "Chosen by the caller.");
    assert_eq!(id.proto, Some(ProtoField::new(1, "uint64")));

    let lines = field(&defs, "Order", "lines");
    assert_eq!(
        lines.ty,
        TypeRef::List(Box::new(TypeRef::Named("Line".into())))
    );
    let proto = lines.proto.as_ref().unwrap();
    assert_eq!((proto.kind.as_str(), proto.repeated), ("message", true));
    assert_eq!(proto.type_name.as_deref(), Some("Line"));

    let state = field(&defs, "Order", "state");
    assert_eq!(state.ty, TypeRef::I32);
    let proto = state.proto.as_ref().unwrap();
    assert_eq!(
        (proto.kind.as_str(), proto.type_name.as_deref()),
        ("enum", Some("State"))
    );

    let counts = field(&defs, "Order", "counts");
    assert_eq!(
        counts.ty,
        TypeRef::Map(Box::new(TypeRef::String), Box::new(TypeRef::U32))
    );
    assert_eq!(counts.proto.as_ref().unwrap().kind, "map<string, uint32>");

    let note = field(&defs, "Order", "remark");
    assert!(!note.required);
    assert_eq!(note.ty, TypeRef::Optional(Box::new(TypeRef::String)));
    assert!(note.proto.as_ref().unwrap().optional);

    assert_eq!(field(&defs, "Order", "blob").ty, TypeRef::Bytes);
    let Some(TypeDef::Message(order)) = defs.get("Order") else {
        panic!()
    };
    assert!(
        order.fields.iter().all(|f| f.name != "internal"),
        "serde skips it"
    );

    let Some(TypeDef::Enum(state)) = defs.get("State") else {
        panic!("{defs:?}")
    };
    let numbers: Vec<_> = state
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.number))
        .collect();
    assert_eq!(numbers, [("Open", Some(0)), ("Paid", Some(1))]);
}

#[test]
fn typed_errors_list_their_variants_as_serde_writes_them() {
    let mut defs = Definitions::new();
    Refusal::type_ref(&mut defs);
    let Some(TypeDef::Enum(e)) = defs.get("Refusal") else {
        panic!("{defs:?}")
    };
    assert_eq!(e.repr, EnumRepr::External);
    let shapes: Vec<_> = e
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.shape))
        .collect();
    assert_eq!(
        shapes,
        [
            ("out_of_stock", VariantShape::Struct),
            ("closed", VariantShape::Unit),
            ("other", VariantShape::Newtype),
        ]
    );
    assert_eq!(e.variants[0].fields[1].ty, TypeRef::U32);
    assert_eq!(e.variants[0].rust_name.as_deref(), Some("OutOfStock"));
}

#[test]
fn recursive_types_and_types_without_a_schema() {
    let mut defs = Definitions::new();
    assert_eq!(Tree::type_ref(&mut defs), TypeRef::Named("Tree".into()));
    assert_eq!(
        field(&defs, "Tree", "children").ty,
        TypeRef::List(Box::new(TypeRef::Named("Tree".into())))
    );
    let secret = rpc_core::codec::message_schema!(Secret, &mut defs);
    assert!(
        matches!(&secret, TypeRef::Opaque(n) if n.ends_with("Secret")),
        "{secret:?}"
    );
}

#[test]
fn the_description_carries_every_method_s_schemas() {
    let d = ShopServer::<()>::DESCRIPTOR;
    let mut defs = Definitions::new();
    let schemas =
        |name: &str, defs: &mut Definitions| d.method(name).unwrap().schemas.unwrap().schemas(defs);
    let place = schemas("Place", &mut defs);
    assert_eq!(place.request, TypeRef::Named("Order".into()));
    // `State` has no Protobuf encoding of its own: JSON and MessagePack only.
    assert_eq!(place.codecs.to_string(), "json, msgpack");
    assert_eq!(place.response, TypeRef::Named("State".into()));
    assert_eq!(place.error, TypeRef::Named("Refusal".into()));

    let find = schemas("Find", &mut defs);
    assert_eq!(find.request, TypeRef::Named("ShopFindArgs".into()));
    assert_eq!(field(&defs, "ShopFindArgs", "order_id").ty, TypeRef::U64);
    assert_eq!(
        find.response,
        TypeRef::Optional(Box::new(TypeRef::Named("Order".into())))
    );
    assert_eq!(find.error, TypeRef::Named("rpc.Status".into()));

    let reset = schemas("Reset", &mut defs);
    assert_eq!(
        (reset.request, reset.response),
        (TypeRef::Unit, TypeRef::Unit)
    );

    let keep = schemas("Keep", &mut defs);
    assert!(matches!(keep.request, TypeRef::Opaque(_)), "{keep:?}");

    // The JSON a client in another language reads.
    let json: serde_json::Value = serde_json::from_str(&describe::to_json(&[d])).unwrap();
    assert_eq!(json["format_version"], 2);
    let place = &json["services"][0]["methods"][0];
    assert_eq!(place["request_type"], serde_json::json!({ "ref": "Order" }));
    assert_eq!(place["error_type"], serde_json::json!({ "ref": "Refusal" }));
    assert_eq!(place["codecs"], serde_json::json!(["json", "msgpack"]));
    let order = &json["types"]["Order"];
    assert_eq!(order["kind"], "message");
    assert_eq!(order["fields"][0]["name"], "orderId");
    assert_eq!(order["fields"][0]["proto"]["number"], 1);
    assert_eq!(
        json["types"]["Refusal"]["variants"][0]["name"],
        "out_of_stock"
    );
    assert_eq!(json["types"]["rpc.Status"]["fields"][0]["name"], "code");

    // JSON Schema 2020-12 of the same.
    let schema = describe::to_json_schema(&describe::Description::of(&[d]));
    assert_eq!(schema["$schema"], describe::JSON_SCHEMA_DIALECT);
    let place = &schema["properties"]["demo.Shop/Place"]["properties"];
    assert_eq!(
        place["request"],
        serde_json::json!({ "$ref": "#/$defs/Order" })
    );
    let order = &schema["$defs"]["Order"];
    assert_eq!(order["properties"]["orderId"]["type"], "integer");
    assert_eq!(
        order["properties"]["remark"]["anyOf"][1],
        serde_json::json!({ "type": "null" })
    );
    let required = order["required"].as_array().unwrap();
    assert!(required.contains(&serde_json::json!("orderId")));
    assert!(!required.contains(&serde_json::json!("remark")));
    assert_eq!(
        schema["$defs"]["Refusal"]["oneOf"][1],
        serde_json::json!({ "const": "closed" })
    );

    // OpenAPI 3.1: an operation per method, the types under components.
    let api = describe::to_openapi(&describe::Description::of(&[d]));
    assert_eq!(api["openapi"], "3.1.0");
    let place = &api["paths"]["/demo.Shop/Place"]["post"];
    assert_eq!(
        place["requestBody"]["content"]["application/json"]["schema"],
        serde_json::json!({ "$ref": "#/components/schemas/Order" })
    );
    assert_eq!(
        place["responses"]["default"]["content"]["application/json"]["schema"]["properties"]
            ["details"],
        serde_json::json!({ "$ref": "#/components/schemas/Refusal" })
    );
    assert!(api["paths"]["/demo.Shop/Reset"]["post"]["requestBody"].is_null());
    assert_eq!(
        api["components"]["schemas"]["Order"]["properties"]["lines"]["items"],
        serde_json::json!({ "$ref": "#/components/schemas/Line" })
    );

    let md = describe::to_markdown(&[d]);
    assert!(md.contains("### message `Order`"), "{md}");
    assert!(
        md.contains("| `orderId` | `u64` | yes | uint64 = 1 |"),
        "{md}"
    );
}

#[test]
fn a_service_that_requires_schemas_describes_every_type() {
    let mut defs = Definitions::new();
    let place = StrictServer::<()>::DESCRIPTOR
        .method("Place")
        .unwrap()
        .schemas
        .unwrap()
        .schemas(&mut defs);
    assert_eq!(place.request, TypeRef::Named("StrictPlaceArgs".into()));
    assert_eq!(
        field(&defs, "StrictPlaceArgs", "note").ty,
        TypeRef::Optional(Box::new(TypeRef::String))
    );
    assert_eq!(
        place.response,
        TypeRef::List(Box::new(TypeRef::Named("Line".into())))
    );
}

#[test]
fn a_description_reads_back_and_bad_ones_are_refused() {
    let d = ShopServer::<()>::DESCRIPTOR;
    let text = describe::to_json(&[d]);
    let read = describe::Description::from_json(&text).unwrap();
    assert_eq!(read, describe::Description::of(&[d]));

    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["format_version"] = serde_json::json!(3);
    let e = describe::Description::from_json(&v.to_string()).unwrap_err();
    assert!(
        matches!(e, describe::DescriptionError::Version(Some(3))),
        "{e}"
    );
    let e = describe::Description::from_json(r#"{"services": []}"#).unwrap_err();
    assert!(
        matches!(e, describe::DescriptionError::Version(None)),
        "{e}"
    );
    assert!(describe::Description::from_json("not json").is_err());

    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["types"].as_object_mut().unwrap().remove("Line");
    let e = describe::Description::from_json(&v.to_string()).unwrap_err();
    assert!(e.to_string().contains("\"Line\""), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first = v["services"][0]["methods"][0].clone();
    v["services"][0]["methods"]
        .as_array_mut()
        .unwrap()
        .push(first);
    let e = describe::Description::from_json(&v.to_string()).unwrap_err();
    assert!(e.to_string().contains("a second method"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["services"][0]["methods"][0]["request_type"] = serde_json::json!({ "ref": "Nowhere" });
    let e = describe::Description::from_json(&v.to_string()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/services/0/methods/0/request_type"),
        "{e}"
    );
}

#[test]
fn the_breaking_change_check_classifies_changes() {
    let d = ShopServer::<()>::DESCRIPTOR;
    let base: serde_json::Value = serde_json::from_str(&describe::to_json(&[d])).unwrap();
    let read = |v: &serde_json::Value| describe::Description::from_json(&v.to_string()).unwrap();
    let old = read(&base);
    assert!(describe::diff(&old, &old).is_empty());

    let mut v = base.clone();
    let order = v["types"]["Order"]["fields"].as_array_mut().unwrap();
    // `lines` removed; a required field added to a request message.
    order.retain(|f| f["name"] != "lines");
    order.push(serde_json::json!({ "name": "coupon", "type": "string", "required": true }));
    // An optional field added: compatible.
    order.push(
        serde_json::json!({ "name": "gift", "type": { "optional": "bool" }, "required": false }),
    );
    // A variant added to an error (a reply): old clients cannot read it.
    v["types"]["Refusal"]["variants"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "name": "banned", "shape": "unit" }));
    let methods = v["services"][0]["methods"].as_array_mut().unwrap();
    methods.retain(|m| m["name"] != "Reset");
    methods[0]["one_way"] = serde_json::json!(true);
    methods[0]["idempotent"] = serde_json::json!(true);

    let changes = describe::diff(&old, &read(&v));
    let has = |breaking: bool, part: &str| {
        changes
            .iter()
            .any(|c| c.breaking == breaking && c.to_string().contains(part))
    };
    let all: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert!(has(true, "demo.Shop/Reset: method removed"), "{all:#?}");
    assert!(has(true, "Order.lines: field removed"), "{all:#?}");
    assert!(has(true, "Order.coupon: required field added"), "{all:#?}");
    assert!(has(false, "Order.gift: field added"), "{all:#?}");
    assert!(has(true, "variant banned added"), "{all:#?}");
    assert!(has(true, "one_way changed to true"), "{all:#?}");
    assert!(has(false, "now idempotent"), "{all:#?}");
    // `Order` is also a reply (`Find`): there, an added field of any kind is compatible.
    assert!(
        changes
            .iter()
            .any(|c| !c.breaking && c.at.contains("Find response") && c.at.ends_with("coupon")),
        "{all:#?}"
    );
}
