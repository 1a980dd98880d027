//! The `.proto` export of the shop's services: `protoc` accepts it, and a message `protoc` encodes
//! from it is byte for byte what the framework's Protobuf codec sends for the same values.
//!
//! Needs `protoc` (`scripts/deps` installs it; `PROTOC` may name it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use examples::shop::inventory::InventoryServer;
use examples::shop::orders::{Order, OrderState, OrdersServer, PlaceOrder};
use prost::Message as _;
use rpc_core::describe::{to_proto, Description};

fn protoc() -> PathBuf {
    if let Some(p) = std::env::var_os("PROTOC") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("protoc"))
            .find(|p| p.is_file())
    });
    found.expect(
        "this test needs `protoc`, which is not on PATH: install it (`bash scripts/deps`, or \
         the protobuf-compiler package) or name it in PROTOC",
    )
}

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `protoc` with the export's directory and the well-known types' includes.
fn protoc_in(dir: &Path) -> Command {
    let mut cmd = Command::new(protoc());
    cmd.arg(format!("-I{}", dir.display()));
    if Path::new("/usr/include/google/protobuf/wrappers.proto").exists() {
        cmd.arg("-I/usr/include");
    }
    cmd
}

/// Runs `cmd` with `input` on its standard input, and waits for its output.
fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command runs (bash scripts/deps installs protoc and the Python modules)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input written");
    child.wait_with_output().expect("the command finishes")
}

/// Encodes the text-format `text` as `message` with `protoc --encode`.
fn encode(dir: &Path, message: &str, text: &str) -> Vec<u8> {
    let mut cmd = protoc_in(dir);
    cmd.arg(format!("--encode={message}"))
        .arg("shop.proto")
        .current_dir(dir);
    let out = run_with_input(&mut cmd, text.as_bytes());
    assert!(
        out.status.success(),
        "protoc --encode={message}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn protoc_accepts_the_export_and_encodes_as_the_codec_does() {
    let proto = to_proto(&Description::of(&[
        OrdersServer::<()>::DESCRIPTOR,
        InventoryServer::<()>::DESCRIPTOR,
    ]))
    .expect("one package");
    let dir = TempDir::new("rpc-proto-export");
    std::fs::write(dir.0.join("shop.proto"), &proto).expect("written");

    let check = protoc_in(&dir.0)
        .arg("--descriptor_set_out=/dev/null")
        .arg("shop.proto")
        .current_dir(&dir.0)
        .output()
        .expect("protoc runs");
    assert!(
        check.status.success(),
        "protoc refused the export:\n{}\n{proto}",
        String::from_utf8_lossy(&check.stderr)
    );
    for expected in [
        "package shop;",
        "service Orders {",
        "rpc Place (PlaceOrder) returns (Order) { option idempotency_level = IDEMPOTENT; }",
        "rpc Get (google.protobuf.UInt64Value) returns (Order) { option idempotency_level = \
         IDEMPOTENT; }",
        "service Inventory {",
        "enum OrderState {",
        "ORDER_STATE_PAID = 1;",
    ] {
        assert!(proto.contains(expected), "no {expected:?} in\n{proto}");
    }

    let place = PlaceOrder {
        order_id: 7 << 20 | 3,
        account_id: 42,
        sku: "mug-red".into(),
        quantity: 2,
    };
    assert_eq!(
        encode(
            &dir.0,
            "shop.PlaceOrder",
            "order_id: 7340035 account_id: 42 sku: \"mug-red\" quantity: 2"
        ),
        place.encode_to_vec()
    );
    let order = Order {
        order_id: 9,
        account_id: 42,
        sku: "book".into(),
        quantity: 1,
        total_cents: 9_000,
        state: OrderState::Paid as i32,
        reason: String::new(),
        notified: true,
    };
    assert_eq!(
        encode(
            &dir.0,
            "shop.Order",
            "order_id: 9 account_id: 42 sku: \"book\" quantity: 1 total_cents: 9000 \
             state: ORDER_STATE_PAID notified: true"
        ),
        order.encode_to_vec()
    );
}

/// The JSON Schema export of the shop's services accepts what the JSON codec writes for real
/// messages and typed errors, and refuses what it would not decode, checked by Python's
/// `jsonschema` (Draft 2020-12) in a separate process; the OpenAPI export is a valid OpenAPI 3.1
/// document (`openapi-spec-validator`).
#[test]
fn real_messages_validate_against_the_json_schema_export() {
    use examples::shop::inventory::InventoryError;
    use rpc_core::describe::to_json_schema;

    let description = Description::of(&[
        OrdersServer::<()>::DESCRIPTOR,
        InventoryServer::<()>::DESCRIPTOR,
    ]);
    let schema = to_json_schema(&description);
    let openapi = rpc_core::describe::to_openapi(&description);
    let order = Order {
        order_id: 9,
        account_id: 42,
        sku: "book".into(),
        quantity: 1,
        total_cents: 9_000,
        state: OrderState::Paid as i32,
        reason: String::new(),
        notified: true,
    };
    let error = InventoryError::Insufficient {
        sku: "book".into(),
        available: 0,
    };
    // (definition, instance, valid?)
    let cases = serde_json::json!([
        ["Order", serde_json::to_value(&order).unwrap(), true],
        ["PlaceOrder", { "order_id": 1, "account_id": 2, "sku": "mug", "quantity": 3 }, true],
        ["PlaceOrder", { "order_id": 1, "account_id": 2, "sku": "mug" }, false],
        ["PlaceOrder", { "order_id": -1, "account_id": 2, "sku": "mug", "quantity": 3 }, false],
        ["InventoryError", serde_json::to_value(&error).unwrap(), true],
        ["InventoryError", { "NoSuchVariant": {} }, false],
    ]);
    let script = r##"
import json, sys
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
doc = json.load(sys.stdin)
schema, cases = doc["schema"], doc["cases"]
Draft202012Validator.check_schema(schema)
validate(doc["openapi"])
for name, instance, valid in cases:
    sub = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/" + name}
    errors = list(Draft202012Validator(sub).iter_errors(instance))
    if (not errors) != valid:
        print("%s %s: expected %s, got %s" % (name, json.dumps(instance), valid, [e.message for e in errors]))
        sys.exit(1)
print("ok", len(cases))
"##;
    let input =
        serde_json::json!({ "schema": schema, "cases": cases, "openapi": openapi }).to_string();
    let out = run_with_input(
        Command::new("python3").arg("-c").arg(script),
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}{}\n{schema:#}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
