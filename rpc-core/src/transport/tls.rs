//! TLS and mutual TLS over any stream transport (feature `tls`): rustls 0.23 with the `ring`
//! provider, named explicitly (never a process-wide default).
//!
//! A [`TlsAcceptor`] turns any [`Listener`] into a [`TlsListener`]: handshakes run concurrently
//! (on tasks of their own, bounded, with a timeout) and a failed one is logged and dropped
//! without disturbing the others. A [`TlsConnector`] wraps any [`Connector`]. Both offer the
//! ALPN id [`ALPN`]. Peers are reported as [`PeerAddr::Tls`], with the [`PeerIdentity`] their
//! verified certificate proves; a server reads its client's from
//! [`Context::peer_identity`](crate::Context::peer_identity).
//!
//! Certificates and keys are PEM, in memory or in files. Files are read again by
//! [`TlsAcceptor::reload`] / [`TlsConnector::reload`], or by a watch task
//! ([`TlsAcceptor::watch`]) when their contents change: connections opened after that use the new
//! ones, open ones go on with what they have.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rpc_core::server::RawService;
//! use rpc_core::transport::tls::{ClientTlsConfig, ServerTlsConfig, TlsAcceptor, TlsConnector};
//! use rpc_core::transport::tcp::TcpConnector;
//! use rpc_core::{Endpoint, Request, Response, Server};
//!
//! // A self-signed certificate for "localhost" (in production: your CA's).
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
//!
//! let acceptor = TlsAcceptor::new(ServerTlsConfig::from_pem(cert_pem.clone(), key_pem))?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = tcp.local_addr()?;
//! let svc = RawService::new("demo.Echo")
//!     .method("Echo", |req: Request| async move { Ok(Response::new(req.into_body())) });
//! tokio::spawn(Server::builder().add_service(svc).serve(acceptor.listener(tcp)));
//!
//! let tls = ClientTlsConfig::new().ca_pem(cert_pem);
//! let connector = TlsConnector::new(TcpConnector::new(addr), "localhost", tls)?;
//! let channel = Endpoint::new(connector).connect_lazy();
//! let reply = channel.unary(Request::new("demo.Echo/Echo", "over TLS")).await?;
//! assert_eq!(&reply.body()[..], b"over TLS");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::task::{JoinHandle, JoinSet};

use super::identity::PeerIdentity;
use super::{BoxIo, Connector, Listener, PeerAddr};
use crate::BoxFuture;

/// The ALPN protocol id both sides offer: this protocol, major version 1
/// (`docs/protocol.md`).
pub const ALPN: &[u8] = b"rpc/1";

/// How long a server-side TLS handshake may take, by default.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side handshakes in progress at once, by default; more connections wait in the backlog.
const MAX_HANDSHAKES: usize = 1024;

/// What can go wrong setting TLS up (handshake failures are `io::Error`s of the connection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// PEM data that does not parse, or holds no item of the kind needed.
    #[error("{what}: {source}")]
    Pem {
        /// Which PEM (a path, or what the bytes were for).
        what: String,
        /// The parser's error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the configuration (a key that does not match, a bad CA certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (no CA certificates, say).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A server name that is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// An allow-list of clients without a client CA to verify their certificates against: it
    /// would admit every client, so it is refused rather than ignored.
    #[error("an allow-list of clients needs a client CA (client_ca_pem or client_ca_pem_file)")]
    AllowListWithoutClientCa,
}

/// The crypto provider: `ring`, named here so that no process-wide default is ever needed, with
/// TLS 1.3's AES-128-GCM preferred (RFC 8446 §9.1 makes it the suite every implementation has;
/// it is as safe for this use and cheaper per byte than AES-256-GCM, which stays on offer).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: the rest keep ring's order.
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// PEM from memory or from a file (read again on every build, so a reload sees new contents).
#[derive(Clone)]
enum Pem {
    Bytes(Arc<[u8]>, &'static str),
    File(PathBuf),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::Bytes(_, what) => write!(f, "Pem({what}, in memory)"),
            Pem::File(p) => write!(f, "Pem({})", p.display()),
        }
    }
}

impl Pem {
    fn what(&self) -> String {
        match self {
            Pem::Bytes(_, what) => (*what).to_owned(),
            Pem::File(p) => p.display().to_string(),
        }
    }

    fn read(&self) -> Result<Arc<[u8]>, TlsError> {
        match self {
            Pem::Bytes(b, _) => Ok(b.clone()),
            Pem::File(path) => {
                std::fs::read(path)
                    .map(Arc::from)
                    .map_err(|source| TlsError::Read {
                        path: path.clone(),
                        source,
                    })
            }
        }
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let bytes = self.read()?;
        let pem_err = |source| TlsError::Pem {
            what: self.what(),
            source,
        };
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err)?;
        if certs.is_empty() {
            return Err(pem_err(rustls::pki_types::pem::Error::NoItemsFound));
        }
        Ok(certs)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        let bytes = self.read()?;
        PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| TlsError::Pem {
            what: self.what(),
            source,
        })
    }

    fn file(&self) -> Option<&PathBuf> {
        match self {
            Pem::File(p) => Some(p),
            Pem::Bytes(..) => None,
        }
    }
}

fn roots(pems: &[Pem], webpki: bool) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    if webpki {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for pem in pems {
        for cert in pem.certs()? {
            roots.add(cert)?;
        }
    }
    Ok(roots)
}

fn identity_of(certs: Option<&[CertificateDer<'_>]>) -> Option<Arc<PeerIdentity>> {
    certs
        .and_then(|c| c.first())
        .and_then(|c| PeerIdentity::from_der(c))
        .map(Arc::new)
}

/// A server's TLS settings: its certificate chain and key, and, for mutual TLS, the CA its
/// clients' certificates must chain to.
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    chain: Pem,
    key: Pem,
    client_ca: Vec<Pem>,
    client_auth_optional: bool,
    allowed_clients: Option<Arc<[String]>>,
}

impl ServerTlsConfig {
    /// From PEM in memory: the certificate chain (leaf first) and its private key (PKCS#8,
    /// PKCS#1 or SEC1).
    pub fn from_pem(chain: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> ServerTlsConfig {
        ServerTlsConfig::new(
            Pem::Bytes(Arc::from(chain.into()), "server certificate PEM"),
            Pem::Bytes(Arc::from(key.into()), "server key PEM"),
        )
    }

    /// From PEM files, read again on every reload.
    pub fn from_pem_files(chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerTlsConfig {
        ServerTlsConfig::new(Pem::File(chain.into()), Pem::File(key.into()))
    }

    fn new(chain: Pem, key: Pem) -> ServerTlsConfig {
        ServerTlsConfig {
            chain,
            key,
            client_ca: Vec::new(),
            client_auth_optional: false,
            allowed_clients: None,
        }
    }

    /// Mutual TLS: clients must present a certificate that chains to a CA in this PEM.
    #[must_use]
    pub fn client_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ServerTlsConfig {
        self.client_ca
            .push(Pem::Bytes(Arc::from(pem.into()), "client CA PEM"));
        self
    }

    /// Mutual TLS with the client CA from a PEM file (read again on every reload).
    #[must_use]
    pub fn client_ca_pem_file(mut self, path: impl Into<PathBuf>) -> ServerTlsConfig {
        self.client_ca.push(Pem::File(path.into()));
        self
    }

    /// With a client CA: accept clients without a certificate too (their calls see no
    /// [`PeerIdentity`]); a certificate that is presented must still verify.
    #[must_use]
    pub fn client_auth_optional(mut self) -> ServerTlsConfig {
        self.client_auth_optional = true;
        self
    }

    /// With a client CA (without one, [`build`](ServerTlsConfig::build) fails with
    /// [`TlsError::AllowListWithoutClientCa`]): accept only clients whose certificate has one of `names` (a DNS name,
    /// a URI SAN such as a SPIFFE id, or the common name of a certificate without SANs),
    /// refusing the others in the handshake. An allow-list makes client certificates mandatory,
    /// even with [`client_auth_optional`](ServerTlsConfig::client_auth_optional): a client
    /// without one could not be on the list.
    #[must_use]
    pub fn allow_clients<I, S>(mut self, names: I) -> ServerTlsConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_clients = Some(names.into_iter().map(Into::into).collect());
        self
    }

    fn files(&self) -> Vec<PathBuf> {
        std::iter::once(&self.chain)
            .chain([&self.key])
            .chain(&self.client_ca)
            .filter_map(Pem::file)
            .cloned()
            .collect()
    }

    /// Reads the PEM and builds the rustls configuration (with [`ALPN`]).
    ///
    /// # Errors
    /// A file that cannot be read, PEM that does not parse, a key that does not match the
    /// certificate, no usable client CA, or an allow-list without a client CA.
    pub fn build(&self) -> Result<Arc<ServerConfig>, TlsError> {
        if self.allowed_clients.is_some() && self.client_ca.is_empty() {
            return Err(TlsError::AllowListWithoutClientCa);
        }
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = if self.client_ca.is_empty() {
            builder.with_no_client_auth()
        } else {
            let roots = Arc::new(roots(&self.client_ca, false)?);
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if self.client_auth_optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build()?;
            match &self.allowed_clients {
                None => builder.with_client_cert_verifier(verifier),
                Some(allowed) => builder.with_client_cert_verifier(Arc::new(AllowList {
                    inner: verifier,
                    allowed: allowed.clone(),
                })),
            }
        };
        let mut config = builder.with_single_cert(self.chain.certs()?, self.key.key()?)?;
        // Ours first; HTTP's for the HTTP/JSON clients a server with `Server::http` serves on
        // the same port (h2 or HTTP/1.1 inside TLS; docs/protocol.md §18.1). A client that
        // offers only ours gets ours.
        config.alpn_protocols = vec![ALPN.to_vec(), b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A client verifier that, after the CA's verdict, also requires one of the allowed names.
#[derive(Debug)]
struct AllowList {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Arc<[String]>,
}

impl ClientCertVerifier for AllowList {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        // Only a certificate can be on the list.
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let allowed = PeerIdentity::from_der(end_entity)
            .is_some_and(|id| self.allowed.iter().any(|name| id.has_name(name)));
        if allowed {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The shortest period [`watch_files`] polls at.
const MIN_WATCH_PERIOD: Duration = Duration::from_millis(100);

/// A digest of what `files` hold (`None` for one that cannot be read): enough to notice a
/// change without keeping private keys in memory.
fn digest(files: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        std::fs::read(f).ok().hash(&mut h);
    }
    h.finish()
}

/// Watches `files` every `every` (at least 100 ms) and calls `reload` when any one's contents
/// changed. A reload that fails is logged once and the old configuration stays; the watch
/// tries again when the files change again.
fn watch_files(
    files: Vec<PathBuf>,
    every: Duration,
    reload: impl Fn() -> Result<(), TlsError> + Send + 'static,
) -> JoinHandle<()> {
    let every = every.max(MIN_WATCH_PERIOD);
    let files: Arc<[PathBuf]> = files.into();
    // What the files hold now, when the watch is asked for (not when its task first runs).
    let mut loaded = digest(&files);
    let mut refused = None;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let read = files.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || digest(&read)).await else {
                continue;
            };
            if now == loaded || Some(now) == refused {
                continue;
            }
            match reload() {
                Ok(()) => {
                    tracing::info!(?files, "TLS certificates reloaded");
                    loaded = now;
                    refused = None;
                }
                Err(e) => {
                    tracing::warn!(
                        ?files,
                        error = %e,
                        "TLS certificates changed but do not load; keeping the previous ones"
                    );
                    refused = Some(now);
                }
            }
        }
    })
}

/// The server side: a [`ServerTlsConfig`], built, and rebuilt on [`reload`](TlsAcceptor::reload).
/// Clones share the configuration.
#[derive(Clone)]
pub struct TlsAcceptor {
    source: Arc<ServerTlsConfig>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Builds `config`.
    ///
    /// # Errors
    /// As [`ServerTlsConfig::build`].
    pub fn new(config: ServerTlsConfig) -> Result<TlsAcceptor, TlsError> {
        let built = config.build()?;
        Ok(TlsAcceptor {
            source: Arc::new(config),
            current: Arc::new(RwLock::new(built)),
        })
    }

    fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the PEM files again; connections accepted from now on use what they hold. On an
    /// error the previous configuration stays.
    ///
    /// # Errors
    /// As [`ServerTlsConfig::build`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let built = self.source.build()?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = built;
        Ok(())
    }

    /// Spawns a task that checks the PEM files every `every` and reloads when their contents
    /// change (abort the handle to stop it). Needs a tokio runtime.
    pub fn watch(&self, every: Duration) -> JoinHandle<()> {
        let this = self.clone();
        watch_files(self.source.files(), every, move || this.reload())
    }

    /// Serves TLS on `inner`'s connections.
    pub fn listener<L: Listener>(&self, inner: L) -> TlsListener<L> {
        TlsListener {
            inner,
            acceptor: self.clone(),
            handshakes: JoinSet::new(),
            timeout: HANDSHAKE_TIMEOUT,
            max_handshakes: MAX_HANDSHAKES,
        }
    }
}

type Handshake = (PeerAddr, io::Result<tokio_rustls::server::TlsStream<BoxIo>>);

/// A [`Listener`] whose connections speak TLS: each accepted stream's handshake runs on a task
/// of its own, and only streams whose handshake succeeded are handed to the server.
pub struct TlsListener<L> {
    inner: L,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Handshake>,
    timeout: Duration,
    max_handshakes: usize,
}

impl<L> fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("handshaking", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

impl<L> TlsListener<L> {
    /// How long a handshake may take before the connection is dropped. Default 5 s.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> TlsListener<L> {
        self.timeout = timeout;
        self
    }

    /// Handshakes in progress at once; beyond it, new connections wait in the listener's
    /// backlog. Default 1024.
    #[must_use]
    pub fn max_handshakes(mut self, n: usize) -> TlsListener<L> {
        self.max_handshakes = n.max(1);
        self
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(BoxIo, PeerAddr)>> {
        loop {
            while self.handshakes.len() < self.max_handshakes {
                match self.inner.poll_accept(cx) {
                    Poll::Ready(Ok((io, peer))) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(self.acceptor.config());
                        let timeout = self.timeout;
                        self.handshakes.spawn(async move {
                            let res = match tokio::time::timeout(timeout, acceptor.accept(io)).await
                            {
                                Ok(res) => res,
                                Err(_) => Err(io::Error::new(
                                    io::ErrorKind::TimedOut,
                                    format!("no TLS handshake within {timeout:?}"),
                                )),
                            };
                            (peer, res)
                        });
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            match self.handshakes.poll_join_next(cx) {
                Poll::Ready(Some(Ok((peer, Ok(stream))))) => {
                    let identity = identity_of(stream.get_ref().1.peer_certificates());
                    let peer = PeerAddr::Tls(Box::new(peer), identity);
                    return Poll::Ready(Ok((Box::new(stream) as BoxIo, peer)));
                }
                Poll::Ready(Some(Ok((peer, Err(e))))) => {
                    tracing::warn!(%peer, error = %e, "TLS handshake failed");
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "a TLS handshake task ended abnormally");
                }
                // No handshake in progress and none accepted: wait for the inner listener.
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        Ok(PeerAddr::Tls(Box::new(self.inner.local_addr()?), None))
    }
}

/// A client's TLS settings: the CAs it trusts for servers, and its own certificate for mutual
/// TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsConfig {
    ca: Vec<Pem>,
    webpki_roots: bool,
    identity: Option<(Pem, Pem)>,
}

impl ClientTlsConfig {
    /// Trusting no CA yet: add [`ca_pem`](ClientTlsConfig::ca_pem) (a private CA) or
    /// [`with_webpki_roots`](ClientTlsConfig::with_webpki_roots) (public ones).
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig::default()
    }

    /// Trusts the public CAs of Mozilla's root program, compiled in (`webpki-roots`): the same
    /// set on every machine and in minimal containers, with no file or OS store to read; it
    /// changes only with the crate's version.
    #[must_use]
    pub fn with_webpki_roots(mut self) -> ClientTlsConfig {
        self.webpki_roots = true;
        self
    }

    /// Trusts the CA certificates in this PEM.
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientTlsConfig {
        self.ca.push(Pem::Bytes(Arc::from(pem.into()), "CA PEM"));
        self
    }

    /// Trusts the CA certificates in a PEM file (read again on every reload).
    #[must_use]
    pub fn ca_pem_file(mut self, path: impl Into<PathBuf>) -> ClientTlsConfig {
        self.ca.push(Pem::File(path.into()));
        self
    }

    /// Presents this certificate chain and key to servers that ask (mutual TLS).
    #[must_use]
    pub fn identity_pem(
        mut self,
        chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> ClientTlsConfig {
        self.identity = Some((
            Pem::Bytes(Arc::from(chain.into()), "client certificate PEM"),
            Pem::Bytes(Arc::from(key.into()), "client key PEM"),
        ));
        self
    }

    /// Presents the certificate chain and key in these PEM files (read again on every reload).
    #[must_use]
    pub fn identity_pem_files(
        mut self,
        chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> ClientTlsConfig {
        self.identity = Some((Pem::File(chain.into()), Pem::File(key.into())));
        self
    }

    fn files(&self) -> Vec<PathBuf> {
        self.ca
            .iter()
            .chain(self.identity.iter().flat_map(|(c, k)| [c, k]))
            .filter_map(Pem::file)
            .cloned()
            .collect()
    }

    /// Reads the PEM and builds the rustls configuration (with [`ALPN`]).
    ///
    /// # Errors
    /// A file that cannot be read, PEM that does not parse, or a key that does not match.
    pub fn build(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots(&self.ca, self.webpki_roots)?);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder.with_client_auth_cert(chain.certs()?, key.key()?)?,
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Opens TLS connections over another [`Connector`], verifying the server's certificate for
/// `server_name`. Clones share the configuration.
#[derive(Clone)]
pub struct TlsConnector {
    inner: Arc<dyn Connector>,
    server_name: ServerName<'static>,
    source: Arc<ClientTlsConfig>,
    current: Arc<RwLock<Arc<ClientConfig>>>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("inner", &self.inner)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// TLS over `inner`, expecting a certificate valid for `server_name` (a DNS name or an IP
    /// address: the "server name override" when it differs from the address dialled).
    ///
    /// # Errors
    /// A server name that is neither, or as [`ClientTlsConfig::build`].
    pub fn new(
        inner: impl Connector,
        server_name: &str,
        config: ClientTlsConfig,
    ) -> Result<TlsConnector, TlsError> {
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsError::ServerName(server_name.to_owned()))?;
        let built = config.build()?;
        Ok(TlsConnector {
            inner: Arc::new(inner),
            server_name,
            source: Arc::new(config),
            current: Arc::new(RwLock::new(built)),
        })
    }

    /// Reads the PEM files again; connections opened from now on use what they hold. On an error
    /// the previous configuration stays.
    ///
    /// # Errors
    /// As [`ClientTlsConfig::build`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let built = self.source.build()?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = built;
        Ok(())
    }

    /// Spawns a task that checks the PEM files every `every` and reloads when their contents
    /// change (abort the handle to stop it). Needs a tokio runtime.
    pub fn watch(&self, every: Duration) -> JoinHandle<()> {
        let this = self.clone();
        watch_files(self.source.files(), every, move || this.reload())
    }
}

impl Connector for TlsConnector {
    fn connect(&self) -> BoxFuture<'static, io::Result<(BoxIo, PeerAddr)>> {
        let inner = self.inner.connect();
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let name = self.server_name.clone();
        Box::pin(async move {
            let (io, peer) = inner.await?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, io)
                .await?;
            let identity = identity_of(stream.get_ref().1.peer_certificates());
            Ok((
                Box::new(stream) as BoxIo,
                PeerAddr::Tls(Box::new(peer), identity),
            ))
        })
    }

    fn target(&self) -> String {
        format!("tls://{}", self.inner.target())
    }
}
