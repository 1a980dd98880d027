//! This framework with a generated service: `bench.OrderEcho/Echo` echoes an [`Order`], declared
//! as a `#[rpc_core::service]` trait. The client picks the codec (`OrderEchoClient::with_codec`);
//! the server answers in the codec of the request. Limits are the ones of [`ours`](super::ours).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rpc_core::{CodecId, Server, Status};

use super::order;
use super::ours::{connect_channel, MAX_IN_FLIGHT};
use crate::{realistic_order, Order};

/// An echo service of [`Order`]s, for the load generator's order systems.
#[rpc_core::service(name = "bench.OrderEcho")]
pub trait OrderEcho {
    /// Returns the order.
    async fn echo(&self, order: Order) -> Result<Order, Status>;
}

/// The [`OrderEcho`] implementation: returns what it is given.
#[derive(Debug, Clone, Copy)]
pub struct OrderEchoer;

impl OrderEcho for OrderEchoer {
    async fn echo(&self, order: Order) -> Result<Order, Status> {
        Ok(order)
    }
}

/// Serves [`OrderEcho`] in every codec.
///
/// # Errors
/// The listener's failure.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    Server::builder()
        .max_concurrent_calls_per_connection(MAX_IN_FLIGHT)
        .add_service(OrderEchoServer::new(OrderEchoer))
        .serve(listener)
        .await
        .map_err(|e| e.to_string())
}

/// A client: one connection, one codec, and the order every call sends.
#[derive(Clone, Debug)]
pub struct Client {
    inner: OrderEchoClient,
    /// [`realistic_order`] with id 0; each call sends a copy with its own id.
    template: Arc<Order>,
}

impl Client {
    /// Connects; every call will be encoded in `codec`.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr, codec: CodecId) -> Result<Client, String> {
        let inner = OrderEchoClient::new(connect_channel(addr).await?).with_codec(codec);
        Ok(Client {
            inner,
            template: Arc::new(realistic_order(0)),
        })
    }

    /// One call: sends the order numbered after `payload`'s first 8 bytes, checks the reply and
    /// returns `payload`.
    ///
    /// # Errors
    /// The call's status, or how the reply differs from the order sent, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let id = order::id_of(&payload);
        let mut sent = Order::clone(&self.template);
        sent.id = id;
        let mut reply = self.inner.echo(sent).await.map_err(|e| e.to_string())?;
        let got = std::mem::take(&mut reply.id);
        order::check_reply(got, id, &reply, &self.template)?;
        Ok(payload)
    }
}
