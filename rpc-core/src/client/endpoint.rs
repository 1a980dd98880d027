//! [`Endpoint`]: how to reach one address, and the settings of the [`Channel`]s made from it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rpc_codec::{CodecId, CodecSet, Compression};

use super::Channel;
use crate::backoff::Backoff;
use crate::protocol::Settings;
use crate::status::Status;
use crate::transport::memory::MemoryConnector;
use crate::transport::tcp::TcpConnector;
use crate::transport::Connector;

/// The share of each reconnect wait that is random (see [`Backoff::jitter`]).
const RECONNECT_JITTER: f64 = 0.2;
/// The default of [`Endpoint::max_unwritten_bytes`]: the default largest frame, so that the queue
/// keeps a fast transport busy while a peer that stops reading costs at most about twice this.
const DEFAULT_MAX_UNWRITTEN_BYTES: usize = 4 << 20;

/// An address string [`Endpoint::from_uri`] could not read.
#[derive(Debug, thiserror::Error)]
#[error("invalid endpoint address {input:?}: {reason}")]
pub struct InvalidUri {
    input: String,
    reason: &'static str,
}

#[derive(Debug, Clone)]
pub(crate) struct ChannelConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) max_frame_size: u32,
    pub(crate) max_metadata_size: u32,
    pub(crate) backoff: Backoff,
    pub(crate) codec: CodecId,
    pub(crate) compression: Option<Compression>,
    pub(crate) compression_threshold: usize,
    pub(crate) keepalive: Option<(Duration, Duration)>,
    pub(crate) max_unwritten_bytes: usize,
    pub(crate) wait_for_write_capacity: bool,
}

impl ChannelConfig {
    pub(crate) fn local_settings(&self) -> Settings {
        Settings {
            max_frame_size: self.max_frame_size,
            max_concurrent_calls: self.max_concurrent_calls.min(u32::MAX as usize) as u32,
            max_metadata_size: self.max_metadata_size,
            codecs: CodecSet::ALL.bits(),
            compressions: Compression::SUPPORTED_BITS,
            features: crate::protocol::features::STREAMING,
            ..Settings::protocol_default()
        }
    }

    /// The compression to apply to requests, if the server can read it.
    pub(crate) fn compression_for(&self, peer: &Settings) -> Option<(Compression, usize)> {
        self.compression
            .filter(|c| peer.accepts_compression(*c))
            .map(|c| (c, self.compression_threshold))
    }

    /// The wait before reconnect attempt `failures + 1`: exponential, capped, with 20% jitter so
    /// that many clients of one restarted server do not reconnect in lockstep.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        self.backoff.delay(failures)
    }
}

/// How to reach one server, and the settings of the channels made to it.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::Endpoint;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let channel = Endpoint::from_uri("tcp://127.0.0.1:50051")?
///     .connect_timeout(Duration::from_secs(1))
///     .timeout(Duration::from_millis(300))
///     .connect_lazy();
/// # drop(channel);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) config: ChannelConfig,
}

impl Endpoint {
    /// An endpoint over any transport.
    pub fn new(connector: impl Connector) -> Endpoint {
        Endpoint {
            connector: Arc::new(connector),
            config: ChannelConfig {
                connect_timeout: Duration::from_secs(5),
                timeout: None,
                max_concurrent_calls: 1024,
                max_frame_size: Settings::protocol_default().max_frame_size,
                max_metadata_size: Settings::protocol_default().max_metadata_size,
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
                    .jitter(RECONNECT_JITTER),
                codec: CodecId::PROTOBUF,
                compression: None,
                compression_threshold: 1024,
                keepalive: None,
                max_unwritten_bytes: DEFAULT_MAX_UNWRITTEN_BYTES,
                wait_for_write_capacity: true,
            },
        }
    }

    /// A TCP endpoint.
    pub fn tcp(addr: SocketAddr) -> Endpoint {
        Endpoint::new(TcpConnector::new(addr))
    }

    /// A Unix-socket endpoint.
    #[cfg(unix)]
    pub fn unix(path: impl Into<std::path::PathBuf>) -> Endpoint {
        Endpoint::new(crate::transport::unix::UnixConnector::new(path))
    }

    /// An endpoint for the in-memory listener bound to `name` in this process.
    pub fn memory(name: &str) -> Endpoint {
        Endpoint::new(MemoryConnector::new(name))
    }

    /// Reads an address: `tcp://host:port` (or plain `host:port`), `unix:///path/to.sock`
    /// (or `unix:/path`), `memory://name`, or, with feature `tls`, `tls://host:port` (TLS over
    /// TCP, trusting the public CAs of `webpki-roots` and checking the certificate for `host`;
    /// for a private CA or a client certificate, build a `transport::tls::TlsConnector`).
    ///
    /// # Errors
    /// [`InvalidUri`] when the scheme is unknown or the address part is empty or malformed.
    pub fn from_uri(uri: &str) -> Result<Endpoint, InvalidUri> {
        let bad = |reason| InvalidUri {
            input: uri.to_string(),
            reason,
        };
        if let Some(name) = uri.strip_prefix("memory://") {
            if name.is_empty() {
                return Err(bad("empty memory name"));
            }
            return Ok(Endpoint::memory(name));
        }
        if let Some(path) = uri
            .strip_prefix("unix://")
            .or_else(|| uri.strip_prefix("unix:"))
        {
            if path.is_empty() {
                return Err(bad("empty socket path"));
            }
            #[cfg(unix)]
            return Ok(Endpoint::unix(path));
            #[cfg(not(unix))]
            return Err(bad("unix sockets are not supported on this platform"));
        }
        #[cfg(feature = "tls")]
        if let Some(hostport) = uri.strip_prefix("tls://") {
            let Some((host, port)) = hostport.rsplit_once(':') else {
                return Err(bad("expected tls://host:port"));
            };
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad("expected tls://host:port"));
            }
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let config = crate::transport::tls::ClientTlsConfig::new().with_webpki_roots();
            return crate::transport::tls::TlsConnector::new(
                TcpConnector::from_host(hostport),
                host,
                config,
            )
            .map(Endpoint::new)
            .map_err(|_| bad("invalid TLS server name"));
        }
        let hostport = uri.strip_prefix("tcp://").unwrap_or(uri);
        if hostport.contains("://") {
            return Err(bad("unknown scheme (expected tcp, unix or memory)"));
        }
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Endpoint::new(TcpConnector::from_host(hostport)))
            }
            _ => Err(bad("expected host:port")),
        }
    }

    /// How long connecting (transport plus handshake) may take. Default 5 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let ep = rpc_core::Endpoint::memory("svc").connect_timeout(Duration::from_millis(500));
    /// ```
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Endpoint {
        self.config.connect_timeout = timeout;
        self
    }

    /// A deadline applied to every call that has none (or a later one). Default: none.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let ep = rpc_core::Endpoint::memory("svc").timeout(Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Endpoint {
        self.config.timeout = Some(timeout);
        self
    }

    /// Calls in flight at once on a channel; `poll_ready` waits beyond it. Default 1024, lowered to
    /// what the server announces if that is less.
    ///
    /// ```
    /// let ep = rpc_core::Endpoint::memory("svc").max_concurrent_calls(10_000);
    /// ```
    #[must_use]
    pub fn max_concurrent_calls(mut self, n: usize) -> Endpoint {
        self.config.max_concurrent_calls = n.max(1);
        self
    }

    /// The largest frame this side accepts (so, the largest response). Default 4 MiB; at least 16 KiB.
    ///
    /// ```
    /// let ep = rpc_core::Endpoint::memory("svc").max_frame_size(16 << 20);
    /// ```
    #[must_use]
    pub fn max_frame_size(mut self, bytes: u32) -> Endpoint {
        self.config.max_frame_size = bytes.max(Settings::MIN_FRAME_SIZE);
        self
    }

    /// The largest response metadata block this side accepts. Default 16 KiB.
    ///
    /// ```
    /// let ep = rpc_core::Endpoint::memory("svc").max_metadata_size(64 * 1024);
    /// ```
    #[must_use]
    pub fn max_metadata_size(mut self, bytes: u32) -> Endpoint {
        self.config.max_metadata_size = bytes;
        self
    }

    /// Reconnect backoff: the first wait and the cap. Waits double per failed attempt, each cut
    /// by up to 20% at random ([`Backoff`](crate::backoff::Backoff) with `jitter(0.2)`).
    /// Defaults 100 ms and 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let ep = rpc_core::Endpoint::memory("svc")
    ///     .backoff(Duration::from_millis(50), Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Endpoint {
        self.config.backoff = Backoff::new(initial, max).jitter(RECONNECT_JITTER);
        self
    }

    /// The codec typed calls use when they do not name one and both message types support it.
    /// Default Protobuf.
    ///
    /// ```
    /// let ep = rpc_core::Endpoint::memory("svc").codec(rpc_core::CodecId::JSON);
    /// ```
    #[must_use]
    pub fn codec(mut self, codec: CodecId) -> Endpoint {
        self.config.codec = codec;
        self
    }

    /// Compresses request bodies of at least `threshold` bytes, when the server announced that it
    /// reads this compression. Off by default: on a fast network it costs more CPU than it saves
    /// (see the codec benchmarks).
    ///
    /// ```
    /// use rpc_core::codec::Compression;
    /// let ep = rpc_core::Endpoint::memory("svc").compression(Compression::Lz4, 4096);
    /// ```
    #[must_use]
    pub fn compression(mut self, compression: Compression, threshold: usize) -> Endpoint {
        self.config.compression = Some(compression);
        self.config.compression_threshold = threshold;
        self
    }

    /// Probes a quiet connection: after `interval` with nothing received it sends a PING, and if
    /// nothing comes back within `timeout` the connection is declared dead, failing its calls with
    /// `Unavailable`. This catches peers that vanish without closing the connection (a partition,
    /// a powered-off host). Off by default.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let ep = rpc_core::Endpoint::memory("svc")
    ///     .keepalive(Duration::from_secs(10), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Endpoint {
        self.config.keepalive = Some((interval, timeout));
        self
    }

    /// The keepalive interval and timeout, if [`Endpoint::keepalive`] set them (off by default).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let ep = rpc_core::Endpoint::memory("svc");
    /// assert_eq!(ep.keepalive_settings(), None);
    /// let (interval, timeout) = (Duration::from_secs(10), Duration::from_secs(5));
    /// let ep = ep.keepalive(interval, timeout);
    /// assert_eq!(ep.keepalive_settings(), Some((interval, timeout)));
    /// ```
    pub fn keepalive_settings(&self) -> Option<(Duration, Duration)> {
        self.config.keepalive
    }

    /// Bytes of requests one connection may hold queued but not yet written to the transport.
    /// When a peer reads slower than callers send (or stops reading), a call that finds the
    /// connection at this limit waits until the transport has taken enough: in
    /// `Channel::poll_ready`, else in the call's future (its deadline still applies). A request is
    /// admitted whenever the connection is below the limit, so one connection holds at most this
    /// plus one request (and small control frames). Default 4 MiB; at least 1.
    ///
    /// ```
    /// let ep = rpc_core::Endpoint::memory("svc").max_unwritten_bytes(256 * 1024);
    /// ```
    #[must_use]
    pub fn max_unwritten_bytes(mut self, bytes: usize) -> Endpoint {
        self.config.max_unwritten_bytes = bytes.max(1);
        self
    }

    /// Whether a call waits for room when its connection holds [`Endpoint::max_unwritten_bytes`]
    /// not yet written. Default `true`. With `false`, `Channel::poll_ready` does not wait for room
    /// and such a call fails at once with `ResourceExhausted` and [`Delivery::NotSent`]
    /// (nothing was sent; try later or elsewhere).
    ///
    /// [`Delivery::NotSent`]: crate::Delivery::NotSent
    ///
    /// ```
    /// let ep = rpc_core::Endpoint::memory("svc")
    ///     .max_unwritten_bytes(1 << 20)
    ///     .wait_for_write_capacity(false);
    /// ```
    #[must_use]
    pub fn wait_for_write_capacity(mut self, wait: bool) -> Endpoint {
        self.config.wait_for_write_capacity = wait;
        self
    }

    /// The address this endpoint reaches, for logs.
    pub fn target(&self) -> String {
        self.connector.target()
    }

    /// A channel that connects on its first call. Must be used inside a tokio runtime.
    pub fn connect_lazy(&self) -> Channel {
        Channel::new(self.clone())
    }

    /// A channel that has connected once already.
    ///
    /// # Errors
    /// `Unavailable` if the first connection attempt fails.
    pub async fn connect(&self) -> Result<Channel, Status> {
        let channel = self.connect_lazy();
        channel.ready().await?;
        Ok(channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris() {
        assert_eq!(
            Endpoint::from_uri("127.0.0.1:80").unwrap().target(),
            "127.0.0.1:80"
        );
        assert_eq!(
            Endpoint::from_uri("tcp://localhost:80").unwrap().target(),
            "localhost:80"
        );
        assert_eq!(
            Endpoint::from_uri("memory://a").unwrap().target(),
            "memory:a"
        );
        assert_eq!(
            Endpoint::from_uri("unix:///tmp/x.sock").unwrap().target(),
            "unix:/tmp/x.sock"
        );
        for bad in [
            "",
            "memory://",
            "http://x:1",
            "host",
            "host:notaport",
            ":80",
        ] {
            assert!(Endpoint::from_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_cap() {
        let cfg = Endpoint::memory("x")
            .backoff(Duration::from_millis(100), Duration::from_secs(1))
            .config;
        for failures in 0..40 {
            let b = cfg.backoff(failures);
            let base = (100u64 << failures.min(16)).min(1000) as f64;
            let ms = b.as_secs_f64() * 1000.0;
            assert!(
                ms >= base * 0.8 - 1e-6 && ms <= base * 1.2 + 1e-6,
                "{failures}: {ms}"
            );
        }
    }
}
