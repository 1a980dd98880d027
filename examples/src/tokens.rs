//! Issuing end users' JWTs for the examples (feature `jwt`): an Ed25519 key made at start-up;
//! the service that signs users in holds the private key, the services that check tokens get
//! only the public one, through [`TokenIssuer::authenticator`].
//!
//! ```
//! use std::time::Duration;
//! use examples::tokens::TokenIssuer;
//!
//! let issuer = TokenIssuer::generate("shop.Users", "shop")?;
//! let token = issuer.issue("alice", &["orders:write"], &[], Duration::from_secs(600))?;
//! assert_eq!(token.split('.').count(), 3); // header.claims.signature
//! let _verify = issuer.authenticator()?; // a `JwtAuthenticator` for the public key
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rpc_core::middleware::auth::{JwtAuthenticator, JwtKey, JwtKeyError};

/// Signs tokens with `iss`, `aud`, `sub`, `iat`, `exp`, `scope` (space-separated, RFC 8693
/// §4.2) and `roles`, algorithm EdDSA (RFC 8037).
pub struct TokenIssuer {
    key: EncodingKey,
    public_pem: String,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be made or a token signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Key generation failed.
    #[error("generating the signing key: {0}")]
    Key(#[from] rcgen::Error),
    /// Signing failed.
    #[error("signing a token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The public key did not load as a verifying key.
    #[error("loading the verifying key: {0}")]
    Verify(#[from] JwtKeyError),
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
    scope: String,
    roles: &'a [&'a str],
}

impl TokenIssuer {
    /// A new Ed25519 key; tokens name `issuer` and `audience`.
    ///
    /// # Errors
    /// Key generation failed, or its PEM did not load.
    pub fn generate(issuer: &str, audience: &str) -> Result<TokenIssuer, TokenError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
        Ok(TokenIssuer {
            key: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes())?,
            public_pem: pair.public_key_pem(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// The public key (SPKI PEM), for the services that verify.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// A verifier of this issuer's tokens: its public key, issuer and audience.
    ///
    /// # Errors
    /// The public key did not load.
    pub fn authenticator(&self) -> Result<JwtAuthenticator, TokenError> {
        Ok(
            JwtAuthenticator::new(JwtKey::eddsa_pem(self.public_pem.as_bytes())?)
                .issuer(self.issuer.clone())
                .audience(self.audience.clone()),
        )
    }

    /// A token for `subject` with these scopes and roles, valid for `ttl` from now.
    ///
    /// # Errors
    /// Signing failed.
    pub fn issue(
        &self,
        subject: &str,
        scopes: &[&str],
        roles: &[&str],
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let now = unix_now();
        self.sign(subject, scopes, roles, now, now + ttl.as_secs())
    }

    /// A token for `subject` that expired `ago` (to show what an expired token gets).
    ///
    /// # Errors
    /// Signing failed.
    pub fn issue_expired(&self, subject: &str, ago: Duration) -> Result<String, TokenError> {
        let exp = unix_now().saturating_sub(ago.as_secs());
        self.sign(subject, &[], &[], exp.saturating_sub(600), exp)
    }

    fn sign(
        &self,
        sub: &str,
        scopes: &[&str],
        roles: &[&str],
        iat: u64,
        exp: u64,
    ) -> Result<String, TokenError> {
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub,
            iat,
            exp,
            scope: scopes.join(" "),
            roles,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.key,
        )?)
    }
}

/// Seconds since the Unix epoch (0 on a clock before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
