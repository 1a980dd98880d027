//! What both ends of a connection share: the framed stream ([`FrameIo`]), the handshake, the
//! driver loop ([`Driver`] over a side's [`Role`]), the queue other tasks encode frames into
//! ([`WriteQueue`]), the checks against the peer's limits, body compression and keepalive.
//!
//! The client (`client::connection`) and the server (`server::connection`) each implement
//! [`Role`]; what they hold in common lives here once.

mod compress;
mod driver;
mod frame_io;
mod handshake;
mod id_map;
mod keepalive;
mod limits;
mod streams;
mod write_queue;

pub(crate) use compress::{compress_if_smaller, CompressRule};
pub(crate) use driver::{Driver, Linger, Role, WRITE_HIGH_WATER};
pub(crate) use frame_io::{FrameIo, IDLE_BUFFER};
#[cfg(feature = "http")]
pub(crate) use handshake::HANDSHAKE_BUFFER;
pub(crate) use handshake::{client_handshake, server_handshake_after};
pub(crate) use id_map::IdMap;
pub(crate) use keepalive::Keepalive;
pub(crate) use limits::{check_frame, check_metadata, Exceeded, U16_MAX};
pub(crate) use streams::{Next, Streams};
pub(crate) use write_queue::{Take, WriteQueue};
