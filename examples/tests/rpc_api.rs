//! `rpc-api` from outside, as CI and users run it: against a live server over TCP and against
//! description files; and the shop's committed description, which must match its code.

use std::path::PathBuf;
use std::process::{Command, Output};

use examples::shop::catalogue::{CatalogueServer, MemoryCatalogue};
use examples::shop::inventory::{InventoryServer, Warehouse};
use examples::shop::notifications::NotificationsServer;
use examples::shop::orders::OrdersServer;
use examples::shop::payments::PaymentsServer;
use examples::shop::users::{MemoryUsers, UsersServer};
use rpc_core::describe::{self, Description, ServiceDescriptor};
use rpc_core::Server;

/// The shop's services, in the order of the committed description.
fn shop() -> [&'static ServiceDescriptor; 6] {
    [
        UsersServer::<()>::DESCRIPTOR,
        CatalogueServer::<()>::DESCRIPTOR,
        InventoryServer::<()>::DESCRIPTOR,
        OrdersServer::<()>::DESCRIPTOR,
        PaymentsServer::<()>::DESCRIPTOR,
        NotificationsServer::<()>::DESCRIPTOR,
    ]
}

fn rpc_api(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rpc-api"))
        .args(args)
        .output()
        .expect("rpc-api runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A file in a fresh temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("rpc-api-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("written");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_api_describes_exports_and_checks_a_live_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = Server::builder()
        .add_service(InventoryServer::new(Warehouse::with_stock([("mug", 3)])))
        .add_service(UsersServer::new(MemoryUsers::default()))
        .add_service(CatalogueServer::new(MemoryCatalogue::new([])));
    tokio::spawn(server.serve(listener));

    // The binary is a separate process: run it off the runtime's threads.
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            rpc_api(&args)
        })
    };
    let described = run(vec!["describe".into(), addr.clone()]).await.unwrap();
    assert!(described.status.success(), "{described:?}");
    let live = stdout(&described);
    assert!(live.contains("\"shop.Inventory\""), "{live}");
    let file = TempFile::new("live.json", &live);

    let proto = run(vec!["export".into(), "proto".into(), addr.clone()])
        .await
        .unwrap();
    assert!(stdout(&proto).contains("service Inventory {"), "{proto:?}");
    for format in ["json-schema", "openapi"] {
        let out = run(vec!["export".into(), format.into(), file.path().into()])
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(doc.is_object(), "{format}");
    }

    // The same description: no change.
    let same = run(vec!["diff".into(), file.path().into(), addr.clone()])
        .await
        .unwrap();
    assert_eq!(same.status.code(), Some(0), "{same:?}");
    assert!(stdout(&same).contains("changes=0 breaking=0"), "{same:?}");

    // A method the old description had and the server no longer has: breaking, exit 1.
    let mut v: serde_json::Value = serde_json::from_str(&live).unwrap();
    let inventory = v["services"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["name"] == "shop.Inventory")
        .unwrap();
    inventory["methods"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "Forecast", "path": "shop.Inventory/Forecast", "args": [],
            "one_way": false, "idempotent": true,
            "request_type": "unit", "response_type": "u32", "error_type": { "ref": "rpc.Status" },
        }));
    let older = TempFile::new("older.json", &v.to_string());
    let removed = run(vec!["diff".into(), older.path().into(), addr.clone()])
        .await
        .unwrap();
    assert_eq!(removed.status.code(), Some(1), "{removed:?}");
    assert!(
        stdout(&removed).contains("breaking    shop.Inventory/Forecast: method removed"),
        "{removed:?}"
    );
    // The other way round it is an addition: compatible, exit 0.
    let added = run(vec!["diff".into(), addr.clone(), older.path().into()])
        .await
        .unwrap();
    assert_eq!(added.status.code(), Some(0), "{added:?}");

    // Bad input: an old format, an unreachable server, a bad subcommand.
    let v1 = TempFile::new("v1.json", r#"{"services": []}"#);
    let old_format = run(vec!["export".into(), "proto".into(), v1.path().into()])
        .await
        .unwrap();
    assert_eq!(old_format.status.code(), Some(2), "{old_format:?}");
    assert!(
        String::from_utf8_lossy(&old_format.stderr).contains("format version"),
        "{old_format:?}"
    );
    let unreachable = run(vec!["describe".into(), "127.0.0.1:1".into()])
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
    let bad = run(vec!["export".into(), "yaml".into(), addr])
        .await
        .unwrap();
    assert!(!bad.status.success(), "{bad:?}");
}

/// The shop's API as committed in `examples/api/shop.json` is the API its code describes.
/// After an intended change, rewrite it with `UPDATE_API=1 cargo test -p examples --test rpc_api`
/// and review what `rpc-api diff` says about it.
#[test]
fn the_committed_shop_description_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("api/shop.json");
    let code = Description::of(&shop());
    let text = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(&describe::to_json(&shop())).unwrap(),
    )
    .unwrap()
        + "\n";
    if std::env::var_os("UPDATE_API").is_some() {
        std::fs::write(&path, &text).expect("examples/api/shop.json written");
    }
    let committed = std::fs::read_to_string(&path).expect("examples/api/shop.json");
    let committed = Description::from_json(&committed).expect("the committed description reads");
    let changes = describe::diff(&committed, &code);
    let listed: Vec<String> = changes.iter().map(ToString::to_string).collect();
    assert!(
        committed == code,
        "the shop's API differs from examples/api/shop.json ({} changes, {} breaking):\n{}\n\
         if intended, run UPDATE_API=1 cargo test -p examples --test rpc_api",
        changes.len(),
        changes.iter().filter(|c| c.breaking).count(),
        listed.join("\n")
    );
}
