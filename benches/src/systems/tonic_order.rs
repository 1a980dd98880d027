//! tonic with a structured message: unary gRPC echo of an order (prost) over one HTTP/2 channel.
//!
//! The service comes from `proto/order.proto` (package `bench.order`, `OrderEcho/Echo`), generated
//! by `build.rs`; its messages mirror [`Order`] and [`Item`](crate::Item). The HTTP/2 settings are
//! [`tonic_echo`](super::tonic_echo)'s.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::order;
use super::tonic_echo::{connect_channel, incoming, server, MAX_MESSAGE};
use crate::{realistic_order, Order};

/// The generated code, kept private so the workspace's documentation lints do not apply to it.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all
)]
mod pb {
    tonic::include_proto!("bench.order");
}

use pb::order_echo_client::OrderEchoClient;
use pb::order_echo_server::{OrderEcho, OrderEchoServer};

/// The generated message with the same fields as `order`.
fn to_pb(order: &Order) -> pb::Order {
    pb::Order {
        id: order.id,
        customer: order.customer.clone(),
        items: order
            .items
            .iter()
            .map(|item| pb::Item {
                sku: item.sku.clone(),
                quantity: item.quantity,
                price_cents: item.price_cents,
            })
            .collect(),
        labels: order
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        note: order.note.clone(),
    }
}

/// The order echo service.
#[derive(Debug, Clone, Copy)]
struct OrderEchoService;

#[tonic::async_trait]
impl OrderEcho for OrderEchoService {
    async fn echo(&self, request: Request<pb::Order>) -> Result<Response<pb::Order>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Serves the order echo.
///
/// # Errors
/// The server's failure.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), String> {
    let svc = OrderEchoServer::new(OrderEchoService)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    server()
        .add_service(svc)
        .serve_with_incoming(incoming(listener))
        .await
        .map_err(|e| e.to_string())
}

/// A client: one HTTP/2 channel, shared by clones, and the order every call sends.
#[derive(Clone, Debug)]
pub struct Client {
    inner: OrderEchoClient<Channel>,
    /// [`realistic_order`] with id 0, as the generated message; each call sends a copy with its
    /// own id.
    template: Arc<pb::Order>,
}

impl Client {
    /// Connects.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr) -> Result<Client, String> {
        let inner = OrderEchoClient::new(connect_channel(addr).await?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(Client {
            inner,
            template: Arc::new(to_pb(&realistic_order(0))),
        })
    }

    /// One call: sends the order numbered after `payload`'s first 8 bytes, checks the reply and
    /// returns `payload`.
    ///
    /// # Errors
    /// The call's status, or how the reply differs from the order sent, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let id = order::id_of(&payload);
        let mut sent = pb::Order::clone(&self.template);
        sent.id = id;
        // A clone shares the channel; the generated method needs `&mut self`.
        let mut client = self.inner.clone();
        let mut reply = client
            .echo(sent)
            .await
            .map_err(|status| status.to_string())?
            .into_inner();
        let got = std::mem::take(&mut reply.id);
        order::check_reply(got, id, &reply, &self.template)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::to_pb;
    use crate::realistic_order;

    /// The generated messages and the Rust types agree on the wire.
    #[test]
    fn generated_order_reads_the_rust_order() {
        let order = realistic_order(1_234_567);
        let bytes = order.encode_to_vec();
        let decoded = super::pb::Order::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, to_pb(&order));
        assert_eq!(decoded.encoded_len(), bytes.len());
    }
}
