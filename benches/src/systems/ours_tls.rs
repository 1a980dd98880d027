//! This framework over TLS 1.3 (rustls with the `ring` provider, feature `tls`): the raw echo of
//! [`ours`](super::ours) behind server-authenticated TLS (`ours-tls`) and mutual TLS
//! (`ours-mtls`).
//!
//! Servers and clients run in different processes, so they share a throwaway PKI through files:
//! the directory named by [`PKI_ENV`], which the load generator fills with [`write_pki`] before
//! it starts them (a CA, a server certificate for `127.0.0.1`, a client certificate).

use std::path::{Path, PathBuf};

use rpc_core::transport::tcp::TcpConnector;
use rpc_core::transport::tls::{ClientTlsConfig, ServerTlsConfig, TlsAcceptor, TlsConnector};
use rpc_core::transport::Listener;
use rpc_core::Endpoint;

use super::ours::MAX_IN_FLIGHT;
use super::PKI_ENV;

fn pki_dir() -> Result<PathBuf, String> {
    std::env::var_os(PKI_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{PKI_ENV} is not set: the load generator writes the PKI"))
}

/// Writes a CA (`ca.pem`), a server certificate for `127.0.0.1` (`server.pem`, `server.key`)
/// and a client certificate with CN `loadgen-client` (`client.pem`, `client.key`) in `dir`.
/// ECDSA P-256 keys (rcgen's default).
///
/// # Errors
/// Generation or writing failed.
pub fn write_pki(dir: &Path) -> Result<(), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let err = |e: rcgen::Error| e.to_string();
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "loadgen CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
    let leaf = |san: Option<SanType>, cn: &str, usage| -> Result<(String, String), String> {
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        p.subject_alt_names = san.into_iter().collect();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().map_err(err)?;
        let cert = p.signed_by(&key, &ca).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let server = leaf(
        Some(SanType::IpAddress([127, 0, 0, 1].into())),
        "loadgen-server",
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let client = leaf(None, "loadgen-client", ExtendedKeyUsagePurpose::ClientAuth)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server.0),
        ("server.key", server.1),
        ("client.pem", client.0),
        ("client.key", client.1),
    ] {
        std::fs::write(dir.join(name), pem).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// Serves the echo service of [`ours`](super::ours) over TLS on `listener`; `mutual` requires
/// client certificates from the PKI's CA.
///
/// # Errors
/// A missing or bad PKI, or the listener's failure.
pub async fn serve<L: Listener>(listener: L, mutual: bool) -> Result<(), String> {
    let dir = pki_dir()?;
    let mut config =
        ServerTlsConfig::from_pem_files(dir.join("server.pem"), dir.join("server.key"));
    if mutual {
        config = config.client_ca_pem_file(dir.join("ca.pem"));
    }
    let acceptor = TlsAcceptor::new(config).map_err(|e| e.to_string())?;
    super::ours::serve(acceptor.listener(listener)).await
}

/// An endpoint to `addr` over TLS, trusting the PKI's CA; `mutual` presents the client
/// certificate.
///
/// # Errors
/// A missing or bad PKI.
pub fn endpoint(addr: std::net::SocketAddr, mutual: bool) -> Result<Endpoint, String> {
    let dir = pki_dir()?;
    let mut config = ClientTlsConfig::new().ca_pem_file(dir.join("ca.pem"));
    if mutual {
        config = config.identity_pem_files(dir.join("client.pem"), dir.join("client.key"));
    }
    let connector = TlsConnector::new(TcpConnector::new(addr), "127.0.0.1", config)
        .map_err(|e| e.to_string())?;
    Ok(Endpoint::new(connector).max_concurrent_calls(MAX_IN_FLIGHT as usize))
}
