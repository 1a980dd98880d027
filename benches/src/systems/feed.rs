//! The streaming systems of the load generator: one server stream of numbered messages, in this
//! framework and in tonic.
//!
//! A feed sends messages of the size the caller asks for, each numbered from 0 in its first 8
//! bytes (big-endian) over a fixed pattern, as fast as flow control lets it, until the caller
//! cancels; the caller checks every message's size and number. A hold sends one empty message and
//! then nothing: an idle stream, for the memory a stream costs while it waits.
//!
//! - `ours-raw`: `bench.Feed/Subscribe`, raw bytes (the request is the size as 4 bytes,
//!   big-endian);
//! - `ours-protobuf`: `bench.Feed/SubscribeMessage`, a [`FeedMessage`] per message in Protobuf
//!   through a typed [`Sender`];
//! - `tonic`: `bench.feed.Feed/Subscribe` from `proto/feed.proto`, the same messages, over the
//!   HTTP/2 settings of [`tonic_echo`](super::tonic_echo).
//!
//! The servers are the echo servers of the same systems: [`ours::serve`](super::ours::serve) and
//! [`tonic_echo::serve`](super::tonic_echo::serve) serve the feed beside the echo.

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use rpc_core::codec::{impl_message, Message};
use rpc_core::server::RawService;
use rpc_core::stream::{RawSender, RawStreaming, Sender, Streaming};
use rpc_core::{Channel, CodecId, Request, Response, Status};

use super::System;

/// The generated code, kept private so the workspace's documentation lints do not apply to it.
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all
)]
mod pb {
    tonic::include_proto!("bench.feed");
}

/// The service name of this framework's feed.
pub const SERVICE: &str = "bench.Feed";

/// What a Protobuf feed is asked for.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct FeedRequest {
    /// Bytes per message.
    #[prost(uint32, tag = "1")]
    pub size: u32,
}

/// One message of a Protobuf feed.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct FeedMessage {
    /// The numbered payload.
    #[prost(bytes = "bytes", tag = "1")]
    pub payload: Bytes,
}

impl_message!(FeedRequest, FeedMessage);

/// The pattern every message of `size` bytes is stamped over.
pub fn template(size: usize) -> Bytes {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// Message `n` of a feed (and the payload of unary call `n` in `loadgen`): `template` with `n`
/// (big-endian) over its first 8 bytes (fewer when it is shorter).
pub fn numbered(template: &[u8], n: u64) -> Bytes {
    let mut b = BytesMut::from(template);
    let tag = n.to_be_bytes();
    let k = tag.len().min(b.len());
    b[..k].copy_from_slice(&tag[..k]);
    b.freeze()
}

/// Checks that `got` is message `n` of a feed of `template`'s size (without allocating: the
/// check runs once per message in the measured client).
///
/// # Errors
/// What differs.
pub fn check(got: &[u8], template: &Bytes, n: u64) -> Result<(), String> {
    if got.len() != template.len() {
        return Err(format!(
            "message {n}: {} bytes, expected {}",
            got.len(),
            template.len()
        ));
    }
    let tag = n.to_be_bytes();
    let k = tag.len().min(got.len());
    if got[..k] != tag[..k] {
        let mut seen = [0u8; 8];
        seen[..k].copy_from_slice(&got[..k]);
        return Err(format!(
            "message {n}: numbered {}",
            u64::from_be_bytes(seen)
        ));
    }
    if got[k..] != template[k..] {
        return Err(format!("message {n}: its payload is corrupted"));
    }
    Ok(())
}

/// This framework's feed: `Subscribe` (raw bytes), `SubscribeMessage` (a [`FeedMessage`] in the
/// request's codec) and `Hold`.
pub fn ours_service() -> RawService {
    RawService::new(SERVICE)
        .server_streaming("Subscribe", subscribe_raw)
        .server_streaming("SubscribeMessage", subscribe_message)
        .server_streaming("Hold", hold)
}

fn size_of_raw_request(body: &[u8]) -> Result<usize, Status> {
    let size: [u8; 4] = body
        .try_into()
        .map_err(|_| Status::invalid_argument("the request is the size as 4 bytes"))?;
    Ok(u32::from_be_bytes(size) as usize)
}

async fn subscribe_raw(req: Request, mut out: RawSender) -> Result<Response, Status> {
    let template = template(size_of_raw_request(req.body())?);
    let mut n = 0;
    loop {
        // Fails once the caller has cancelled: the handler ends with it.
        out.send(numbered(&template, n)).await?;
        n += 1;
    }
}

async fn subscribe_message(req: Request, out: RawSender) -> Result<Response, Status> {
    let codec = req.codec();
    let request = FeedRequest::codecs()
        .decode(codec, req.into_body())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let template = template(request.size as usize);
    let mut out = Sender::new(out, codec, FeedMessage::codecs());
    let mut n = 0;
    loop {
        let message = FeedMessage {
            payload: numbered(&template, n),
        };
        out.send(&message).await?;
        n += 1;
    }
}

async fn hold(_: Request, mut out: RawSender) -> Result<Response, Status> {
    out.send(Bytes::new()).await?;
    std::future::pending().await
}

/// A stream of feed messages, as tonic's generated trait wants it.
type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::FeedMessage, tonic::Status>> + Send>>;

/// tonic's feed.
#[derive(Debug, Clone, Copy)]
struct TonicFeed;

#[tonic::async_trait]
impl pb::feed_server::Feed for TonicFeed {
    type SubscribeStream = FeedStream;
    type HoldStream = FeedStream;

    async fn subscribe(
        &self,
        request: tonic::Request<pb::FeedRequest>,
    ) -> Result<tonic::Response<FeedStream>, tonic::Status> {
        let template = template(request.into_inner().size as usize);
        // Always ready: tonic sends as fast as HTTP/2 flow control lets it.
        let feed = futures::stream::iter(0..).map(move |n| {
            Ok(pb::FeedMessage {
                payload: numbered(&template, n),
            })
        });
        Ok(tonic::Response::new(Box::pin(feed)))
    }

    async fn hold(
        &self,
        _: tonic::Request<pb::FeedRequest>,
    ) -> Result<tonic::Response<FeedStream>, tonic::Status> {
        let first = pb::FeedMessage {
            payload: Bytes::new(),
        };
        let feed = futures::stream::once(async { Ok(first) }).chain(futures::stream::pending());
        Ok(tonic::Response::new(Box::pin(feed)))
    }
}

/// tonic's feed service, with the echo systems' message size limits.
pub(super) fn tonic_service() -> pb::feed_server::FeedServer<impl pb::feed_server::Feed> {
    pb::feed_server::FeedServer::new(TonicFeed)
        .max_decoding_message_size(super::tonic_echo::MAX_MESSAGE)
        .max_encoding_message_size(super::tonic_echo::MAX_MESSAGE)
}

/// A connected client of one streaming system: one connection (one HTTP/2 channel for tonic)
/// that every feed it opens shares.
#[derive(Clone, Debug)]
pub enum FeedClient {
    /// Ours, raw bytes.
    OursRaw(Channel),
    /// Ours, [`FeedMessage`]s in Protobuf.
    OursProtobuf(Channel),
    /// tonic.
    Tonic(pb::feed_client::FeedClient<tonic::transport::Channel>),
}

/// An open feed.
#[derive(Debug)]
pub enum Feed {
    /// Ours, raw bytes.
    OursRaw(RawStreaming),
    /// Ours, Protobuf.
    OursProtobuf(Streaming<FeedMessage>),
    /// tonic.
    Tonic(tonic::Streaming<pb::FeedMessage>),
}

impl FeedClient {
    /// The systems that stream: `ours-raw`, `ours-protobuf` and `tonic`.
    pub const SYSTEMS: [System; 3] = [System::OursRaw, System::OursProtobuf, System::Tonic];

    /// Connects to the server of `system` at `addr`.
    ///
    /// # Errors
    /// A system that does not stream, or the connection's failure, as text.
    pub async fn connect(system: System, addr: SocketAddr) -> Result<FeedClient, String> {
        Ok(match system {
            System::OursRaw => FeedClient::OursRaw(super::ours::connect_channel(addr).await?),
            System::OursProtobuf => {
                FeedClient::OursProtobuf(super::ours::connect_channel(addr).await?)
            }
            System::Tonic => FeedClient::Tonic(
                pb::feed_client::FeedClient::new(super::tonic_echo::connect_channel(addr).await?)
                    .max_decoding_message_size(super::tonic_echo::MAX_MESSAGE),
            ),
            other => {
                return Err(format!(
                    "{other} does not stream; the streaming systems are ours-raw, ours-protobuf \
                     and tonic"
                ))
            }
        })
    }

    /// Opens a feed of `size`-byte messages.
    ///
    /// # Errors
    /// The call's failure, as text.
    pub async fn subscribe(&self, size: usize) -> Result<Feed, String> {
        let size = u32::try_from(size).map_err(|_| format!("{size} bytes per message"))?;
        match self {
            FeedClient::OursRaw(channel) => {
                let body = Bytes::copy_from_slice(&size.to_be_bytes());
                let request = Request::new(format!("{SERVICE}/Subscribe"), body);
                let stream = channel.server_streaming(request).await;
                Ok(Feed::OursRaw(stream.map_err(|e| e.to_string())?))
            }
            FeedClient::OursProtobuf(channel) => {
                let body = FeedRequest::codecs()
                    .encode_to_bytes(CodecId::PROTOBUF, &FeedRequest { size })
                    .map_err(|e| e.to_string())?;
                let request = Request::new(format!("{SERVICE}/SubscribeMessage"), body)
                    .with_codec(CodecId::PROTOBUF);
                let stream = channel.server_streaming(request).await;
                let raw = stream.map_err(|e| e.to_string())?;
                Ok(Feed::OursProtobuf(Streaming::new(
                    raw,
                    CodecId::PROTOBUF,
                    FeedMessage::codecs(),
                )))
            }
            FeedClient::Tonic(client) => {
                let stream = client.clone().subscribe(pb::FeedRequest { size }).await;
                Ok(Feed::Tonic(stream.map_err(|e| e.to_string())?.into_inner()))
            }
        }
    }

    /// Opens an idle feed, and returns once its one message has arrived (so both ends hold the
    /// stream).
    ///
    /// # Errors
    /// The call's failure, or a first message that is not there or not empty, as text.
    pub async fn hold(&self) -> Result<Feed, String> {
        let mut feed = match self {
            FeedClient::OursRaw(channel) | FeedClient::OursProtobuf(channel) => {
                let request = Request::new(format!("{SERVICE}/Hold"), Bytes::new());
                let stream = channel.server_streaming(request).await;
                Feed::OursRaw(stream.map_err(|e| e.to_string())?)
            }
            FeedClient::Tonic(client) => {
                let stream = client.clone().hold(pb::FeedRequest { size: 0 }).await;
                Feed::Tonic(stream.map_err(|e| e.to_string())?.into_inner())
            }
        };
        match feed.next().await? {
            Some(first) if first.is_empty() => Ok(feed),
            Some(first) => Err(format!("a hold's first message has {} bytes", first.len())),
            None => Err("a hold ended before its first message".into()),
        }
    }
}

impl Feed {
    /// The next message's payload, or `None` once the feed has ended.
    ///
    /// # Errors
    /// The stream's failure, as text.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            Feed::OursRaw(s) => s.message().await.map_err(|e| e.to_string()),
            Feed::OursProtobuf(s) => s
                .message()
                .await
                .map(|m| m.map(|m| m.payload))
                .map_err(|e| e.to_string()),
            Feed::Tonic(s) => s
                .message()
                .await
                .map(|m| m.map(|m| m.payload))
                .map_err(|e| e.to_string()),
        }
    }
}
