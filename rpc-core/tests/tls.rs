//! TLS and mutual TLS (feature `tls`), with certificates made at test time by rcgen: the happy
//! paths, the identity a server sees, the allow-list, reloading, and every kind of bad
//! certificate or mismatched peer, each refused with a clear error while the server keeps
//! serving others.

#![cfg(feature = "tls")]
#![allow(missing_docs)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rpc_core::server::RawService;
use rpc_core::transport::tcp::TcpConnector;
use rpc_core::transport::tls::{
    ClientTlsConfig, ServerTlsConfig, TlsAcceptor, TlsConnector, TlsError,
};
use rpc_core::transport::{Connector, PeerAddr};
use rpc_core::{Channel, Code, Context, Endpoint, Request, Response, Server, Status};
use support::logs::capture_logs;
use support::{serve, Running};

/// A certificate authority made for one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

#[derive(Clone, Copy)]
enum Validity {
    Now,
    Expired,
    NotYet,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, dns: &[&str], uri: Option<&str>, cn: &str, validity: Validity) -> Leaf {
        let mut p = CertificateParams::new(dns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .unwrap();
        if let Some(u) = uri {
            p.subject_alt_names
                .push(SanType::URI(u.try_into().unwrap()));
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        match validity {
            Validity::Now => {}
            Validity::Expired => {
                p.not_before = date_time_ymd(2000, 1, 1);
                p.not_after = date_time_ymd(2001, 1, 1);
            }
            Validity::NotYet => {
                p.not_before = date_time_ymd(3000, 1, 1);
                p.not_after = date_time_ymd(3001, 1, 1);
            }
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Leaf {
        self.leaf(&["localhost"], None, "server", Validity::Now)
    }
}

/// `demo.Echo/Echo`, and `demo.Echo/Who`: the names of the client's certificate, or "-".
fn service() -> RawService {
    RawService::new("demo.Echo")
        .method("Echo", |req: Request| async move {
            Ok(Response::new(req.into_body()))
        })
        .method("Who", |_req: Request| async move {
            let who = Context::current()
                .and_then(|c| {
                    c.peer_identity()
                        .map(|id| id.names().collect::<Vec<_>>().join(","))
                })
                .unwrap_or_else(|| "-".to_owned());
            Ok::<_, Status>(Response::new(who))
        })
}

async fn start(config: ServerTlsConfig) -> (Running, SocketAddr, TlsAcceptor) {
    let acceptor = TlsAcceptor::new(config).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let running = serve(
        Server::builder().add_service(service()),
        acceptor.listener(tcp),
    );
    (running, addr, acceptor)
}

fn channel(addr: SocketAddr, name: &str, config: ClientTlsConfig) -> Channel {
    let connector = TlsConnector::new(TcpConnector::new(addr), name, config).unwrap();
    Endpoint::new(connector)
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

async fn echo(ch: &Channel) -> Result<String, Status> {
    let r = ch.unary(Request::new("demo.Echo/Echo", "hello")).await?;
    Ok(String::from_utf8_lossy(r.body()).into_owned())
}

async fn who(ch: &Channel) -> Result<String, Status> {
    let r = ch.unary(Request::new("demo.Echo/Who", "")).await?;
    Ok(String::from_utf8_lossy(r.body()).into_owned())
}

/// The call fails, unavailable, with a message that contains `needle`.
async fn refused(ch: &Channel, needle: &str) {
    let e = echo(ch).await.expect_err("the call should fail");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert!(
        e.message().to_lowercase().contains(&needle.to_lowercase()),
        "expected {needle:?} in: {e}"
    );
}

#[tokio::test]
async fn tls_carries_calls_and_the_client_sees_the_server_identity() {
    let ca = Ca::new("test CA");
    let s = ca.leaf(
        &["localhost"],
        Some("spiffe://shop.test/echo"),
        "echo",
        Validity::Now,
    );
    let (running, addr, _) = start(ServerTlsConfig::from_pem(s.cert, s.key)).await;
    let config = ClientTlsConfig::new().ca_pem(ca.pem());
    let ch = channel(addr, "localhost", config.clone());
    assert_eq!(echo(&ch).await.unwrap(), "hello");
    // Without mutual TLS the server sees no client identity.
    assert_eq!(who(&ch).await.unwrap(), "-");

    let connector = TlsConnector::new(TcpConnector::new(addr), "localhost", config).unwrap();
    assert_eq!(connector.target(), format!("tls://{addr}"));
    let (_io, peer) = connector.connect().await.unwrap();
    let id = peer.identity().expect("the server's identity");
    assert_eq!(id.dns_names, ["localhost"]);
    assert_eq!(id.spiffe_id(), Some("spiffe://shop.test/echo"));
    assert_eq!(id.common_name.as_deref(), Some("echo"));
    assert!(matches!(peer, PeerAddr::Tls(ref inner, _) if **inner == PeerAddr::Tcp(addr)));
    running.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_gives_the_server_the_client_identity() {
    let ca = Ca::new("test CA");
    let s = ca.server();
    let config = ServerTlsConfig::from_pem(s.cert, s.key).client_ca_pem(ca.pem());
    let (running, addr, _) = start(config).await;
    let c = ca.leaf(
        &[],
        Some("spiffe://shop.test/orders"),
        "orders",
        Validity::Now,
    );
    let client = ClientTlsConfig::new()
        .ca_pem(ca.pem())
        .identity_pem(c.cert, c.key);
    let ch = channel(addr, "localhost", client);
    assert_eq!(who(&ch).await.unwrap(), "spiffe://shop.test/orders,orders");

    // A client without a certificate is refused in the handshake; others go on.
    let (logs, _guard) = capture_logs(tracing::Level::WARN);
    let anonymous = channel(addr, "localhost", ClientTlsConfig::new().ca_pem(ca.pem()));
    let e = echo(&anonymous).await.expect_err("no client certificate");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert_eq!(who(&ch).await.unwrap(), "spiffe://shop.test/orders,orders");
    support::poll::eventually(Duration::from_secs(5), "the handshake failure log", || {
        let logs = logs.clone();
        async move { logs.count("TLS handshake failed") >= 1 }
    })
    .await;
    running.shutdown().await;
}

#[tokio::test]
async fn optional_client_auth_accepts_both_and_tells_them_apart() {
    let ca = Ca::new("test CA");
    let s = ca.server();
    let config = ServerTlsConfig::from_pem(s.cert, s.key)
        .client_ca_pem(ca.pem())
        .client_auth_optional();
    let (running, addr, _) = start(config).await;
    let anonymous = channel(addr, "localhost", ClientTlsConfig::new().ca_pem(ca.pem()));
    assert_eq!(who(&anonymous).await.unwrap(), "-");
    let c = ca.leaf(&["payments.shop.test"], None, "payments", Validity::Now);
    let known = channel(
        addr,
        "localhost",
        ClientTlsConfig::new()
            .ca_pem(ca.pem())
            .identity_pem(c.cert, c.key),
    );
    assert_eq!(who(&known).await.unwrap(), "payments.shop.test,payments");
    running.shutdown().await;
}

#[tokio::test]
async fn the_allow_list_refuses_other_clients_of_the_same_ca() {
    let ca = Ca::new("test CA");
    let s = ca.server();
    let config = ServerTlsConfig::from_pem(s.cert, s.key)
        .client_ca_pem(ca.pem())
        .allow_clients(["spiffe://shop.test/orders"]);
    let (running, addr, _) = start(config).await;
    let allowed = ca.leaf(
        &[],
        Some("spiffe://shop.test/orders"),
        "orders",
        Validity::Now,
    );
    let other = ca.leaf(
        &[],
        Some("spiffe://shop.test/users"),
        "users",
        Validity::Now,
    );
    let client = |l: Leaf| {
        ClientTlsConfig::new()
            .ca_pem(ca.pem())
            .identity_pem(l.cert, l.key)
    };
    let ok = channel(addr, "localhost", client(allowed));
    let no = channel(addr, "localhost", client(other));
    assert_eq!(echo(&ok).await.unwrap(), "hello");
    let e = echo(&no).await.expect_err("not on the allow-list");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert_eq!(echo(&ok).await.unwrap(), "hello");
    running.shutdown().await;

    // With an allow-list, optional client authentication still wants a certificate: a client
    // without one cannot be on the list.
    let s = ca.server();
    let config = ServerTlsConfig::from_pem(s.cert, s.key)
        .client_ca_pem(ca.pem())
        .client_auth_optional()
        .allow_clients(["spiffe://shop.test/orders"]);
    let (running, addr, _) = start(config).await;
    let anonymous = channel(addr, "localhost", ClientTlsConfig::new().ca_pem(ca.pem()));
    let e = echo(&anonymous)
        .await
        .expect_err("no certificate, so not on the list");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    // A certificate whose common name is on the list but whose SANs are not: the CN of a
    // certificate with SANs is not one of its names (RFC 6125 §6.4.4).
    let cn_only = ca.leaf(
        &[],
        Some("spiffe://shop.test/intruder"),
        "spiffe://shop.test/orders",
        Validity::Now,
    );
    let e = echo(&channel(addr, "localhost", client(cn_only)))
        .await
        .expect_err("the CN does not count beside SANs");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    // An allow-list without a client CA would admit everyone: it is an error, not ignored.
    let s = ca.server();
    let e = TlsAcceptor::new(ServerTlsConfig::from_pem(s.cert, s.key).allow_clients(["x"]))
        .expect_err("an allow-list needs a client CA");
    assert!(matches!(e, TlsError::AllowListWithoutClientCa), "{e}");
    // Nor beside SANs the identity does not read (here only an IP address).
    let ip_only = ca.leaf(
        &["127.0.0.1"],
        None,
        "spiffe://shop.test/orders",
        Validity::Now,
    );
    let e = echo(&channel(addr, "localhost", client(ip_only)))
        .await
        .expect_err("the CN does not count beside an IP address SAN");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    running.shutdown().await;
}

#[tokio::test]
async fn bad_certificates_and_wrong_peers_are_refused_and_others_go_on() {
    let ca = Ca::new("test CA");
    let other_ca = Ca::new("another CA");
    let s = ca.server();
    let (running, addr, _) =
        start(ServerTlsConfig::from_pem(s.cert, s.key).client_ca_pem(ca.pem())).await;
    let me = ca.leaf(&["client.shop.test"], None, "client", Validity::Now);
    let good = || {
        ClientTlsConfig::new()
            .ca_pem(ca.pem())
            .identity_pem(me.cert.clone(), me.key.clone())
    };
    let ok = channel(addr, "localhost", good());
    assert_eq!(echo(&ok).await.unwrap(), "hello");

    // The client trusts another CA: the server's certificate is not accepted.
    let wrong_ca = ClientTlsConfig::new()
        .ca_pem(other_ca.pem())
        .identity_pem(me.cert.clone(), me.key.clone());
    refused(&channel(addr, "localhost", wrong_ca), "UnknownIssuer").await;
    // The certificate is for "localhost", the client expects another name.
    refused(
        &channel(addr, "orders.shop.test", good()),
        "certificate not valid for name",
    )
    .await;
    // A client certificate from another CA.
    let stranger = other_ca.leaf(&["client.shop.test"], None, "client", Validity::Now);
    let from_other_ca = ClientTlsConfig::new()
        .ca_pem(ca.pem())
        .identity_pem(stranger.cert, stranger.key);
    let e = echo(&channel(addr, "localhost", from_other_ca))
        .await
        .expect_err("a client certificate from another CA");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    // An expired and a not-yet-valid client certificate.
    for validity in [Validity::Expired, Validity::NotYet] {
        let l = ca.leaf(&["client.shop.test"], None, "client", validity);
        let config = ClientTlsConfig::new()
            .ca_pem(ca.pem())
            .identity_pem(l.cert, l.key);
        let e = echo(&channel(addr, "localhost", config))
            .await
            .expect_err("an invalid client certificate");
        assert_eq!(e.code(), Code::Unavailable, "{e}");
    }
    // A plaintext client on the TLS port.
    let plain = Endpoint::new(TcpConnector::new(addr))
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    let e = echo(&plain).await.expect_err("plaintext on a TLS port");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    assert!(e.message().contains("speaks TLS"), "{e}");

    assert_eq!(echo(&ok).await.unwrap(), "hello");
    running.shutdown().await;
}

#[tokio::test]
async fn an_expired_or_not_yet_valid_server_certificate_is_refused() {
    let ca = Ca::new("test CA");
    for (validity, needle) in [
        (Validity::Expired, "certificate expired"),
        (Validity::NotYet, "certificate not valid yet"),
    ] {
        let s = ca.leaf(&["localhost"], None, "server", validity);
        let (running, addr, _) = start(ServerTlsConfig::from_pem(s.cert, s.key)).await;
        refused(
            &channel(addr, "localhost", ClientTlsConfig::new().ca_pem(ca.pem())),
            needle,
        )
        .await;
        running.shutdown().await;
    }
}

#[tokio::test]
async fn a_tls_client_on_a_plaintext_port_fails_and_the_server_serves_on() {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let running = serve(Server::builder().add_service(service()), tcp);
    let ca = Ca::new("test CA");
    let (logs, _guard) = capture_logs(tracing::Level::DEBUG);
    let tls = channel(addr, "localhost", ClientTlsConfig::new().ca_pem(ca.pem()));
    let e = echo(&tls).await.expect_err("TLS on a plaintext port");
    assert_eq!(e.code(), Code::Unavailable, "{e}");
    support::poll::eventually(Duration::from_secs(5), "the server's log of it", || {
        let logs = logs.clone();
        async move { logs.count("a TLS client on a plaintext port") >= 1 }
    })
    .await;
    let plain = Endpoint::new(TcpConnector::new(addr)).connect_lazy();
    assert_eq!(echo(&plain).await.unwrap(), "hello");
    running.shutdown().await;
}

#[tokio::test]
async fn reloading_swaps_the_certificate_for_new_connections_only() {
    let dir = std::env::temp_dir().join(format!("rpc-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = (dir.join("server.pem"), dir.join("server.key"));
    let ca = Ca::new("test CA");
    let first = ca.leaf(&["localhost"], None, "first", Validity::Now);
    std::fs::write(&cert_file, &first.cert).unwrap();
    std::fs::write(&key_file, &first.key).unwrap();
    let (running, addr, acceptor) =
        start(ServerTlsConfig::from_pem_files(&cert_file, &key_file)).await;
    let config = ClientTlsConfig::new().ca_pem(ca.pem());
    let connector =
        TlsConnector::new(TcpConnector::new(addr), "localhost", config.clone()).unwrap();
    let name = |peer: PeerAddr| peer.identity().and_then(|i| i.common_name.clone());
    assert_eq!(
        name(connector.connect().await.unwrap().1).as_deref(),
        Some("first")
    );
    let open = channel(addr, "localhost", config);
    assert_eq!(echo(&open).await.unwrap(), "hello");

    // Files that do not load keep the old certificate.
    std::fs::write(&key_file, "not a key").unwrap();
    assert!(matches!(acceptor.reload(), Err(TlsError::Pem { .. })));
    assert_eq!(
        name(connector.connect().await.unwrap().1).as_deref(),
        Some("first")
    );

    // New files, picked up by the watch task (which may see the certificate before its key,
    // fail that reload, and keep the old one until the key is there too).
    let watch = acceptor.watch(Duration::from_millis(20));
    let second = ca.leaf(&["localhost"], None, "second", Validity::Now);
    std::fs::write(&cert_file, &second.cert).unwrap();
    std::fs::write(&key_file, &second.key).unwrap();
    support::poll::eventually(Duration::from_secs(10), "the new certificate", || {
        let connector = connector.clone();
        async move { name(connector.connect().await.unwrap().1).as_deref() == Some("second") }
    })
    .await;
    watch.abort();
    // The connection opened before goes on.
    assert_eq!(echo(&open).await.unwrap(), "hello");
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_are_typed() {
    let missing = ServerTlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem");
    assert!(matches!(missing.build(), Err(TlsError::Read { .. })));
    let garbage = ServerTlsConfig::from_pem("not pem", "not pem");
    assert!(matches!(garbage.build(), Err(TlsError::Pem { .. })));
    let ca = Ca::new("test CA");
    let a = ca.server();
    let b = ca.server();
    // A key that is not the certificate's.
    assert!(ServerTlsConfig::from_pem(a.cert, b.key).build().is_err());
    assert!(matches!(
        TlsConnector::new(
            TcpConnector::new(([127, 0, 0, 1], 1).into()),
            "not a name!",
            ClientTlsConfig::new()
        ),
        Err(TlsError::ServerName(_))
    ));
    assert!(Endpoint::from_uri("tls://example.com:443").is_ok());
    assert!(Endpoint::from_uri("tls://example.com").is_err());
}

#[tokio::test]
async fn a_client_certificate_becomes_the_principal_a_policy_checks() {
    use rpc_core::middleware::auth::{
        AuthLayer, PeerCertificates, Policy, Rule, StaticTokens, AUTHORIZATION,
    };
    use rpc_core::{AuthMethod, Principal};
    use tower::Layer;

    let ca = Ca::new("test CA");
    let s = ca.server();
    let acceptor =
        TlsAcceptor::new(ServerTlsConfig::from_pem(s.cert, s.key).client_ca_pem(ca.pem())).unwrap();
    let tokens = StaticTokens::new().token(
        "ops-token",
        Principal::new("ops", AuthMethod::BearerToken).with_roles(["service"]),
    );
    // The certificate's authenticator first: the call's own credentials win anyway.
    let auth = AuthLayer::new()
        .authenticator(PeerCertificates::new().roles("spiffe://shop.test/orders", ["service"]))
        .authenticator(tokens)
        .policy(Policy::new().service("demo.Echo", Rule::role("service")));
    let svc = RawService::new("demo.Echo").method("Who", |_req: Request| async move {
        let who = Context::current()
            .and_then(|c| {
                c.principal()
                    .map(|p| format!("{} {:?}", p.subject, p.roles))
            })
            .unwrap_or_default();
        Ok::<_, Status>(Response::new(who))
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let running = serve(
        Server::builder().add_service(auth.layer(svc)),
        acceptor.listener(tcp),
    );
    let client = |l: Leaf| {
        ClientTlsConfig::new()
            .ca_pem(ca.pem())
            .identity_pem(l.cert, l.key)
    };
    let orders = ca.leaf(
        &[],
        Some("spiffe://shop.test/orders"),
        "orders",
        Validity::Now,
    );
    let ch = channel(addr, "localhost", client(orders));
    assert_eq!(
        who(&ch).await.unwrap(),
        r#"spiffe://shop.test/orders ["service"]"#
    );
    // A token on the same connection: the token's principal, not the certificate's.
    let with_key = |key: &str, t: &str| {
        let mut req = Request::new("demo.Echo/Who", "");
        req.metadata_mut().insert(key, format!("Bearer {t}"));
        req
    };
    let with_token = |t: &str| with_key(AUTHORIZATION, t);
    let r = ch.unary(with_token("ops-token")).await.unwrap();
    assert_eq!(r.body().as_ref(), br#"ops ["service"]"#);
    // A token that is refused is not replaced by the certificate, however its key is spelled.
    let e = ch.unary(with_token("forged")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    let e = ch
        .unary(with_key("Authorization", "forged"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e}");
    // Another service of the same CA: authenticated, but without the role.
    let users = ca.leaf(
        &[],
        Some("spiffe://shop.test/users"),
        "users",
        Validity::Now,
    );
    let e = who(&channel(addr, "localhost", client(users)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e}");
    running.shutdown().await;
}

/// HTTP/JSON inside TLS on the same port as the native protocol (issue 19): a client that
/// offers `h2` by ALPN gets it and speaks HTTP/2; one that offers `http/1.1` gets that; a native
/// client still gets `rpc/1`.
#[cfg(feature = "http")]
#[tokio::test]
async fn http_clients_are_served_inside_tls_next_to_native_ones() {
    use http_body_util::{BodyExt, Full};
    use std::sync::Arc;

    let ca = Ca::new("test CA");
    let s = ca.leaf(&["localhost"], None, "echo", Validity::Now);
    let acceptor = TlsAcceptor::new(ServerTlsConfig::from_pem(s.cert, s.key)).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let running = serve(
        Server::builder()
            .http(rpc_core::http::HttpConfig::new())
            .add_service(service()),
        acceptor.listener(tcp),
    );
    let ch = channel(addr, "localhost", ClientTlsConfig::new().ca_pem(ca.pem()));
    assert_eq!(echo(&ch).await.unwrap(), "hello");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.issuer.der().clone()).unwrap();
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
        let io = hyper_util::rt::TokioIo::new(tls);
        let req = || {
            http::Request::post("https://localhost/demo.Echo/Echo")
                .header("content-type", "application/octet-stream")
                .body(Full::new(bytes::Bytes::from_static(b"over tls")))
                .unwrap()
        };
        let resp = if alpn == b"h2" {
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            send.send_request(req()).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req()).await.unwrap()
        };
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"over tls");
    }
    running.shutdown().await;
}
