//! A throwaway PKI for the examples (feature `tls`): one CA made at start-up, and an identity per
//! service it signs, named by a SPIFFE id (`spiffe://TRUST_DOMAIN/NAME`) and valid for
//! `NAME.TRUST_DOMAIN`, `localhost` and `127.0.0.1`, for serving and for calling (both extended
//! key usages). A client that checks `NAME.TRUST_DOMAIN` knows which service it reached; one that
//! checks `localhost` accepts any of them.
//!
//! ```
//! use examples::pki::Pki;
//!
//! let pki = Pki::new("shop.test")?;
//! let orders = pki.issue("orders")?;
//! assert_eq!(orders.spiffe_id, "spiffe://shop.test/orders");
//! let _server = pki.server_tls(&orders); // requires client certificates from this CA
//! let _client = pki.client_tls(&orders); // trusts this CA, presents `orders`
//! # Ok::<(), rcgen::Error>(())
//! ```
//!
//! For examples and tests only: the CA lives in memory, the certificates carry rcgen's default
//! validity, and nothing here is fit for production.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rpc_core::transport::tls::{ClientTlsConfig, ServerTlsConfig};

/// A CA and the trust domain of the identities it issues.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    trust_domain: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Identity {
    /// `spiffe://TRUST_DOMAIN/NAME`, the certificate's URI SAN.
    pub spiffe_id: String,
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("spiffe_id", &self.spiffe_id)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// A new CA (ECDSA P-256) for `trust_domain`, such as `shop.test`.
    ///
    /// # Errors
    /// Key generation or signing failed.
    pub fn new(trust_domain: &str) -> Result<Pki, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, format!("{trust_domain} CA"));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(Pki {
            ca: CertifiedIssuer::self_signed(p, KeyPair::generate()?)?,
            trust_domain: trust_domain.to_owned(),
        })
    }

    /// The CA certificate (PEM): what every party trusts.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A new identity `name`: SANs `spiffe://TRUST_DOMAIN/NAME`, `NAME.TRUST_DOMAIN`,
    /// `localhost` and `127.0.0.1`, common name `name`, for both server and client
    /// authentication.
    ///
    /// # Errors
    /// A name that is not a valid URI path segment, or key generation or signing failed.
    pub fn issue(&self, name: &str) -> Result<Identity, rcgen::Error> {
        let spiffe_id = format!("spiffe://{}/{name}", self.trust_domain);
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.subject_alt_names = vec![
            SanType::URI(spiffe_id.clone().try_into()?),
            SanType::DnsName(format!("{name}.{}", self.trust_domain).try_into()?),
            SanType::DnsName("localhost".try_into()?),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ];
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.ca)?;
        Ok(Identity {
            spiffe_id,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server configuration presenting `id` and requiring client certificates from this CA.
    pub fn server_tls(&self, id: &Identity) -> ServerTlsConfig {
        ServerTlsConfig::from_pem(id.cert_pem.clone(), id.key_pem.clone())
            .client_ca_pem(self.ca_pem())
    }

    /// A client configuration trusting this CA and presenting `id`.
    pub fn client_tls(&self, id: &Identity) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_pem(self.ca_pem())
            .identity_pem(id.cert_pem.clone(), id.key_pem.clone())
    }
}
