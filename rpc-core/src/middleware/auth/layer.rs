//! The server-side layer: authenticate, record the principal, authorize.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::policy::{Decision, Policy};
use super::{AuthMethod, Authenticator};
use crate::middleware::Stats;
use crate::{Code, Delivery, Request, Response, Status};

/// Server side: authenticates every call with the first [`Authenticator`] that finds
/// a principal in it (credentials one refuses may still be accepted by a later one, but never
/// replaced by the connection's mutual-TLS identity), records the [`Principal`](super::Principal) in its context, and checks the
/// [`Policy`]. Without a policy, every call must be authenticated, unless
/// [`optional`](AuthLayer::optional). See the [module docs](super) for the statuses.
#[derive(Clone, Default)]
pub struct AuthLayer {
    authenticators: Vec<Arc<dyn Authenticator>>,
    policy: Option<Arc<Policy>>,
    optional: bool,
    stats: Option<Arc<Stats>>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("authenticators", &self.authenticators.len())
            .field("policy", &self.policy)
            .field("optional", &self.optional)
            .field("stats", &self.stats.is_some())
            .finish()
    }
}

impl AuthLayer {
    /// No authenticator yet (so every call is anonymous).
    pub fn new() -> AuthLayer {
        AuthLayer::default()
    }

    /// Adds an authenticator; they are asked in the order added.
    #[must_use]
    pub fn authenticator(mut self, a: impl Authenticator) -> AuthLayer {
        self.authenticators.push(Arc::new(a));
        self
    }

    /// Authorizes by `policy` (deny by default for what it does not name).
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> AuthLayer {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Without a policy: let calls without credentials through, anonymous (credentials that do
    /// not verify are still refused).
    #[must_use]
    pub fn optional(mut self) -> AuthLayer {
        self.optional = true;
        self
    }

    /// Counts its decisions in `stats`: `authenticated`, `unauthenticated` and
    /// `permission_denied`.
    #[must_use]
    pub fn stats(mut self, stats: Arc<Stats>) -> AuthLayer {
        self.stats = Some(stats);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            config: self.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    config: AuthLayer,
}

crate::middleware::named!(Auth);

impl<S> fmt::Debug for Auth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Auth<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn refuse(req: &Request, code: Code, why: &str) -> Status {
    let peer = req
        .context()
        .peer()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    tracing::warn!(
        target: "rpc_core::middleware",
        path = req.path(),
        %peer,
        code = code.as_str(),
        reason = why,
        "call refused by authentication or authorization"
    );
    Status::new(code, why.to_owned()).with_delivery(Delivery::Unprocessed)
}

impl<S> Auth<S> {
    fn count(&self, counter: fn(&Stats) -> &AtomicU64) {
        if let Some(stats) = &self.config.stats {
            Stats::bump(counter(stats));
        }
    }

    /// Authenticates and authorizes `req`; on success, records its principal.
    fn admit(&self, req: &mut Request) -> Result<(), Status> {
        let outcome = self.decide(req);
        match &outcome {
            Ok(()) if req.context().principal().is_some() => self.count(|s| &s.authenticated),
            Ok(()) => {}
            Err(s) if s.code() == Code::PermissionDenied => self.count(|s| &s.permission_denied),
            Err(_) => self.count(|s| &s.unauthenticated),
        }
        outcome
    }

    fn decide(&self, req: &mut Request) -> Result<(), Status> {
        // Each authenticator in turn, until one finds a principal in the call's own credentials.
        // A refusal does not end the search (a token one issuer does not know, another may). The
        // connection's certificate counts only when the call carries no credentials that verify
        // and none that were refused, whatever the order the authenticators were added in: a
        // gateway that forwards a user's bad token must not get the call through as itself.
        let mut found = None;
        let mut certificate = None;
        let mut refused = None;
        for a in &self.config.authenticators {
            match a.authenticate(req) {
                Ok(Some(p)) if p.method == AuthMethod::MutualTls => {
                    certificate.get_or_insert(p);
                }
                Ok(Some(p)) => {
                    found = Some(p);
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        if found.is_none() {
            if let Some(e) = refused {
                return Err(refuse(req, Code::Unauthenticated, &e.to_string()));
            }
            found = certificate;
        }
        let decision = match &self.config.policy {
            Some(policy) => policy.decide(req.path(), found.as_ref()),
            None if found.is_none() && !self.config.optional => Decision::Unauthenticated,
            None => Decision::Allow,
        };
        match decision {
            Decision::Allow => {
                if let Some(p) = found {
                    req.context_mut().set_principal(p);
                }
                Ok(())
            }
            Decision::Unauthenticated => Err(refuse(
                req,
                Code::Unauthenticated,
                "authentication required",
            )),
            Decision::Denied(why) => Err(refuse(
                req,
                Code::PermissionDenied,
                &format!("permission denied: {why}"),
            )),
        }
    }
}

impl<S> Service<Request> for Auth<S>
where
    S: Service<Request, Response = Response, Error = Status>,
{
    type Response = Response;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.admit(&mut req) {
            // The rest of the call runs with the context that holds the principal as the
            // current one, so that `Context::current()` in the handler sees it too.
            Ok(()) => ResponseFuture {
                outcome: Outcome::Admitted {
                    fut: req.context().clone().scope_call(self.inner.call(req)),
                },
            },
            Err(status) => ResponseFuture {
                outcome: Outcome::Refused {
                    status: Some(status),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Auth`]: the admitted call, or the refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        outcome: Outcome<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = OutcomeProj]
    enum Outcome<F> {
        Admitted { #[pin] fut: TaskLocalFuture<crate::Context, F> },
        Refused { status: Option<Status> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Status>>,
{
    type Output = Result<Response, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().outcome.project() {
            OutcomeProj::Admitted { fut } => fut.poll(cx),
            OutcomeProj::Refused { status } => Poll::Ready(Err(status
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion")))),
        }
    }
}
