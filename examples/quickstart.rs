//! Serves the `#[service]`-defined inventory of the reference shop (`examples::shop`) over TCP on
//! 127.0.0.1 and over the in-memory transport, calls its methods in Protobuf, JSON and
//! MessagePack, shows a typed error, watches a stock level (a server stream) while a bulk
//! restock streams deliveries in (a client stream), then asks the running server to describe
//! itself and prints the Markdown it returns.
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

    // Streams (protocol 1.1): watch a level while a bulk restock streams deliveries in.
    let mut levels = inventory.watch("sku-3".into()).await?;
    let first = levels.message().await?.map(|l| l.available);
    println!("[{label}] Watch(sku-3) -> {first:?} available now");
    let (mut deliveries, restocked) = inventory.restock_many().await?;
    for quantity in [4, 6] {
        let delivery = Delivery {
            sku: "sku-3".into(),
            quantity,
        };
        deliveries.send(&delivery).await?;
    }
    deliveries.close();
    let restocked = restocked.get().await?;
    println!(
        "[{label}] RestockMany -> {} deliveries, {} units",
        restocked.deliveries, restocked.units
    );
    // The watch sees the level move (one change or two, as the 50 ms polls fall).
    while let Some(level) = levels.message().await? {
        println!("[{label}] Watch(sku-3) -> {} available", level.available);
        if level.available >= first.unwrap_or(0) + 10 {
            break;
        }
    }
    // Dropping the stream cancels the watch on the server.
    drop(levels);
    Ok(())
}

fn server() -> Server {
    let stock = Warehouse::with_stock([("sku-1", 42), ("sku-2", 0), ("sku-3", 1)]);
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
