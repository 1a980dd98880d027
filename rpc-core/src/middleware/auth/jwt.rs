//! JSON Web Tokens (RFC 7519) as bearer tokens (feature `jwt`), verified with `jsonwebtoken`
//! (RustCrypto): HS256 with a shared secret, RS256, ES256 and EdDSA with public keys from PEM or
//! a JWKS document (RFC 7517).

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

use super::bearer::bearer_token;
use super::{AuthError, AuthMethod, Authenticator, Principal};
use crate::Request;

/// The most clock skew [`JwtAuthenticator::leeway`] accepts.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// A key that verifies tokens signed with one algorithm, optionally named by a key id (`kid`).
#[derive(Clone)]
pub struct JwtKey {
    alg: Algorithm,
    key: DecodingKey,
    kid: Option<String>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material (an HS256 secret is one).
        f.debug_struct("JwtKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A key that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("JWT key: {0}")]
pub struct JwtKeyError(String);

fn key_err(e: impl std::fmt::Display) -> JwtKeyError {
    JwtKeyError(e.to_string())
}

impl JwtKey {
    /// HS256 with a shared secret of at least 32 bytes (RFC 7518 §3.2: a key as long as the
    /// hash output).
    ///
    /// # Errors
    /// A secret shorter than 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<JwtKey, JwtKeyError> {
        if secret.len() < 32 {
            return Err(JwtKeyError(
                "an HS256 secret needs at least 32 bytes (RFC 7518 §3.2)".into(),
            ));
        }
        Ok(JwtKey::new(
            Algorithm::HS256,
            DecodingKey::from_secret(secret).map_err(key_err)?,
        ))
    }

    /// RS256 with an RSA public key (PEM).
    ///
    /// # Errors
    /// PEM that is not an RSA public key.
    pub fn rs256_pem(pem: &[u8]) -> Result<JwtKey, JwtKeyError> {
        Ok(JwtKey::new(
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(pem).map_err(key_err)?,
        ))
    }

    /// ES256 with a P-256 public key (PEM).
    ///
    /// # Errors
    /// PEM that is not an EC public key.
    pub fn es256_pem(pem: &[u8]) -> Result<JwtKey, JwtKeyError> {
        Ok(JwtKey::new(
            Algorithm::ES256,
            DecodingKey::from_ec_pem(pem).map_err(key_err)?,
        ))
    }

    /// EdDSA with an Ed25519 public key (PEM).
    ///
    /// # Errors
    /// PEM that is not an Ed25519 public key.
    pub fn eddsa_pem(pem: &[u8]) -> Result<JwtKey, JwtKeyError> {
        Ok(JwtKey::new(
            Algorithm::EdDSA,
            DecodingKey::from_ed_pem(pem).map_err(key_err)?,
        ))
    }

    /// Every public signing key of a JWKS document (RFC 7517) that names its algorithm (`alg`),
    /// with its `kid`. Symmetric (`oct`) keys and keys whose `use` is not `sig` are skipped: a
    /// JWKS is published, so a secret in it is no secret.
    ///
    /// # Errors
    /// JSON that is not a JWK set, a key that does not load, or no usable key at all.
    pub fn jwks(json: &str) -> Result<Vec<JwtKey>, JwtKeyError> {
        let set: JwkSet = serde_json::from_str(json).map_err(key_err)?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            if !matches!(
                jwk.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            ) {
                continue;
            }
            let Some(alg) = jwk.common.key_algorithm else {
                continue;
            };
            let Ok(alg) = Algorithm::try_from(alg) else {
                continue;
            };
            keys.push(JwtKey {
                alg,
                key: DecodingKey::from_jwk(jwk).map_err(key_err)?,
                kid: jwk.common.key_id.clone(),
            });
        }
        if keys.is_empty() {
            return Err(JwtKeyError(
                "no public signing key with an `alg` in the JWK set".into(),
            ));
        }
        Ok(keys)
    }

    /// The keys of a JWKS file.
    ///
    /// # Errors
    /// A file that cannot be read, or as [`JwtKey::jwks`].
    pub fn jwks_file(path: impl AsRef<Path>) -> Result<Vec<JwtKey>, JwtKeyError> {
        let json = std::fs::read_to_string(path.as_ref())
            .map_err(|e| JwtKeyError(format!("{}: {e}", path.as_ref().display())))?;
        JwtKey::jwks(&json)
    }

    /// Named `kid`: tokens whose header names another key id are not tried with it.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> JwtKey {
        self.kid = Some(kid.into());
        self
    }

    fn new(alg: Algorithm, key: DecodingKey) -> JwtKey {
        JwtKey {
            alg,
            key,
            kid: None,
        }
    }
}

/// The claims read from a token, beyond those `jsonwebtoken` checks (`exp`, `nbf`, `iss`, `aud`).
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    /// OAuth 2.0 scopes, space-separated (RFC 8693 §4.2).
    #[serde(default)]
    scope: Option<String>,
    /// Scopes as a list (a common alternative).
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// Verifies `authorization: Bearer <JWT>`: the signature with a configured key for the token's
/// algorithm (only those: a token naming another algorithm, `none` included, is refused, so an
/// HS256 token never meets an RSA public key used as a secret), then `exp` (required), `nbf`,
/// and `iss` and `aud` when configured, with a bounded clock skew. The principal's subject is
/// `sub`; its scopes come from `scope` or `scp`, its roles from `roles`.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::middleware::auth::{JwtAuthenticator, JwtKey};
///
/// let jwt = JwtAuthenticator::new(JwtKey::hs256(b"a random secret of at least 32 bytes").unwrap())
///     .issuer("https://users.shop.example")
///     .audience("shop.Orders")
///     .leeway(Duration::from_secs(30));
/// # let _ = jwt;
/// ```
#[derive(Debug, Clone)]
pub struct JwtAuthenticator {
    keys: Vec<JwtKey>,
    issuer: Vec<String>,
    audience: Vec<String>,
    leeway: Duration,
}

impl JwtAuthenticator {
    /// Verifying with `key`; no issuer or audience checked; 60 s of clock skew.
    pub fn new(key: JwtKey) -> JwtAuthenticator {
        // jsonwebtoken 12 verifies through a process-wide provider and has no per-call one:
        // install RustCrypto unless another crate of the process installed one first (which
        // then serves; every provider checks the same algorithms).
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );
        JwtAuthenticator {
            keys: vec![key],
            issuer: Vec::new(),
            audience: Vec::new(),
            leeway: Duration::from_secs(60),
        }
    }

    /// Another key (key rotation: old and new both verify meanwhile).
    #[must_use]
    pub fn key(mut self, key: JwtKey) -> JwtAuthenticator {
        self.keys.push(key);
        self
    }

    /// Tokens must name this issuer (`iss`); may be given several times.
    #[must_use]
    pub fn issuer(mut self, iss: impl Into<String>) -> JwtAuthenticator {
        self.issuer.push(iss.into());
        self
    }

    /// Tokens must be for this audience (`aud`); may be given several times.
    #[must_use]
    pub fn audience(mut self, aud: impl Into<String>) -> JwtAuthenticator {
        self.audience.push(aud.into());
        self
    }

    /// The clock skew allowed on `exp` and `nbf`; at most 5 minutes.
    #[must_use]
    pub fn leeway(mut self, skew: Duration) -> JwtAuthenticator {
        self.leeway = skew.min(MAX_LEEWAY);
        self
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        // A configured issuer or audience must be in the token: jsonwebtoken checks them only
        // when present.
        let mut required = vec!["exp", "sub"];
        if !self.issuer.is_empty() {
            required.push("iss");
        }
        if !self.audience.is_empty() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        if self.issuer.is_empty() {
            v.iss = None;
        } else {
            v.set_issuer(&self.issuer);
        }
        if self.audience.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.audience);
        }
        v
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, req: &Request) -> Result<Option<Principal>, AuthError> {
        let Some(token) = bearer_token(req)? else {
            return Ok(None);
        };
        let header = decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        let candidates = self.keys.iter().filter(|k| {
            k.alg == header.alg
                && match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        });
        let mut refusal = AuthError::InvalidToken;
        for key in candidates {
            match decode::<Claims>(token, &key.key, &self.validation(key.alg)) {
                Ok(data) => {
                    let c = data.claims;
                    let scopes = c
                        .scope
                        .map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                        .or(c.scp)
                        .unwrap_or_default();
                    return Ok(Some(
                        Principal::new(c.sub, AuthMethod::Jwt)
                            .with_scopes(scopes)
                            .with_roles(c.roles.unwrap_or_default()),
                    ));
                }
                Err(e) => {
                    refusal = match e.kind() {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                        ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => {
                            AuthError::WrongAudienceOrIssuer
                        }
                        ErrorKind::MissingRequiredClaim(c) if c == "iss" || c == "aud" => {
                            AuthError::WrongAudienceOrIssuer
                        }
                        ErrorKind::MissingRequiredClaim(_)
                        | ErrorKind::InvalidClaimFormat(_)
                        | ErrorKind::InvalidSubject
                        | ErrorKind::InvalidToken
                        | ErrorKind::Base64(_)
                        | ErrorKind::Json(_)
                        | ErrorKind::Utf8(_) => AuthError::InvalidToken,
                        // The signature or the key did not fit: another key may have signed it.
                        _ => {
                            refusal = AuthError::InvalidToken;
                            continue;
                        }
                    };
                    // The signature verified (claims are checked after it), or the token is
                    // malformed: no other key helps.
                    break;
                }
            }
        }
        Err(refusal)
    }
}
