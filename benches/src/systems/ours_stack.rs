//! This framework's whole client stack (issue 13, item 5): a generated client (`#[service]`
//! [`Echo`](crate::Echo), Protobuf) over deadline, retry and circuit-breaker layers over a
//! [`BalancedChannel`] (its default strategy) across three endpoints, next to the same generated
//! client over a bare [`Channel`](rpc_core::Channel) (`ours-generated`).
//!
//! The three endpoints are one server process listening on the same port at 127.0.0.1, .2 and
//! .3 (Linux routes all of 127.0.0.0/8 to the loopback interface), so the server side is the
//! same as for the other `ours` systems and the client's CPU per call is what differs. The
//! message is an [`Item`] whose SKU carries the call's number, 64 B in Protobuf.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use rpc_core::middleware::{
    BreakerConfig, CircuitBreakerLayer, CircuitBreakerService, Deadline, DeadlineLayer, Retry,
    RetryLayer,
};
use rpc_discovery::{BalancedChannel, EndpointSet, Instance, Watch};
use tower::ServiceBuilder;

use super::ours::connect_channel;
use crate::{EchoClient, Item};

/// The middleware stack, outermost first.
type Stack = Deadline<Retry<CircuitBreakerService<BalancedChannel>>>;

/// Serves the `ours` echo on `listener` and on the same port at 127.0.0.2 and 127.0.0.3.
///
/// # Errors
/// A listener's failure.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    for host in [2, 3] {
        let other = tokio::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), port))
            .await
            .map_err(|e| format!("binding 127.0.0.{host}:{port}: {e}"))?;
        tokio::spawn(super::ours::serve(other));
    }
    super::ours::serve(listener).await
}

/// The three endpoints of a server listening at `addr` (see the module docs).
fn endpoints(addr: SocketAddr) -> EndpointSet {
    EndpointSet::new((1..=3).map(|host| {
        Instance::new(
            "bench.Echo",
            SocketAddr::new(Ipv4Addr::new(127, 0, 0, host).into(), addr.port()).to_string(),
        )
    }))
}

/// The call's number in the SKU, padded so that the item is 64 B in Protobuf.
fn item_for(payload: &[u8]) -> Item {
    let mut n = [0u8; 8];
    let k = payload.len().min(8);
    n[..k].copy_from_slice(&payload[..k]);
    Item {
        sku: format!("{:057}", u64::from_be_bytes(n)),
        quantity: 3,
        price_cents: 1999,
    }
}

async fn check(reply: Result<Item, rpc_core::Status>, sent: &Item) -> Result<(), String> {
    match reply {
        Ok(got) if &got == sent => Ok(()),
        Ok(_) => Err("the reply differs from the item sent".into()),
        Err(status) => Err(status.to_string()),
    }
}

/// The generated client over a bare channel: one connection.
#[derive(Clone, Debug)]
pub struct Bare {
    inner: EchoClient<rpc_core::Channel>,
}

impl Bare {
    /// Connects.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr) -> Result<Bare, String> {
        let channel = connect_channel(addr).await?;
        Ok(Bare {
            inner: EchoClient::new(channel).with_codec(rpc_core::CodecId::PROTOBUF),
        })
    }

    /// One call: sends the item numbered after `payload`, checks the reply, returns `payload`.
    ///
    /// # Errors
    /// The call's status, or a reply that differs, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let item = item_for(&payload);
        check(self.inner.echo(item.clone()).await, &item).await?;
        Ok(payload)
    }
}

/// The generated client over the whole stack: three endpoints, one connection each.
#[derive(Clone)]
pub struct Full {
    inner: EchoClient<Stack>,
}

impl std::fmt::Debug for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ours_stack::Full")
    }
}

impl Full {
    /// Builds the stack; the balanced channel connects to each endpoint on first use.
    ///
    /// # Errors
    /// None today; a `Result` like the other systems' `connect`.
    pub async fn connect(addr: SocketAddr) -> Result<Full, String> {
        let balanced = BalancedChannel::new(Watch::fixed(endpoints(addr)));
        let stack = ServiceBuilder::new()
            .layer(DeadlineLayer::new(Duration::from_secs(60)))
            .layer(RetryLayer::new())
            .layer(CircuitBreakerLayer::new().config(BreakerConfig::new()))
            .service(balanced);
        Ok(Full {
            inner: EchoClient::new(stack).with_codec(rpc_core::CodecId::PROTOBUF),
        })
    }

    /// One call: sends the item numbered after `payload`, checks the reply, returns `payload`.
    ///
    /// # Errors
    /// The call's status, or a reply that differs, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let item = item_for(&payload);
        check(self.inner.echo(item.clone()).await, &item).await?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_item_is_64_bytes_in_protobuf() {
        assert_eq!(item_for(&[0xff; 64]).encoded_len(), 64);
        assert_eq!(item_for(&[]).encoded_len(), 64);
    }
}
