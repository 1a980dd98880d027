//! Bearer tokens: reading them (server), a table of known ones, mutual-TLS identities as
//! principals, and attaching a token to outgoing calls (client).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::{AuthError, AuthMethod, Authenticator, Principal, AUTHORIZATION, MAX_TOKEN_LEN};
use crate::client::OpenStream;
use crate::stream::{RawSender, RawStreaming};
use crate::{BoxFuture, Request, Status};

/// The token of `authorization: Bearer <token>` (key and scheme case-insensitive, as HTTP's
/// field names and RFC 6750 §2.1's scheme are); `Ok(None)` without an `authorization` entry.
///
/// # Errors
/// [`AuthError::Malformed`] for another scheme, an empty token, a value that is not UTF-8, one
/// longer than [`MAX_TOKEN_LEN`], or more than one `authorization` entry (which one would be
/// the caller's is anyone's guess).
pub fn bearer_token(req: &Request) -> Result<Option<&str>, AuthError> {
    let mut entries = req
        .metadata()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(AUTHORIZATION))
        .map(|(_, v)| v);
    let Some(raw) = entries.next() else {
        return Ok(None);
    };
    if entries.next().is_some() {
        return Err(AuthError::Malformed);
    }
    if raw.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    let value = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(Some(token))
}

/// Known bearer tokens and whom each stands for (API keys, service tokens). A token is compared
/// with every known one in time that depends on the lengths only, never on where the bytes
/// first differ.
#[derive(Clone, Default)]
pub struct StaticTokens {
    tokens: Vec<(Box<[u8]>, Arc<Principal>)>,
}

impl fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("StaticTokens")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl StaticTokens {
    /// No tokens yet.
    pub fn new() -> StaticTokens {
        StaticTokens::default()
    }

    /// Adds `token`, standing for `principal`.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>, principal: Principal) -> StaticTokens {
        let token = token.into().into_bytes().into_boxed_slice();
        self.tokens.retain(|(t, _)| *t != token);
        self.tokens.push((token, Arc::new(principal)));
        self
    }
}

/// Whether `a == b`, in time that depends on the lengths only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for StaticTokens {
    fn authenticate(&self, req: &Request) -> Result<Option<Principal>, AuthError> {
        let Some(token) = bearer_token(req)? else {
            return Ok(None);
        };
        // Every entry is compared, found or not.
        let mut found = None;
        for (known, principal) in &self.tokens {
            if same_bytes(known, token.as_bytes()) {
                found = Some(principal);
            }
        }
        match found {
            Some(p) => Ok(Some((**p).clone())),
            None => Err(AuthError::UnknownToken),
        }
    }
}

/// The client certificate of a mutual-TLS connection as the principal: the subject is the
/// certificate's [`primary_name`](crate::transport::PeerIdentity::primary_name) (its
/// SPIFFE id, else its first DNS name, else its first URI, else, only without SANs, its common
/// name); roles can be given per name.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates {
    roles: HashMap<String, Vec<String>>,
}

impl PeerCertificates {
    /// Principals without roles.
    pub fn new() -> PeerCertificates {
        PeerCertificates::default()
    }

    /// The certificate whose subject is `subject` gets these roles.
    #[must_use]
    pub fn roles<I, S>(mut self, subject: impl Into<String>, roles: I) -> PeerCertificates
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles
            .entry(subject.into())
            .or_default()
            .extend(roles.into_iter().map(Into::into));
        self
    }
}

impl Authenticator for PeerCertificates {
    fn authenticate(&self, req: &Request) -> Result<Option<Principal>, AuthError> {
        let Some(id) = req.context().peer_identity() else {
            return Ok(None);
        };
        Ok(id.primary_name().map(|s| {
            let roles = self.roles.get(s).cloned().unwrap_or_default();
            Principal::new(s, AuthMethod::MutualTls).with_roles(roles)
        }))
    }
}

/// Where a client's bearer token comes from, asked before every call: a fixed string, or a
/// function (which may cache and refresh a token, and should be cheap).
pub trait TokenSource: Send + Sync + 'static {
    /// The token to send now; `None` sends the call without one.
    fn token(&self) -> Option<Arc<str>>;
}

impl TokenSource for Arc<str> {
    fn token(&self) -> Option<Arc<str>> {
        Some(self.clone())
    }
}

impl<F> TokenSource for F
where
    F: Fn() -> Option<Arc<str>> + Send + Sync + 'static,
{
    fn token(&self) -> Option<Arc<str>> {
        self()
    }
}

/// Client side: attaches `authorization: Bearer <token>` from a [`TokenSource`] to every call
/// that has no `authorization` entry yet.
///
/// ```
/// use std::sync::Arc;
/// use rpc_core::middleware::auth::BearerLayer;
///
/// let layer = BearerLayer::new(Arc::<str>::from("eyJhbGciOi..."));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct BearerLayer {
    source: Arc<dyn TokenSource>,
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerLayer").finish_non_exhaustive()
    }
}

impl BearerLayer {
    /// Tokens from `source`.
    pub fn new(source: impl TokenSource) -> BearerLayer {
        BearerLayer {
            source: Arc::new(source),
        }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerToken<S>;

    fn layer(&self, inner: S) -> BearerToken<S> {
        BearerToken {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service of [`BearerLayer`].
#[derive(Clone)]
pub struct BearerToken<S> {
    inner: S,
    source: Arc<dyn TokenSource>,
}

impl<S> fmt::Debug for BearerToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken").finish_non_exhaustive()
    }
}

impl<S> Service<Request> for BearerToken<S>
where
    S: Service<Request, Error = Status>,
{
    type Response = S::Response;
    type Error = Status;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        let req = self.authorized(req);
        self.inner.call(req)
    }
}

impl<S> BearerToken<S> {
    /// `req` with the source's token, unless it carries an `authorization` already.
    fn authorized(&self, mut req: Request) -> Request {
        if req.metadata().get(AUTHORIZATION).is_none() {
            if let Some(token) = self.source.token() {
                req.metadata_mut()
                    .insert(AUTHORIZATION, format!("Bearer {token}"));
            }
        }
        req
    }
}

/// A stream carries the token as a call does.
impl<S: OpenStream> OpenStream for BearerToken<S> {
    fn open_stream(
        &self,
        request: Request,
        stream_flags: u8,
    ) -> BoxFuture<'static, Result<(Option<RawSender>, RawStreaming), Status>> {
        self.inner
            .open_stream(self.authorized(request), stream_flags)
    }
}
