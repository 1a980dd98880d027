//! The systems the load generator compares, each as an echo server on a TCP listener and a
//! cloneable client whose `echo` sends a payload and returns the reply.
//!
//! - [`raw`]: the floor: a length-prefixed multiplexed echo written directly on tokio;
//! - [`ours`]: this framework, raw bytes or a structured message in each codec;
//! - [`tonic_echo`]: tonic unary gRPC (prost) over one HTTP/2 channel;
//! - [`tarpc_echo`]: tarpc (bincode over TCP) over one connection.
//!
//! The order systems ([`System::ORDER`], not among the default [`System::ALL`]) echo a realistic
//! [`Order`](crate::Order) of about 600 bytes ([`realistic_order`](crate::realistic_order))
//! instead of the payload; each call's order is numbered after the payload's first 8 bytes, and
//! the client hands the payload back once the reply matches the order sent:
//!
//! - [`ours_order`]: this framework through a `#[rpc_core::service]` trait, in Protobuf, JSON or
//!   MessagePack (`ours-order-protobuf`, `ours-order-json`, `ours-order-msgpack`);
//! - [`tonic_order`]: tonic, the same messages from `proto/order.proto` (`tonic-order`);
//! - [`tarpc_order`]: tarpc, the same [`Order`](crate::Order) in bincode (`tarpc-order`).
//!
//! The stack systems ([`System::STACK`]) send a 64 B [`Item`](crate::Item) through the generated
//! [`EchoClient`](crate::EchoClient) ([`ours_stack`]): over a bare channel (`ours-generated`), and
//! over deadline, retry, circuit breaker and a balanced channel across three endpoints
//! (`ours-stack`).
//!
//! The TLS systems ([`System::TLS`], feature `tls`) measure what TLS 1.3 costs ([`ours_tls`]):
//! the raw echo over TLS (`ours-tls`) and mutual TLS (`ours-mtls`) beside plaintext
//! (`ours-raw`), and what a new connection costs: a client that connects, makes one call and
//! closes for every call, in plaintext (`ours-connect`), TLS (`ours-tls-connect`) and mutual TLS
//! (`ours-mtls-connect`); their calls per second are new connections per second.
//!
//! The streaming runs ([`feed`]) use the servers of `ours-raw`, `ours-protobuf` and `tonic`, which
//! serve a feed of numbered messages beside the echo.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use bytes::Bytes;

pub mod feed;
mod order;
pub mod ours;
pub mod ours_order;
pub mod ours_stack;
#[cfg(feature = "tls")]
pub mod ours_tls;
pub mod raw;
pub mod tarpc_echo;
pub mod tarpc_order;
pub mod tonic_echo;
pub mod tonic_order;

/// The environment variable that names the PKI directory of the TLS systems, which the load
/// generator sets for the servers and clients it starts.
pub const PKI_ENV: &str = "RPC_BENCH_PKI";

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
    /// Ours, an [`Order`](crate::Order) in Protobuf through a generated client.
    OursOrderProtobuf,
    /// Ours, an [`Order`](crate::Order) in JSON through a generated client.
    OursOrderJson,
    /// Ours, an [`Order`](crate::Order) in MessagePack through a generated client.
    OursOrderMsgpack,
    /// tonic, an [`Order`](crate::Order).
    TonicOrder,
    /// tarpc, an [`Order`](crate::Order).
    TarpcOrder,
    /// Ours, a 64 B [`Item`](crate::Item) through a generated client over a bare channel.
    OursGenerated,
    /// Ours, the same through deadline, retry, breaker and a balanced channel over 3 endpoints.
    OursStack,
    /// Ours, raw bytes over TLS.
    OursTls,
    /// Ours, raw bytes over mutual TLS.
    OursMtls,
    /// Ours, raw bytes, a new plaintext connection per call.
    OursConnect,
    /// Ours, raw bytes, a new TLS connection per call.
    OursTlsConnect,
    /// Ours, raw bytes, a new mutual-TLS connection per call.
    OursMtlsConnect,
}

impl System {
    /// Every payload echo system, in table order: what the load generator runs by default.
    pub const ALL: [System; 7] = [
        System::Raw,
        System::OursRaw,
        System::OursProtobuf,
        System::OursMsgpack,
        System::OursJson,
        System::Tonic,
        System::Tarpc,
    ];

    /// The order systems, in table order: `order` in the load generator's `--systems` list.
    pub const ORDER: [System; 5] = [
        System::OursOrderProtobuf,
        System::OursOrderJson,
        System::OursOrderMsgpack,
        System::TonicOrder,
        System::TarpcOrder,
    ];

    /// The whole client stack against a bare channel, both with a generated client: `stack` in
    /// the load generator's `--systems` list.
    pub const STACK: [System; 2] = [System::OursGenerated, System::OursStack];

    /// Plaintext beside TLS and mutual TLS, with a connection per call and with one connection:
    /// `tls` in the load generator's `--systems` list. Needs the `tls` feature.
    pub const TLS: [System; 6] = [
        System::OursRaw,
        System::OursTls,
        System::OursMtls,
        System::OursConnect,
        System::OursTlsConnect,
        System::OursMtlsConnect,
    ];

    /// Whether the system runs over TLS, so needs the PKI the load generator writes
    /// (`ours_tls::write_pki`, feature `tls`).
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            System::OursTls | System::OursMtls | System::OursTlsConnect | System::OursMtlsConnect
        )
    }

    /// Parses a comma-separated list of system names, in which `order` stands for every system
    /// of [`System::ORDER`], `stack` for those of [`System::STACK`] and `tls` for those of
    /// [`System::TLS`]. A system named twice runs once.
    ///
    /// # Errors
    /// The first name that is neither a system nor `order`.
    ///
    /// ```
    /// use benches::systems::System;
    ///
    /// let systems = System::parse_list("tonic, order")?;
    /// assert_eq!(systems[0], System::Tonic);
    /// assert_eq!(systems[1..], System::ORDER);
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse_list(s: &str) -> Result<Vec<System>, String> {
        let mut systems = Vec::new();
        for name in s.split(',').map(str::trim) {
            let named = if name == "order" {
                System::ORDER.to_vec()
            } else if name == "stack" {
                System::STACK.to_vec()
            } else if name == "tls" {
                System::TLS.to_vec()
            } else {
                vec![name
                    .parse()
                    .map_err(|e| format!("{e}, or `order` / `stack` / `tls` for those groups"))?]
            };
            for system in named {
                if !systems.contains(&system) {
                    systems.push(system);
                }
            }
        }
        Ok(systems)
    }

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
            System::OursOrderProtobuf => "ours-order-protobuf",
            System::OursOrderJson => "ours-order-json",
            System::OursOrderMsgpack => "ours-order-msgpack",
            System::TonicOrder => "tonic-order",
            System::TarpcOrder => "tarpc-order",
            System::OursGenerated => "ours-generated",
            System::OursStack => "ours-stack",
            System::OursTls => "ours-tls",
            System::OursMtls => "ours-mtls",
            System::OursConnect => "ours-connect",
            System::OursTlsConnect => "ours-tls-connect",
            System::OursMtlsConnect => "ours-mtls-connect",
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
        let every = || {
            System::ALL
                .into_iter()
                .chain(System::ORDER)
                .chain(System::STACK)
                .chain(System::TLS)
        };
        every().find(|sys| sys.name() == s).ok_or_else(|| {
            let names: Vec<&str> = every().map(System::name).collect();
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
        System::OursOrderProtobuf | System::OursOrderJson | System::OursOrderMsgpack => {
            ours_order::serve(listener).await
        }
        System::TonicOrder => tonic_order::serve(listener).await,
        System::TarpcOrder => tarpc_order::serve(listener).await,
        System::OursGenerated | System::OursConnect => ours::serve(listener).await,
        System::OursStack => ours_stack::serve(listener).await,
        System::OursTls | System::OursTlsConnect => tls_serve(listener, false).await,
        System::OursMtls | System::OursMtlsConnect => tls_serve(listener, true).await,
    }
}

#[cfg(feature = "tls")]
async fn tls_serve(listener: tokio::net::TcpListener, mutual: bool) -> Result<(), String> {
    ours_tls::serve(listener, mutual).await
}

#[cfg(not(feature = "tls"))]
async fn tls_serve(_: tokio::net::TcpListener, _: bool) -> Result<(), String> {
    Err(NO_TLS.into())
}

#[cfg(feature = "tls")]
fn tls_endpoint(addr: SocketAddr, mutual: bool) -> Result<rpc_core::Endpoint, String> {
    ours_tls::endpoint(addr, mutual)
}

#[cfg(not(feature = "tls"))]
fn tls_endpoint(_: SocketAddr, _: bool) -> Result<rpc_core::Endpoint, String> {
    Err(NO_TLS.into())
}

#[cfg(not(feature = "tls"))]
const NO_TLS: &str = "the TLS systems need the `tls` feature: cargo run --release -p benches \
                      --features tls --bin loadgen -- ...";

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
    /// Ours, echoing an order.
    OursOrder(ours_order::Client),
    /// tonic, echoing an order.
    TonicOrder(tonic_order::Client),
    /// tarpc, echoing an order.
    TarpcOrder(tarpc_order::Client),
    /// Ours, a generated client over a bare channel.
    OursGenerated(ours_stack::Bare),
    /// Ours, a generated client over the whole stack.
    OursStack(ours_stack::Full),
    /// Ours, a new connection per call.
    OursReconnecting(ours::Reconnecting),
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Client::Raw(_) => "Client::Raw",
            Client::Ours(_) => "Client::Ours",
            Client::Tonic(_) => "Client::Tonic",
            Client::Tarpc(_) => "Client::Tarpc",
            Client::OursOrder(_) => "Client::OursOrder",
            Client::TonicOrder(_) => "Client::TonicOrder",
            Client::TarpcOrder(_) => "Client::TarpcOrder",
            Client::OursGenerated(_) => "Client::OursGenerated",
            Client::OursStack(_) => "Client::OursStack",
            Client::OursReconnecting(_) => "Client::OursReconnecting",
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
            System::OursOrderProtobuf => Client::OursOrder(
                ours_order::Client::connect(addr, rpc_core::CodecId::PROTOBUF).await?,
            ),
            System::OursOrderJson => {
                Client::OursOrder(ours_order::Client::connect(addr, rpc_core::CodecId::JSON).await?)
            }
            System::OursOrderMsgpack => Client::OursOrder(
                ours_order::Client::connect(addr, rpc_core::CodecId::MSGPACK).await?,
            ),
            System::TonicOrder => Client::TonicOrder(tonic_order::Client::connect(addr).await?),
            System::TarpcOrder => Client::TarpcOrder(tarpc_order::Client::connect(addr).await?),
            System::OursGenerated => Client::OursGenerated(ours_stack::Bare::connect(addr).await?),
            System::OursStack => Client::OursStack(ours_stack::Full::connect(addr).await?),
            System::OursTls | System::OursMtls => {
                let endpoint = tls_endpoint(addr, system == System::OursMtls)?;
                let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
                Client::Ours(ours::Client::from_channel(channel, None))
            }
            System::OursConnect => Client::OursReconnecting(
                ours::Reconnecting::connect(rpc_core::Endpoint::tcp(addr)).await?,
            ),
            System::OursTlsConnect | System::OursMtlsConnect => {
                let endpoint = tls_endpoint(addr, system == System::OursMtlsConnect)?;
                Client::OursReconnecting(ours::Reconnecting::connect(endpoint).await?)
            }
        })
    }

    /// Sends `payload`; returns the echoed bytes. An order client sends its order instead (see
    /// the [module docs](self)) and returns `payload` once the reply checks out.
    ///
    /// # Errors
    /// The call's failure, as text.
    pub async fn echo(&self, payload: Bytes) -> Result<Bytes, String> {
        match self {
            Client::Raw(c) => c.echo(payload).await,
            Client::Ours(c) => c.echo(payload).await,
            Client::Tonic(c) => c.echo(payload).await,
            Client::Tarpc(c) => c.echo(payload).await,
            Client::OursOrder(c) => c.echo(payload).await,
            Client::TonicOrder(c) => c.echo(payload).await,
            Client::TarpcOrder(c) => c.echo(payload).await,
            Client::OursGenerated(c) => c.echo(payload).await,
            Client::OursStack(c) => c.echo(payload).await,
            Client::OursReconnecting(c) => c.echo(payload).await,
        }
    }
}
