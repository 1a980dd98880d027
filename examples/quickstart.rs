//! Starts a server, then calls it in the same process over TCP on 127.0.0.1 and over the in-memory
//! transport, printing each reply.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::time::Duration;

use rpc_core::server::RawService;
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Code, Context, Endpoint, Request, Response, Server, Status};

/// An inventory service with hand-encoded bodies (`#[service]` will generate this kind of code).
fn inventory() -> RawService {
    RawService::new("shop.Inventory")
        .method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        })
        .method("Stock", |req: Request| async move {
            let sku = String::from_utf8(req.body().to_vec())
                .map_err(|_| Status::invalid_argument("sku must be UTF-8"))?;
            let left = Context::current()
                .and_then(|c| c.remaining())
                .map_or("none".to_string(), |d| format!("{} ms", d.as_millis()));
            match sku.as_str() {
                "sku-1" => Ok(Response::new(format!(
                    "{sku}: 42 in stock (deadline left: {left})"
                ))),
                _ => Err(Status::not_found(format!("no such sku {sku:?}"))),
            }
        })
}

async fn exercise(label: &str, channel: &rpc_core::Channel) -> Result<(), Status> {
    let reply = channel
        .unary(Request::new("shop.Inventory/Echo", "hello"))
        .await?;
    println!(
        "[{label}] Echo -> {}",
        String::from_utf8_lossy(reply.body())
    );

    let req =
        Request::new("shop.Inventory/Stock", "sku-1").with_timeout(Duration::from_millis(500));
    let reply = channel.unary(req).await?;
    println!(
        "[{label}] Stock -> {}",
        String::from_utf8_lossy(reply.body())
    );

    let err = channel
        .unary(Request::new("shop.Inventory/Stock", "sku-404"))
        .await
        .expect_err("unknown sku");
    println!("[{label}] Stock(sku-404) -> {err}");
    assert_eq!(err.code(), Code::NotFound);

    let err = channel
        .unary(Request::new("shop.Inventory/Refund", ""))
        .await
        .expect_err("unknown method");
    println!("[{label}] Refund -> {err}");
    assert_eq!(err.code(), Code::Unimplemented);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    examples::init_tracing();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    // TCP on a free loopback port.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = tcp.local_addr()?;
    let tcp_server = tokio::spawn(
        Server::builder()
            .add_service(inventory())
            .serve_with_shutdown(tcp, shutdown(stop_rx.clone())),
    );

    // The in-memory transport, for single-process apps and tests.
    let mem = MemoryListener::bind("quickstart")?;
    let mem_server = tokio::spawn(
        Server::builder()
            .add_service(inventory())
            .serve_with_shutdown(mem, shutdown(stop_rx)),
    );

    println!("server listening on tcp://{addr} and memory://quickstart");
    exercise("tcp", &Endpoint::tcp(addr).connect_lazy()).await?;
    exercise("memory", &Endpoint::memory("quickstart").connect_lazy()).await?;

    stop_tx.send(true)?;
    tcp_server.await??;
    mem_server.await??;
    println!("done");
    Ok(())
}
