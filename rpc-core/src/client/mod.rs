//! The client side: [`Endpoint`] says how to reach a server, [`Channel`] makes calls to it.

mod call;
mod channel;
mod connection;
mod endpoint;

pub(crate) use call::codec_status;
pub use call::{UnaryCall, UnaryFuture};
pub use channel::{Channel, ChannelState, ResponseFuture};
pub use endpoint::{Endpoint, InvalidUri};
