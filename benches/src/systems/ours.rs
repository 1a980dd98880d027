//! This framework: `bench.Echo/Echo` echoes raw bytes; `bench.Echo/Message` decodes and re-encodes
//! an [`EchoMessage`] in the codec of the request. The server serves the
//! [feed](super::feed::ours_service) too.

use std::net::SocketAddr;

use bytes::Bytes;
use rpc_core::codec::{impl_message, Message};
use rpc_core::server::RawService;
use rpc_core::transport::Listener;
use rpc_core::{Channel, CodecId, Endpoint, Request, Response, Server};

/// The structured message of the codec runs: the payload as a bytes field.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct EchoMessage {
    /// The payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub payload: Bytes,
}

impl_message!(EchoMessage);

/// Calls in flight per connection that servers and clients allow (the ours systems share it).
pub(super) const MAX_IN_FLIGHT: u32 = 100_000;

/// Connects one channel with the ours systems' limits.
///
/// # Errors
/// The connection failure.
pub(super) async fn connect_channel(addr: SocketAddr) -> Result<Channel, String> {
    Endpoint::tcp(addr)
        .max_concurrent_calls(MAX_IN_FLIGHT as usize)
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// Serves the echo service on any listener (TCP, or TLS over TCP).
///
/// # Errors
/// The listener's failure.
pub async fn serve<L: Listener>(listener: L) -> Result<(), String> {
    let svc = RawService::new("bench.Echo")
        .method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        })
        .typed("Message", |m: EchoMessage, _ctx| async move { Ok(m) });
    Server::builder()
        .max_concurrent_calls_per_connection(MAX_IN_FLIGHT)
        .add_service(svc)
        .add_service(super::feed::ours_service())
        .serve(listener)
        .await
        .map_err(|e| e.to_string())
}

/// A client: one connection; raw bytes, or an [`EchoMessage`] in a codec.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    codec: Option<CodecId>,
}

impl Client {
    /// Connects.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(addr: SocketAddr, codec: Option<CodecId>) -> Result<Client, String> {
        let channel = connect_channel(addr).await?;
        Ok(Client { channel, codec })
    }

    /// A client over a channel connected elsewhere (such as over TLS).
    pub fn from_channel(channel: Channel, codec: Option<CodecId>) -> Client {
        Client { channel, codec }
    }

    /// One call.
    ///
    /// # Errors
    /// The call's status, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        match self.codec {
            None => self
                .channel
                .unary(Request::new("bench.Echo/Echo", payload))
                .await
                .map(Response::into_body)
                .map_err(|e| e.to_string()),
            Some(codec) => {
                let codecs = EchoMessage::codecs();
                let body = codecs
                    .encode_to_bytes(codec, &EchoMessage { payload })
                    .map_err(|e| e.to_string())?;
                let reply = self
                    .channel
                    .unary(Request::new("bench.Echo/Message", body).with_codec(codec))
                    .await
                    .map_err(|e| e.to_string())?;
                codecs
                    .decode(codec, reply.into_body())
                    .map(|m| m.payload)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// A client that opens a new connection for every call and closes it after the reply: what a
/// call costs when nothing is reused, handshakes included (its calls per second are new
/// connections per second).
#[derive(Clone, Debug)]
pub struct Reconnecting {
    endpoint: Endpoint,
}

impl Reconnecting {
    /// Opens one connection first, so that a server that is not there fails here.
    ///
    /// # Errors
    /// The connection failure.
    pub async fn connect(endpoint: Endpoint) -> Result<Reconnecting, String> {
        endpoint.connect().await.map_err(|e| e.to_string())?;
        Ok(Reconnecting { endpoint })
    }

    /// Connects, makes one raw echo call, and closes the connection.
    ///
    /// # Errors
    /// The connection's or the call's failure, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        let channel = self.endpoint.connect().await.map_err(|e| e.to_string())?;
        channel
            .unary(Request::new("bench.Echo/Echo", payload))
            .await
            .map(Response::into_body)
            .map_err(|e| e.to_string())
    }
}
