//! Authentication and authorization, server side: [`AuthLayer`] finds who is calling with its
//! [`Authenticator`]s (bearer tokens, JWT with feature `jwt`, mutual-TLS identities), puts the
//! [`Principal`] in the call's [`Context`](crate::Context), and checks a [`Policy`] per service
//! and method. Client side, [`BearerLayer`] attaches a token to every call.
//!
//! A call with credentials that do not verify gets `Unauthenticated`; a call without any, where
//! the policy wants them, `Unauthenticated` too; an authenticated call the policy does not allow,
//! `PermissionDenied`. All three are marked not processed (the handler never ran), carry a short
//! reason only (never which claim or byte failed beyond it, never the token), and are logged at
//! `warn` with the method and the peer.
//!
//! ```
//! use rpc_core::middleware::auth::{AuthLayer, Policy, Rule, StaticTokens};
//! use rpc_core::{AuthMethod, Principal};
//!
//! let tokens = StaticTokens::new().token(
//!     "s3cr3t",
//!     Principal::new("ops", AuthMethod::BearerToken).with_roles(["admin"]),
//! );
//! let policy = Policy::new()
//!     .service("shop.Catalogue", Rule::Public)
//!     .method("shop.Orders/Cancel", Rule::role("admin"))
//!     .service("shop.Orders", Rule::Authenticated);
//! let layer = AuthLayer::new().authenticator(tokens).policy(policy);
//! # let _ = layer;
//! ```

mod bearer;
#[cfg(feature = "jwt")]
mod jwt;
mod layer;
mod policy;

pub use bearer::{
    bearer_token, BearerLayer, BearerToken, PeerCertificates, StaticTokens, TokenSource,
};
#[cfg(feature = "jwt")]
pub use jwt::{JwtAuthenticator, JwtKey, JwtKeyError};
pub use layer::{Auth, AuthLayer};
pub use policy::{Policy, Rule};

pub use crate::principal::{AuthMethod, Principal};

use crate::Request;

/// The metadata key credentials travel in (`authorization: Bearer …`, as in HTTP, RFC 6750 §2.1).
pub const AUTHORIZATION: &str = "authorization";

/// The longest `authorization` value read; longer ones are refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why credentials were refused: a short reason, safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The `authorization` value is not `Bearer <token>`, or too long.
    #[error("malformed authorization metadata")]
    Malformed,
    /// A token no authenticator knows.
    #[error("unknown token")]
    UnknownToken,
    /// A token that does not verify: bad signature, wrong algorithm or key, unparsable.
    #[error("invalid token")]
    InvalidToken,
    /// A token past its `exp`.
    #[error("token expired")]
    Expired,
    /// A token before its `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// A token for another audience or from another issuer.
    #[error("token not for this service")]
    WrongAudienceOrIssuer,
}

/// Finds who is calling from a request.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(None)`: the request carries no credentials of this kind (the next authenticator is
    /// asked). `Ok(Some)`: it does, and they verify. `Err`: it does, and they do not.
    ///
    /// # Errors
    /// Credentials of this kind that do not verify.
    fn authenticate(&self, req: &Request) -> Result<Option<Principal>, AuthError>;
}

impl<A: Authenticator + ?Sized> Authenticator for std::sync::Arc<A> {
    fn authenticate(&self, req: &Request) -> Result<Option<Principal>, AuthError> {
        (**self).authenticate(req)
    }
}
