//! The client side: [`Endpoint`] says how to reach a server, [`Channel`] makes calls to it.

mod call;
mod channel;
mod connection;
mod endpoint;
mod future;
mod options;
mod reconnect;
mod stream_call;
mod typed;

pub use call::{UnaryCall, UnaryFuture};
pub use channel::Channel;
pub use endpoint::{Endpoint, InvalidUri};
pub use future::ResponseFuture;
pub use options::CallOptions;
pub use reconnect::{ChannelState, ConnectError};
pub use stream_call::{
    BidiStreaming, ClientStreaming, OpenStream, ServerStreaming, StreamCall, StreamShape,
};
pub use typed::choose_codec;
