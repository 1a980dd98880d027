//! Writes a throwaway PKI for trying TLS: a CA, a server certificate for `localhost` and
//! `127.0.0.1`, and a client certificate (SPIFFE id `spiffe://example.test/echo-client`), as PEM
//! files in DIR (`ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`).
//!
//! ```text
//! cargo run --release --features tls --example tls_certs -- DIR
//! cargo run --release --features tls --example echo_server -- --listen 127.0.0.1:50051 \
//!     --tls-cert DIR/server.pem --tls-key DIR/server.key --tls-client-ca DIR/ca.pem
//! cargo run --release --features tls --example echo_client -- --connect 127.0.0.1:50051 \
//!     --tls-ca DIR/ca.pem --tls-cert DIR/client.pem --tls-key DIR/client.key
//! ```
//!
//! For tests and demos only: the CA's key is thrown away, the certificates carry rcgen's default
//! validity, and nothing here is fit for production.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

type BoxError = Box<dyn std::error::Error>;

/// A certificate signed by `ca`, with these SANs and common name; returns (cert PEM, key PEM).
fn leaf(
    ca: &CertifiedIssuer<'_, KeyPair>,
    sans: Vec<SanType>,
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> Result<(String, String), BoxError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.subject_alt_names = sans;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(dir: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "example test CA");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate()?)?;
    let (server, server_key) = leaf(
        &ca,
        vec![
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ],
        "echo-server",
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (client, client_key) = leaf(
        &ca,
        vec![SanType::URI(
            "spiffe://example.test/echo-client".try_into()?,
        )],
        "echo-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server),
        ("server.key", server_key),
        ("client.pem", client),
        ("client.key", client_key),
    ] {
        std::fs::write(dir.join(name), pem)?;
    }
    println!(
        "tls_certs: wrote ca.pem, server.pem, server.key, client.pem, client.key in {}",
        dir.display()
    );
    Ok(())
}

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: tls_certs DIR");
        std::process::exit(2);
    };
    if let Err(e) = write(Path::new(&dir)) {
        eprintln!("tls_certs: {e}");
        std::process::exit(1);
    }
}
