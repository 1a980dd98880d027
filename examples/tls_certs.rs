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
//! For tests and demos only ([`examples::pki`]): the CA's key is thrown away, the certificates
//! carry rcgen's default validity, and nothing here is fit for production.

use std::path::Path;

use examples::pki::Pki;

type BoxError = Box<dyn std::error::Error>;

fn write(dir: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(dir)?;
    let pki = Pki::new("example.test")?;
    let server = pki.issue("echo-server")?;
    let client = pki.issue("echo-client")?;
    for (name, pem) in [
        ("ca.pem", pki.ca_pem()),
        ("server.pem", server.cert_pem),
        ("server.key", server.key_pem),
        ("client.pem", client.cert_pem),
        ("client.key", client.key_pem),
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
