//! tarpc with a structured message: unary echo of an [`Order`], bincode over one TCP connection.
//!
//! Framing, limits and deadline are [`tarpc_echo`](super::tarpc_echo)'s.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{context, serde_transport};
use tokio::net::TcpStream;

use super::order;
use super::tarpc_echo::{call_context, client_config, framed, server_config, SERVER_IN_FLIGHT};
use crate::{realistic_order, Order};

/// The service, kept private so the workspace's documentation lints do not apply to what the
/// macro generates.
#[allow(missing_docs, unreachable_pub)]
mod service {
    /// The order echo service.
    #[tarpc::service]
    pub(super) trait OrderEcho {
        /// Returns `order`.
        async fn echo(order: crate::Order) -> crate::Order;
    }
}

use service::{OrderEcho, OrderEchoClient};

/// The order echo service.
#[derive(Debug, Clone, Copy)]
struct OrderEchoServer;

impl OrderEcho for OrderEchoServer {
    async fn echo(self, _: context::Context, order: Order) -> Order {
        order
    }
}

/// Serves the order echo.
///
/// # Errors
/// The listener's failure.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    loop {
        let (stream, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let transport = serde_transport::new(framed(stream), Bincode::default());
        let requests = BaseChannel::new(server_config(), transport)
            .max_concurrent_requests(SERVER_IN_FLIGHT)
            .execute(OrderEchoServer.serve());
        tokio::spawn(requests.for_each(|call| async move {
            tokio::spawn(call);
        }));
    }
}

/// A client over one connection, and the order every call sends.
#[derive(Clone, Debug)]
pub struct Client {
    inner: OrderEchoClient,
    /// [`realistic_order`] with id 0; each call sends a copy with its own id.
    template: Arc<Order>,
}

impl Client {
    /// Connects.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let transport = serde_transport::new(framed(stream), Bincode::default());
        let inner = OrderEchoClient::new(client_config(), transport).spawn();
        Ok(Client {
            inner,
            template: Arc::new(realistic_order(0)),
        })
    }

    /// One call: sends the order numbered after `payload`'s first 8 bytes, checks the reply and
    /// returns `payload`.
    ///
    /// # Errors
    /// The call's failure, or how the reply differs from the order sent, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let id = order::id_of(&payload);
        let mut sent = Order::clone(&self.template);
        sent.id = id;
        let mut reply = self
            .inner
            .echo(call_context(), sent)
            .await
            .map_err(|e| e.to_string())?;
        let got = std::mem::take(&mut reply.id);
        order::check_reply(got, id, &reply, &self.template)?;
        Ok(payload)
    }
}
