//! A client in another language, written from `docs/protocol.md` and a server's description
//! alone (`tests/python/client_from_description.py`), calls every method of the shop's inventory
//! in JSON, MessagePack and Protobuf over real TCP, building each request from the schemas and
//! checking each reply against them. Protobuf goes through the classes `protoc --python_out`
//! generates from `describe::to_proto`.
//!
//! Needs `python3` with `msgpack` and `protobuf`, and `protoc` (`scripts/deps` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use examples::shop::inventory::{InventoryServer, Warehouse};
use rpc_core::describe::{to_proto, Description};
use rpc_core::Server;

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_calls_every_method_from_the_description_alone() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server =
        Server::builder().add_service(InventoryServer::new(Warehouse::with_stock([("mug", 100)])));
    tokio::spawn(server.serve(listener));

    let dir = TempDir(std::env::temp_dir().join(format!("rpc-python-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let proto = to_proto(&Description::of(&[InventoryServer::<()>::DESCRIPTOR])).unwrap();
    std::fs::write(dir.0.join("shop.proto"), proto).unwrap();
    let protoc = std::env::var_os("PROTOC").unwrap_or_else(|| "protoc".into());
    let mut gen = Command::new(protoc);
    gen.arg(format!("-I{}", dir.0.display()))
        .arg(format!("--python_out={}", dir.0.display()))
        .arg("shop.proto")
        .current_dir(&dir.0);
    if Path::new("/usr/include/google/protobuf/wrappers.proto").exists() {
        gen.arg("-I/usr/include");
    }
    let gen = gen
        .output()
        .expect("protoc runs (bash scripts/deps installs it)");
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );

    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_from_description.py");
    let run = |sample: &'static str| {
        let (script, addr, dir) = (script.clone(), addr.clone(), dir.0.display().to_string());
        tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg(script)
                .args([addr.as_str(), "shop.Inventory", dir.as_str(), sample])
                .output()
                .expect("python3 runs (bash scripts/deps installs msgpack and protobuf)")
        })
    };
    // The script's output, after checking it exited 0.
    let stdout_of = |out: std::process::Output| {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{stdout}");
        stdout
    };
    // Strings sampled as a SKU the warehouse carries: every call answers.
    let stdout = stdout_of(run("mug").await.unwrap());
    // Six methods in three codecs (the one-way restock is sent, not answered).
    assert_eq!(
        stdout.lines().last(),
        Some("python client: calls=18 ok"),
        "{stdout}"
    );
    assert!(stdout.contains("shop.Inventory/Audit"), "{stdout}");
    // A SKU it does not carry: typed errors, whose values decode as the described error type.
    let stdout = stdout_of(run("no-such-sku").await.unwrap());
    assert!(
        stdout.contains("shop.Inventory/Check                     json     -> typed error"),
        "{stdout}"
    );
}
