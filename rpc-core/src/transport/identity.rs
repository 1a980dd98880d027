//! What a peer proved about itself with its TLS certificate.

/// The identity in a peer's verified TLS certificate: a server's, as its client sees it, or a
/// client's under mutual TLS, as the server sees it (through
/// [`Context::peer_identity`](crate::Context::peer_identity)).
///
/// Names come from the certificate's subject alternative names (RFC 5280 §4.2.1.6) and its
/// subject's common name. Only a certificate the handshake verified is ever read into one, so
/// the names are the ones a trusted CA vouched for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// DNS names (`dNSName` SANs), such as `orders.shop.internal`.
    pub dns_names: Vec<String>,
    /// URI SANs (`uniformResourceIdentifier`), such as the SPIFFE id
    /// `spiffe://shop.example/orders`.
    pub uris: Vec<String>,
    /// The subject's common name (`CN`), when it has one (legacy; prefer the SANs).
    pub common_name: Option<String>,
    /// The end-entity certificate itself, DER-encoded.
    pub certificate: Vec<u8>,
}

impl PeerIdentity {
    /// The first URI SAN with the `spiffe://` scheme.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.uris
            .iter()
            .map(String::as_str)
            .find(|u| u.starts_with("spiffe://"))
    }

    /// Whether `name` is one of the DNS names or URIs, or, for a certificate without either,
    /// the common name (exactly, no wildcard expansion). The common name of a certificate with
    /// SANs is not a name of it: CAs' name constraints apply to SANs only (RFC 5280 §4.2.1.10),
    /// and RFC 6125 §6.4.4 has clients ignore the CN when SANs are present.
    pub fn has_name(&self, name: &str) -> bool {
        self.dns_names.iter().any(|n| n == name)
            || self.uris.iter().any(|u| u == name)
            || (self.has_no_sans() && self.common_name.as_deref() == Some(name))
    }

    /// The name a principal is known by: the SPIFFE id, else the first DNS name, else the first
    /// URI, else (only without SANs) the common name.
    pub fn primary_name(&self) -> Option<&str> {
        self.spiffe_id()
            .or_else(|| self.dns_names.first().map(String::as_str))
            .or_else(|| self.uris.first().map(String::as_str))
            .or_else(|| {
                self.has_no_sans()
                    .then_some(self.common_name.as_deref())
                    .flatten()
            })
    }

    /// No DNS or URI name was read and the certificate has no subjectAltName extension at all
    /// (one holding only IP addresses, e-mail addresses or names the parser skipped still
    /// counts: its common name is not a name the CA's constraints vouched for). The extension is
    /// looked for by its OID's encoding anywhere in the certificate, so a chance match elsewhere
    /// can only make the common name not count, never count wrongly.
    fn has_no_sans(&self) -> bool {
        // OBJECT IDENTIFIER 2.5.29.17 (id-ce-subjectAltName), RFC 5280 §4.2.1.6.
        const SAN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x11];
        self.dns_names.is_empty()
            && self.uris.is_empty()
            && !self
                .certificate
                .windows(SAN_OID.len())
                .any(|w| w == SAN_OID)
    }

    /// Every name, SANs first, then the common name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.dns_names
            .iter()
            .chain(&self.uris)
            .map(String::as_str)
            .chain(self.common_name.as_deref())
    }

    /// Reads the names of a DER certificate; `None` if it does not parse.
    #[cfg(feature = "tls")]
    pub(crate) fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let cert = rustls::pki_types::CertificateDer::from(der);
        let parsed = webpki::EndEntityCert::try_from(&cert).ok()?;
        Some(PeerIdentity {
            dns_names: parsed.valid_dns_names().map(str::to_owned).collect(),
            uris: parsed.valid_uri_names().map(str::to_owned).collect(),
            common_name: common_name(parsed.subject()),
            certificate: der.to_vec(),
        })
    }
}

/// The common name in a DER `Name` (the contents of its outer SEQUENCE): the value of the first
/// `AttributeTypeAndValue` whose type is id-at-commonName (2.5.4.3), if it is a string.
#[cfg(any(feature = "tls", test))]
fn common_name(mut name: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue)
    while !name.is_empty() {
        let (tag, set, rest) = der_item(name)?;
        name = rest;
        if tag != 0x31 {
            return None;
        }
        let mut set = set;
        while !set.is_empty() {
            let (tag, atv, rest) = der_item(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (tag, oid, value) = der_item(atv)?;
            if tag == 0x06 && oid == CN {
                let (tag, s, _) = der_item(value)?;
                // UTF8String, PrintableString, IA5String, T61String (read as Latin-1 subset).
                return match tag {
                    0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8(s.to_vec()).ok(),
                    _ => None,
                };
            }
        }
    }
    None
}

/// One DER item at the start of `bytes`: its tag, contents and what follows; `None` if
/// malformed (long tags, indefinite or oversized lengths, or too few bytes).
#[cfg(any(feature = "tls", test))]
fn der_item(bytes: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, after) = rest.split_at(n);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_name_is_read_and_malformed_names_are_not() {
        // SET { SEQUENCE { OID 2.5.4.6 (C), PrintableString "SE" } },
        // SET { SEQUENCE { OID 2.5.4.3 (CN), UTF8String "orders" } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'S', b'E', 0x31,
            0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06, b'o', b'r', b'd', b'e',
            b'r', b's',
        ];
        assert_eq!(common_name(&name).as_deref(), Some("orders"));
        assert_eq!(common_name(&name[..name.len() - 1]), None);
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        for cut in 0..name.len() {
            let _ = common_name(&name[..cut]);
        }
    }

    #[test]
    fn the_common_name_counts_only_without_sans() {
        let id = |dns: &[&str], cn: &str| PeerIdentity {
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            uris: Vec::new(),
            common_name: Some(cn.to_owned()),
            certificate: Vec::new(),
        };
        let legacy = id(&[], "payments");
        assert!(legacy.has_name("payments"));
        assert_eq!(legacy.primary_name(), Some("payments"));
        // Only an IP address SAN (not read into the names): the CN still does not count.
        let ip_only = PeerIdentity {
            certificate: vec![
                0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x11, 0x04, 0x03, 0x87, 0x01, 0x7f,
            ],
            ..id(&[], "payments")
        };
        assert!(!ip_only.has_name("payments"));
        assert_eq!(ip_only.primary_name(), None);
        let modern = id(&["x.team-a.internal"], "payments");
        assert!(!modern.has_name("payments"));
        assert!(modern.has_name("x.team-a.internal"));
        assert_eq!(modern.primary_name(), Some("x.team-a.internal"));
    }
}
