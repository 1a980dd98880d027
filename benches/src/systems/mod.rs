//! The systems the load generator compares, each as an echo server on a TCP listener and a
//! cloneable client whose `echo` sends a payload and returns the reply.
//!
//! - [`raw`]: the floor: a length-prefixed multiplexed echo written directly on tokio;
//! - [`ours`]: this framework, raw bytes or a structured message in each codec;
//! - [`tonic_echo`]: tonic unary gRPC (prost) over one HTTP/2 channel;
//! - [`tarpc_echo`]: tarpc (bincode over TCP) over one connection.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use bytes::Bytes;

pub mod ours;
pub mod raw;
pub mod tarpc_echo;
pub mod tonic_echo;

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    /// The raw TCP floor.
    Raw,
    /// Ours, raw bytes (codec 0).
    OursRaw,
    /// Ours, Protobuf.
    OursProtobuf,
    /// Ours, JSON.
    OursJson,
    /// Ours, MessagePack.
    OursMsgpack,
    /// tonic.
    Tonic,
    /// tarpc.
    Tarpc,
}

impl System {
    /// Every system, in table order.
    pub const ALL: [System; 7] = [
        System::Raw,
        System::OursRaw,
        System::OursProtobuf,
        System::OursMsgpack,
        System::OursJson,
        System::Tonic,
        System::Tarpc,
    ];

    /// The name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw-tcp",
            System::OursRaw => "ours-raw",
            System::OursProtobuf => "ours-protobuf",
            System::OursJson => "ours-json",
            System::OursMsgpack => "ours-msgpack",
            System::Tonic => "tonic",
            System::Tarpc => "tarpc",
        }
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for System {
    type Err = String;

    fn from_str(s: &str) -> Result<System, String> {
        System::ALL
            .into_iter()
            .find(|sys| sys.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = System::ALL.iter().map(|s| s.name()).collect();
                format!("unknown system {s:?}; expected one of {}", names.join(", "))
            })
    }
}

/// Serves `system` on `listener` until the process ends.
///
/// # Errors
/// The server's failure, as text.
pub async fn serve(system: System, listener: tokio::net::TcpListener) -> Result<(), String> {
    match system {
        System::Raw => raw::serve(listener).await,
        System::OursRaw | System::OursProtobuf | System::OursJson | System::OursMsgpack => {
            ours::serve(listener).await
        }
        System::Tonic => tonic_echo::serve(listener).await,
        System::Tarpc => tarpc_echo::serve(listener).await,
    }
}

/// A connected client of one system.
#[derive(Clone)]
pub enum Client {
    /// The raw floor.
    Raw(raw::Client),
    /// Ours.
    Ours(ours::Client),
    /// tonic.
    Tonic(tonic_echo::Client),
    /// tarpc.
    Tarpc(tarpc_echo::Client),
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Client::Raw(_) => "Client::Raw",
            Client::Ours(_) => "Client::Ours",
            Client::Tonic(_) => "Client::Tonic",
            Client::Tarpc(_) => "Client::Tarpc",
        })
    }
}

impl Client {
    /// Connects one connection (one HTTP/2 channel for tonic) to `addr`.
    ///
    /// # Errors
    /// The connection failure, as text.
    pub async fn connect(system: System, addr: SocketAddr) -> Result<Client, String> {
        Ok(match system {
            System::Raw => Client::Raw(raw::Client::connect(addr).await?),
            System::OursRaw => Client::Ours(ours::Client::connect(addr, None).await?),
            System::OursProtobuf => {
                Client::Ours(ours::Client::connect(addr, Some(rpc_core::CodecId::PROTOBUF)).await?)
            }
            System::OursJson => {
                Client::Ours(ours::Client::connect(addr, Some(rpc_core::CodecId::JSON)).await?)
            }
            System::OursMsgpack => {
                Client::Ours(ours::Client::connect(addr, Some(rpc_core::CodecId::MSGPACK)).await?)
            }
            System::Tonic => Client::Tonic(tonic_echo::Client::connect(addr).await?),
            System::Tarpc => Client::Tarpc(tarpc_echo::Client::connect(addr).await?),
        })
    }

    /// Sends `payload`; returns the echoed bytes.
    ///
    /// # Errors
    /// The call's failure, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        match self {
            Client::Raw(c) => c.echo(payload).await,
            Client::Ours(c) => c.echo(payload).await,
            Client::Tonic(c) => c.echo(payload).await,
            Client::Tarpc(c) => c.echo(payload).await,
        }
    }
}
