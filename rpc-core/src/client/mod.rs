//! The client side: [`Endpoint`] says how to reach a server, [`Channel`] makes calls to it.

mod channel;
mod connection;
mod endpoint;

pub use channel::{Channel, ChannelState, ResponseFuture};
pub use endpoint::{Endpoint, InvalidUri};
