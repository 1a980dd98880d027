//! What both ends of a connection share: the framed stream, the handshake and the write queue.

mod frame_io;
mod handshake;
mod id_map;

pub(crate) use frame_io::FrameIo;
pub(crate) use handshake::{client_handshake, server_handshake};
pub(crate) use id_map::IdMap;

/// How many passes a driver makes over read and write before it yields to other tasks.
pub(crate) const DRIVER_SPINS: usize = 32;
/// Bytes queued for the transport above which a driver stops taking more work.
pub(crate) const WRITE_HIGH_WATER: usize = 1 << 20;
