//! Interop with independent encoders: the golden files in `tests/fixtures/` were written by
//! `protoc --encode` (Protobuf) and by Python's `json` and `msgpack` (see
//! `tests/fixtures/README.md` and `generate.sh`). Our encodings must match them byte for byte, and
//! decoding them must give the same values back.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use rpc_codec::{impl_message, message_codecs, CodecError, CodecId, Message};

// ---- Hand-written mirror of tests/fixtures/shop.proto ------------------------------------------

/// `shop.OrderStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
enum OrderStatus {
    Unspecified = 0,
    Pending = 1,
    Paid = 2,
    Shipped = 3,
}

/// `shop.Item`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Item {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(uint32, tag = "2")]
    quantity: u32,
    #[prost(int64, tag = "3")]
    price_cents: i64,
}

/// `shop.Order`. Field order = tag order = JSON/MessagePack key order.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Order {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(string, tag = "2")]
    customer: String,
    #[prost(message, repeated, tag = "3")]
    items: Vec<Item>,
    #[prost(btree_map = "string, string", tag = "4")]
    labels: BTreeMap<String, String>,
    #[prost(string, optional, tag = "5")]
    note: Option<String>,
    #[prost(enumeration = "OrderStatus", tag = "6")]
    status: i32,
    #[prost(uint32, repeated, tag = "7")]
    coupon_ids: Vec<u32>,
    #[prost(int64, tag = "8")]
    total_cents: i64,
}

/// `shop.Empty`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
struct Empty {}

impl_message!(Order, Empty);

// ---- The values of the fixtures (same as the *.txtpb files and gen_serde.py) -------------------

fn item(sku: &str, quantity: u32, price_cents: i64) -> Item {
    Item {
        sku: sku.into(),
        quantity,
        price_cents,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn order_full() -> Order {
    Order {
        id: 1001,
        customer: "Zoë Example".into(),
        items: vec![
            item("TEA-GREEN-100G", 2, 1250),
            item("MUG-CERAMIC", 1, 899),
            item("SPOON", 4, 150),
        ],
        labels: labels(&[("region", "eu-west"), ("channel", "web"), ("gift", "yes")]),
        note: Some("Leave at the door".into()),
        status: OrderStatus::Shipped as i32,
        coupon_ids: vec![7, 300, 70000],
        total_cents: 3999,
    }
}

fn order_minimal() -> Order {
    Order {
        id: 2,
        customer: "bob".into(),
        ..Order::default()
    }
}

fn order_refund() -> Order {
    Order {
        id: 9_007_199_254_740_993, // 2^53 + 1
        customer: "refunds".into(),
        items: vec![item("MUG-CERAMIC", 1, -899)],
        labels: labels(&[("reason", "damaged")]),
        note: Some(String::new()),
        status: OrderStatus::Paid as i32,
        coupon_ids: vec![],
        total_cents: -250_000,
    }
}

fn order_map_defaults() -> Order {
    Order {
        id: 3,
        customer: "carol".into(),
        labels: labels(&[("", "no-key"), ("b", ""), ("a", "x")]),
        ..Order::default()
    }
}

// ---- Golden files ------------------------------------------------------------------------------

struct Golden {
    name: &'static str,
    pb: &'static [u8],
    json: &'static str,
    msgpack: &'static [u8],
}

macro_rules! golden {
    ($name:literal) => {
        Golden {
            name: $name,
            pb: include_bytes!(concat!("fixtures/", $name, ".pb")),
            json: include_str!(concat!("fixtures/", $name, ".json")),
            msgpack: include_bytes!(concat!("fixtures/", $name, ".msgpack")),
        }
    };
}

const ORDER_FULL: Golden = golden!("order_full");
const ORDER_MINIMAL: Golden = golden!("order_minimal");
const ORDER_REFUND: Golden = golden!("order_refund");
const ORDER_MAP_DEFAULTS: Golden = golden!("order_map_defaults");
const EMPTY: Golden = golden!("empty");
const ORDER_FULL_ASCII_JSON: &str = include_str!("fixtures/order_full.ascii.json");

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[track_caller]
fn assert_bytes_eq(what: &str, ours: &[u8], golden: &[u8]) {
    if ours != golden {
        let at = ours
            .iter()
            .zip(golden)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(golden.len()));
        panic!(
            "{what}: our encoding differs from the golden file at byte {at} \
             (ours {} bytes, golden {} bytes)\n  ours:   {}\n  golden: {}",
            ours.len(),
            golden.len(),
            hex(ours),
            hex(golden)
        );
    }
}

/// (a) our encoding equals the golden bytes, (b) decoding the golden bytes gives `value`, for
/// every codec. `protobuf_bytes_exact = false` only checks that Protobuf decodes both ways.
#[track_caller]
fn check_golden<T: Message + PartialEq + Debug>(g: &Golden, value: &T, protobuf_bytes_exact: bool) {
    let codecs = T::codecs();
    assert_eq!(codecs.supported().to_string(), "protobuf, json, msgpack");

    // Protobuf (golden: protoc --encode --deterministic_output).
    let ours = codecs.encode_to_bytes(CodecId::PROTOBUF, value).unwrap();
    if protobuf_bytes_exact {
        assert_bytes_eq(&format!("{}.pb", g.name), &ours, g.pb);
    } else {
        assert_eq!(
            &codecs.decode(CodecId::PROTOBUF, ours).unwrap(),
            value,
            "{}: ours",
            g.name
        );
    }
    let back = codecs
        .decode(CodecId::PROTOBUF, Bytes::from_static(g.pb))
        .unwrap_or_else(|e| panic!("{}.pb: {e}", g.name));
    assert_eq!(&back, value, "{}.pb decoded", g.name);

    // JSON (golden: Python json.dumps, compact separators).
    let ours = codecs.encode_to_bytes(CodecId::JSON, value).unwrap();
    assert_eq!(
        std::str::from_utf8(&ours).unwrap(),
        g.json,
        "{}.json: our encoding (left) differs from the golden file (right)",
        g.name
    );
    let back = codecs
        .decode(CodecId::JSON, Bytes::from_static(g.json.as_bytes()))
        .unwrap_or_else(|e| panic!("{}.json: {e}", g.name));
    assert_eq!(&back, value, "{}.json decoded", g.name);

    // MessagePack (golden: Python msgpack.packb(d, use_bin_type=True)).
    let ours = codecs.encode_to_bytes(CodecId::MSGPACK, value).unwrap();
    assert_bytes_eq(&format!("{}.msgpack", g.name), &ours, g.msgpack);
    let back = codecs
        .decode(CodecId::MSGPACK, Bytes::from_static(g.msgpack))
        .unwrap_or_else(|e| panic!("{}.msgpack: {e}", g.name));
    assert_eq!(&back, value, "{}.msgpack decoded", g.name);
}

// ---- (a) + (b): golden bytes both ways ---------------------------------------------------------

#[test]
fn golden_order_full() {
    check_golden(&ORDER_FULL, &order_full(), true);
}

#[test]
fn golden_order_minimal() {
    check_golden(&ORDER_MINIMAL, &order_minimal(), true);
}

#[test]
fn golden_order_refund_large_id_negative_totals_empty_note() {
    let order = order_refund();
    check_golden(&ORDER_REFUND, &order, true);
    // Presence of an empty optional string survives every codec (not collapsed to None).
    assert_eq!(order.note.as_deref(), Some(""));
    assert!(ORDER_REFUND.json.contains(r#""note":"""#));
    assert!(ORDER_REFUND.json.contains(r#""id":9007199254740993"#));
}

#[test]
fn golden_empty() {
    check_golden(&EMPTY, &Empty {}, true);
}

/// protoc writes an empty map key or value explicitly inside the map entry (`0a 00`, `12 00`);
/// prost leaves default key/value out of the entry. Both are valid Protobuf and decode to the same
/// map, so only decoding is checked both ways here (JSON and MessagePack are still byte-exact).
#[test]
fn golden_order_map_with_empty_key_and_value() {
    let order = order_map_defaults();
    check_golden(&ORDER_MAP_DEFAULTS, &order, false);
    let ours = Order::codecs()
        .encode_to_bytes(CodecId::PROTOBUF, &order)
        .unwrap();
    if ours[..] != *ORDER_MAP_DEFAULTS.pb {
        eprintln!(
            "note: order_map_defaults.pb: prost writes {} bytes, protoc {} bytes (empty map \
             key/value omitted inside entries)\n  ours:   {}\n  protoc: {}",
            ours.len(),
            ORDER_MAP_DEFAULTS.pb.len(),
            hex(&ours),
            hex(ORDER_MAP_DEFAULTS.pb)
        );
    }
}

#[test]
fn enum_is_carried_as_its_integer() {
    let order = Order::codecs()
        .decode(CodecId::PROTOBUF, Bytes::from_static(ORDER_FULL.pb))
        .unwrap();
    assert_eq!(order.status(), OrderStatus::Shipped);
    assert!(ORDER_FULL.json.contains(r#""status":3"#));
    assert!(ORDER_MINIMAL.json.contains(r#""status":0"#));
    // An enum value this side does not know still decodes (open enums), in every codec.
    let mut future = order_minimal();
    future.status = 42;
    for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
        let bytes = Order::codecs().encode_to_bytes(codec, &future).unwrap();
        let back = Order::codecs().decode(codec, bytes).unwrap();
        assert_eq!(back.status, 42, "{codec}");
        assert_eq!(back.status(), OrderStatus::Unspecified, "{codec}");
    }
}

#[test]
fn python_default_ascii_escaped_json_decodes() {
    assert!(ORDER_FULL_ASCII_JSON.contains(r"Zo\u00eb"));
    let back = Order::codecs()
        .decode(
            CodecId::JSON,
            Bytes::from_static(ORDER_FULL_ASCII_JSON.as_bytes()),
        )
        .unwrap();
    assert_eq!(back, order_full());
}

// ---- (c) positional MessagePack ----------------------------------------------------------------

#[test]
fn msgpack_positional_array_form_still_decodes() {
    let cases: [(&str, Order); 4] = [
        ("order_full", order_full()),
        ("order_minimal", order_minimal()),
        ("order_refund", order_refund()),
        ("order_map_defaults", order_map_defaults()),
    ];
    for (name, order) in cases {
        let positional = rmp_serde::to_vec(&order).unwrap();
        assert_eq!(
            positional[0], 0x98,
            "{name}: expected a fixarray of 8 fields"
        );
        let back = Order::codecs()
            .decode(CodecId::MSGPACK, Bytes::from(positional))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, order, "{name}");
    }
    let empty = rmp_serde::to_vec(&Empty {}).unwrap();
    assert_eq!(empty, [0x90]);
    assert_eq!(
        Empty::codecs()
            .decode(CodecId::MSGPACK, Bytes::from(empty))
            .unwrap(),
        Empty {}
    );
}

// ---- (d) Empty ---------------------------------------------------------------------------------

#[test]
fn empty_message_encodings() {
    let codecs = Empty::codecs();
    assert!(codecs
        .encode_to_bytes(CodecId::PROTOBUF, &Empty {})
        .unwrap()
        .is_empty());
    assert_eq!(
        &codecs.encode_to_bytes(CodecId::JSON, &Empty {}).unwrap()[..],
        b"{}"
    );
    assert_eq!(
        &codecs.encode_to_bytes(CodecId::MSGPACK, &Empty {}).unwrap()[..],
        [0x80]
    );
    assert!(EMPTY.pb.is_empty());
    assert_eq!(EMPTY.json, "{}");
    assert_eq!(EMPTY.msgpack, [0x80]);
    // Zero Protobuf bytes are also a valid (all-default) Order.
    let order = Order::codecs()
        .decode(CodecId::PROTOBUF, Bytes::new())
        .unwrap();
    assert_eq!(order, Order::default());
    // And an Empty reader skips every field of an Order it does not know.
    let skipped = codecs
        .decode(CodecId::PROTOBUF, Bytes::from_static(ORDER_FULL.pb))
        .unwrap();
    assert_eq!(skipped, Empty {});
}

// ---- (e) decode failures -----------------------------------------------------------------------

/// Unwraps a `CodecError::Decode` for `codec`, returning its message.
#[track_caller]
fn decode_message<T: Debug>(result: Result<T, CodecError>, codec: CodecId) -> String {
    match result {
        Err(CodecError::Decode {
            codec: c,
            type_name,
            message,
            ..
        }) => {
            assert_eq!(c, codec);
            assert!(type_name.ends_with("Order"), "type name {type_name}");
            message
        }
        other => panic!("expected CodecError::Decode from {codec}, got {other:?}"),
    }
}

#[test]
fn truncated_protobuf_names_the_field() {
    let pb = ORDER_FULL.pb;
    // Cut inside the second item (it starts at 0x28: `1a 12` + 18 bytes).
    assert_eq!(&pb[0x28..0x2a], [0x1a, 0x12]);
    let result = Order::codecs().decode(CodecId::PROTOBUF, Bytes::copy_from_slice(&pb[..0x30]));
    let message = decode_message(result, CodecId::PROTOBUF);
    assert!(message.contains("Order.items"), "{message}");

    // Cut inside the second item's sku string: the nested message is complete as far as
    // the outer length says, so the error points into Item.
    let mut nested = pb[..0x28].to_vec();
    nested.extend_from_slice(&[0x1a, 0x05, 0x0a, 0x0b, b'M', b'U', b'G']);
    let result = Order::codecs().decode(CodecId::PROTOBUF, Bytes::from(nested));
    let message = decode_message(result, CodecId::PROTOBUF);
    assert!(
        message.contains("Order.items") && message.contains("Item.sku"),
        "{message}"
    );

    // A truncated varint (id), and a truncated packed coupon_ids.
    let result = Order::codecs().decode(CodecId::PROTOBUF, Bytes::from_static(&[0x08, 0xe9]));
    let message = decode_message(result, CodecId::PROTOBUF);
    assert!(message.contains("Order.id"), "{message}");
    let packed_at = pb.windows(2).position(|w| w == [0x3a, 0x06]).unwrap();
    let result = Order::codecs().decode(
        CodecId::PROTOBUF,
        Bytes::copy_from_slice(&pb[..packed_at + 5]),
    );
    let message = decode_message(result, CodecId::PROTOBUF);
    assert!(message.contains("Order.coupon_ids"), "{message}");
}

#[test]
fn every_truncation_of_a_golden_order_is_ok_or_a_decode_error() {
    for g in [
        &ORDER_FULL,
        &ORDER_REFUND,
        &ORDER_MINIMAL,
        &ORDER_MAP_DEFAULTS,
    ] {
        for (codec, bytes) in [
            (CodecId::PROTOBUF, g.pb),
            (CodecId::JSON, g.json.as_bytes()),
            (CodecId::MSGPACK, g.msgpack),
        ] {
            for cut in 0..bytes.len() {
                let prefix = Bytes::copy_from_slice(&bytes[..cut]);
                match Order::codecs().decode(codec, prefix) {
                    // Protobuf has no end marker: a cut on a field boundary is a shorter message.
                    Ok(_) => assert_eq!(codec, CodecId::PROTOBUF, "{} cut at {cut}", g.name),
                    Err(e) => {
                        decode_message::<Order>(Err(e), codec);
                    }
                }
            }
        }
    }
}

#[test]
fn json_wrong_type_deep_inside_names_the_path() {
    // items[1] is the only item with quantity 1.
    let bad = ORDER_FULL
        .json
        .replacen(r#""quantity":1"#, r#""quantity":"one""#, 1);
    assert_ne!(bad, ORDER_FULL.json);
    let message = decode_message(
        Order::codecs().decode(CodecId::JSON, Bytes::from(bad)),
        CodecId::JSON,
    );
    assert!(message.contains("items[1].quantity"), "{message}");
    assert!(message.contains("invalid type"), "{message}");

    // A negative number where a u64 belongs, at the top level.
    let bad = ORDER_FULL.json.replacen(r#""id":1001"#, r#""id":-1"#, 1);
    let message = decode_message(
        Order::codecs().decode(CodecId::JSON, Bytes::from(bad)),
        CodecId::JSON,
    );
    assert!(message.contains("at id"), "{message}");

    // Syntax error: still a Decode error, with serde_json's position.
    let bad = &ORDER_FULL.json[..ORDER_FULL.json.len() - 1];
    let message = decode_message(
        Order::codecs().decode(CodecId::JSON, Bytes::copy_from_slice(bad.as_bytes())),
        CodecId::JSON,
    );
    assert!(message.contains("EOF"), "{message}");
}

/// Replaces the first occurrence of `from` in `src` by `to` (lengths may differ: MessagePack maps
/// and arrays count entries, not bytes, so nothing else needs patching).
fn splice(src: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = src
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{} not found", hex(from)));
    [&src[..at], to, &src[at + from.len()..]].concat()
}

#[test]
fn msgpack_wrong_type_names_the_path() {
    // items[2].sku: the string "SPOON" (a5 SPOON) replaced by the integer 42.
    let bad = splice(ORDER_FULL.msgpack, b"\xa5SPOON", &[0x2a]);
    let message = decode_message(
        Order::codecs().decode(CodecId::MSGPACK, Bytes::from(bad)),
        CodecId::MSGPACK,
    );
    assert!(message.contains("items[2].sku"), "{message}");

    // labels.gift: the map value "yes" (a3 yes) replaced by true.
    let bad = splice(ORDER_FULL.msgpack, b"\xa3yes", &[0xc3]);
    let message = decode_message(
        Order::codecs().decode(CodecId::MSGPACK, Bytes::from(bad)),
        CodecId::MSGPACK,
    );
    assert!(message.contains("labels.gift"), "{message}");

    // coupon_ids[2]: 70000 (ce 00 01 11 70) replaced by -1 (ff), which is no u32.
    let bad = splice(ORDER_FULL.msgpack, &[0xce, 0x00, 0x01, 0x11, 0x70], &[0xff]);
    let message = decode_message(
        Order::codecs().decode(CodecId::MSGPACK, Bytes::from(bad)),
        CodecId::MSGPACK,
    );
    assert!(message.contains("coupon_ids[2]"), "{message}");
}

#[test]
fn corrupted_golden_bytes_never_panic() {
    let mut decoded = 0usize;
    let mut failed = 0usize;
    for g in [
        &ORDER_FULL,
        &ORDER_REFUND,
        &ORDER_MINIMAL,
        &ORDER_MAP_DEFAULTS,
        &EMPTY,
    ] {
        for (codec, bytes) in [
            (CodecId::PROTOBUF, g.pb),
            (CodecId::JSON, g.json.as_bytes()),
            (CodecId::MSGPACK, g.msgpack),
        ] {
            for i in 0..bytes.len() {
                for replacement in [0x00, 0x7f, 0x80, 0xc1, 0xff, bytes[i] ^ 0x01] {
                    let mut mutated = bytes.to_vec();
                    mutated[i] = replacement;
                    let mutated = Bytes::from(mutated);
                    let result = catch_unwind(AssertUnwindSafe(|| {
                        Order::codecs().decode(codec, mutated.clone())
                    }))
                    .unwrap_or_else(|_| {
                        panic!("{} {codec}: panicked on {}", g.name, hex(&mutated))
                    });
                    match result {
                        Ok(_) => decoded += 1,
                        Err(e) => {
                            decode_message::<Order>(Err(e), codec);
                            failed += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        decoded > 0 && failed > 0,
        "decoded {decoded}, failed {failed}"
    );
}

// ---- A cross-check that the fixtures agree with each other -------------------------------------

#[test]
fn golden_files_decode_to_the_same_value_in_every_codec() {
    let codecs = message_codecs!(Order);
    for g in [
        &ORDER_FULL,
        &ORDER_MINIMAL,
        &ORDER_REFUND,
        &ORDER_MAP_DEFAULTS,
    ] {
        let pb = codecs
            .decode(CodecId::PROTOBUF, Bytes::from_static(g.pb))
            .unwrap();
        let json = codecs
            .decode(CodecId::JSON, Bytes::from_static(g.json.as_bytes()))
            .unwrap();
        let msgpack = codecs
            .decode(CodecId::MSGPACK, Bytes::from_static(g.msgpack))
            .unwrap();
        assert_eq!(pb, json, "{}: protoc vs Python json", g.name);
        assert_eq!(pb, msgpack, "{}: protoc vs Python msgpack", g.name);
    }
}
