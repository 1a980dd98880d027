//! Serves the `#[service]`-defined inventory of the reference shop (`examples::shop`) over TCP on
//! 127.0.0.1 and over the in-memory transport, calls every method in Protobuf, JSON and
//! MessagePack, shows a typed error, then asks the running server to describe itself and prints
//! the Markdown it returns.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use std::time::Duration;

use examples::shop::{
    Delivery, InventoryClient, InventoryError, InventoryServer, ReserveRequest, Warehouse,
};
use rpc_core::describe::{self, Format};
use rpc_core::transport::memory::MemoryListener;
use rpc_core::{Channel, CodecId, Endpoint, Server};

async fn exercise(label: &str, inventory: &InventoryClient<Channel>) -> Result<(), InventoryError> {
    for codec in [CodecId::PROTOBUF, CodecId::JSON, CodecId::MSGPACK] {
        let level = inventory.check("sku-1".into()).codec(codec).await?;
        println!(
            "[{label}/{codec}] Check(sku-1) -> {} available",
            level.available
        );

        let reservation = inventory
            .reserve(ReserveRequest {
                order_id: 1000 + u64::from(codec.get()),
                sku: "sku-1".into(),
                quantity: 2,
            })
            .codec(codec)
            .metadata("caller", "checkout")
            .timeout(Duration::from_millis(250))
            .await?;
        println!(
            "[{label}/{codec}] Reserve(order {}, 2 x sku-1) -> {} left, reserved by {}",
            reservation.order_id, reservation.remaining, reservation.reserved_by
        );

        // One-way: the server sends nothing back; Ok once the server has taken the request.
        inventory
            .restock(Delivery {
                sku: "sku-2".into(),
                quantity: 5,
            })
            .codec(codec)
            .await?;
        println!("[{label}/{codec}] Restock(5 x sku-2) sent");
    }

    // Typed errors arrive as the service's own error type.
    let too_many = ReserveRequest {
        order_id: 7,
        sku: "sku-1".into(),
        quantity: 1_000,
    };
    match inventory.reserve(too_many).await {
        Err(e @ InventoryError::Insufficient { .. }) => {
            println!("[{label}] Reserve(1000 x sku-1) -> refused: {e}")
        }
        other => panic!("expected Insufficient, got {other:?}"),
    }
    match inventory.check("sku-404".into()).await {
        Err(e @ InventoryError::UnknownSku { .. }) => {
            println!("[{label}] Check(sku-404) -> refused: {e}")
        }
        other => panic!("expected UnknownSku, got {other:?}"),
    }
    Ok(())
}

fn server() -> Server {
    let stock = Warehouse::with_stock([("sku-1", 42), ("sku-2", 0)]);
    Server::builder().add_service(InventoryServer::new(stock))
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
    let tcp_server = tokio::spawn(server().serve_with_shutdown(tcp, shutdown(stop_rx.clone())));

    // The in-memory transport, for single-process apps and tests.
    let mem = MemoryListener::bind("quickstart")?;
    let mem_server = tokio::spawn(server().serve_with_shutdown(mem, shutdown(stop_rx)));

    println!("server listening on tcp://{addr} and memory://quickstart");
    let tcp_channel = Endpoint::tcp(addr).connect_lazy();
    exercise("tcp", &InventoryClient::new(tcp_channel.clone())).await?;
    let mem_channel = Endpoint::memory("quickstart").connect_lazy();
    exercise("memory", &InventoryClient::new(mem_channel)).await?;

    // Every server answers the built-in describe method with what it hosts.
    let docs = describe::fetch(tcp_channel, Format::Markdown).await?;
    println!("\n--- the server describes itself ---\n\n{docs}");

    stop_tx.send(true)?;
    tcp_server.await??;
    mem_server.await??;
    println!("done");
    Ok(())
}
