//! The per-call [`Context`]: deadline, metadata, peer, call id and cancellation, reachable from
//! inside a handler.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metadata::Metadata;
use crate::principal::Principal;
use crate::transport::PeerAddr;

tokio::task_local! {
    static CURRENT: Context;
}

/// What a server knows about the call it is handling.
///
/// The server makes the context of each call current while the handler runs, so that code deep in a
/// handler can reach it with [`Context::current`], and so that a call made through a `Channel` while
/// handling another inherits the remaining deadline without anyone passing it along.
///
/// # Cancellation
///
/// A served call has a cancellation token ([`Context::cancellation`], a tokio-util
/// [`CancellationToken`]). The server cancels it when the call ends without its handler finishing:
/// the client sent CANCEL (it dropped the call), the connection's read side ended or failed, the
/// server's drain timeout ran out, or the call's deadline passed. It is *not* cancelled when the
/// handler returns. Calls made through any `Channel` while a context is current (the handler's own
/// task, or work run in [`Context::scope`]) are cancelled with it, and the server is sent CANCEL for
/// them. Work a handler spawns keeps that link when it runs in a scope made while the call runs:
///
/// ```no_run
/// # use rpc_core::{Channel, Context, Request};
/// # async fn handler(ctx: Context, backend: Channel) {
/// // Cancelled with the call that spawned it:
/// tokio::spawn(ctx.clone().scope(async move {
///     backend.unary(Request::new("shop.Audit/Record", "x")).await
/// }));
/// // Or hold the token itself:
/// let token = ctx.cancellation().expect("a served call has a token");
/// tokio::spawn(async move { token.cancelled().await });
/// # }
/// ```
///
/// The token is made on first use, so calls that never ask for it pay nothing for it. Take it (or
/// scope the work) while the call runs: asked for the first time after the call ended, a context
/// has no token (`None`), or an already cancelled one once the connection is gone.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::Context;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ctx = Context::new().with_timeout(Duration::from_secs(5));
/// ctx.scope(async {
///     let left = Context::current().and_then(|c| c.remaining()).unwrap();
///     assert!(left <= Duration::from_secs(5));
/// })
/// .await;
/// assert!(Context::current().is_none());
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Context {
    call_id: u32,
    deadline: Option<Instant>,
    metadata: Metadata,
    peer: Option<PeerAddr>,
    principal: Option<Arc<Principal>>,
    cancel: Cancel,
}

/// Where the tokens of the calls served on one connection come from: the server makes a call's
/// token on first use, while the call runs, and cancels it when the call ends early.
pub(crate) trait CancelSource: Send + Sync + 'static {
    /// The token of call `call_id`: made now if the call runs and has none yet; an already
    /// cancelled one when the connection is gone; `None` when the call is over.
    fn token(&self, call_id: u32) -> Option<CancellationToken>;

    /// The token the server cancels when it starts a graceful shutdown, if it has one.
    fn draining(&self) -> Option<CancellationToken> {
        None
    }
}

/// How a context learns that its call ended early.
#[derive(Clone, Default)]
enum Cancel {
    /// Nothing cancels it.
    #[default]
    Never,
    /// A token given with [`Context::with_cancellation`], or taken from the call's connection.
    Token(CancellationToken),
    /// A served call whose token is made on first use (see [`CancelSource`]).
    Call(Arc<dyn CancelSource>),
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cancel::Never => f.write_str("Never"),
            Cancel::Token(t) => f.debug_tuple("Token").field(&t.is_cancelled()).finish(),
            Cancel::Call(_) => f.write_str("Call"),
        }
    }
}

impl Context {
    /// An empty context: no deadline, no metadata, no peer.
    pub fn new() -> Context {
        Context::default()
    }

    /// Names the peer of a call that did not come over a native connection (an HTTP request a
    /// gateway or a server's HTTP port turns into a call), builder style. Rate limits fall back
    /// to its IP address for callers without a principal.
    #[must_use]
    pub fn with_peer(mut self, peer: PeerAddr) -> Context {
        self.peer = Some(peer);
        self
    }

    /// The context of a served call; its token comes from `cancels` (the call's connection).
    pub(crate) fn for_call(
        call_id: u32,
        deadline: Option<Instant>,
        metadata: Metadata,
        peer: PeerAddr,
        cancels: Arc<dyn CancelSource>,
    ) -> Context {
        Context {
            call_id,
            deadline,
            metadata,
            peer: Some(peer),
            principal: None,
            cancel: Cancel::Call(cancels),
        }
    }

    /// The call id on its connection (0 outside a server).
    pub fn call_id(&self) -> u32 {
        self.call_id
    }

    /// When the caller stops waiting, if it said.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once it has passed); `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Sets the deadline, builder style.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Context {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the deadline to `timeout` from now, builder style.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Context {
        self.with_deadline(Instant::now() + timeout)
    }

    /// The request metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable request metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Who sent the call (`None` outside a server).
    pub fn peer(&self) -> Option<&PeerAddr> {
        self.peer.as_ref()
    }

    /// Who is calling, as the server's authentication layer established it (`AuthLayer` of
    /// `middleware::auth`); `None` before it, without it, or for an anonymous call.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// Records who is calling: for authentication layers. It stays in this process (nothing of
    /// it goes on the wire).
    pub fn set_principal(&mut self, principal: Principal) {
        self.principal = Some(Arc::new(principal));
    }

    /// The identity the peer proved with its TLS certificate: a client's under mutual TLS
    /// (`ServerTlsConfig::client_ca_pem` of `transport::tls`); `None` without TLS or without a
    /// client certificate.
    pub fn peer_identity(&self) -> Option<&crate::transport::PeerIdentity> {
        self.peer.as_ref().and_then(PeerAddr::identity)
    }

    /// The token cancelled when this call ends without its handler finishing (see
    /// [Cancellation](Context#cancellation)). `None` when nothing can cancel this context: a
    /// context made with [`Context::new`] and no [`Context::with_cancellation`], or a served call
    /// asked for the first time after it ended.
    pub fn cancellation(&self) -> Option<CancellationToken> {
        match &self.cancel {
            Cancel::Never => None,
            Cancel::Token(t) => Some(t.clone()),
            Cancel::Call(source) => source.token(self.call_id),
        }
    }

    /// `true` once this context's token is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation().is_some_and(|t| t.is_cancelled())
    }

    /// Resolves once the server serving this call starts a graceful shutdown (it has sent its
    /// go-away, and calls in flight have the drain timeout to finish); never for a context that
    /// is not a served call's.
    ///
    /// A handler that streams for as long as its caller listens (a watch, a feed) races its work
    /// against this and ends the stream, typically with `Unavailable`, so that the caller opens
    /// it again on another replica instead of holding the shutdown until the drain timeout
    /// aborts the handler.
    ///
    /// ```
    /// use rpc_core::{Context, Status};
    ///
    /// async fn feed(ctx: &Context) -> Result<(), Status> {
    ///     let draining = ctx.draining();
    ///     tokio::select! {
    ///         () = draining => Err(Status::unavailable("this server is shutting down")),
    ///         () = std::future::pending::<()>() => Ok(()), // the stream's work
    ///     }
    /// }
    /// ```
    pub fn draining(&self) -> impl Future<Output = ()> + Send + 'static {
        let token = match &self.cancel {
            Cancel::Call(source) => source.draining(),
            Cancel::Never | Cancel::Token(_) => None,
        };
        async move {
            match token {
                Some(token) => token.cancelled_owned().await,
                None => std::future::pending().await,
            }
        }
    }

    /// `true` once the server serving this call has started a graceful shutdown (see
    /// [`draining`](Context::draining)).
    pub fn is_draining(&self) -> bool {
        match &self.cancel {
            Cancel::Call(source) => source.draining().is_some_and(|t| t.is_cancelled()),
            Cancel::Never | Cancel::Token(_) => false,
        }
    }

    /// Ties this context to `token`, builder style: calls made through a `Channel` in its
    /// [`scope`](Context::scope) end with `Cancelled` (and send CANCEL) when `token` is cancelled.
    ///
    /// ```
    /// use rpc_core::Context;
    /// use tokio_util::sync::CancellationToken;
    ///
    /// let stop = CancellationToken::new();
    /// let ctx = Context::new().with_cancellation(stop.clone());
    /// stop.cancel();
    /// assert!(ctx.is_cancelled());
    /// ```
    #[must_use]
    pub fn with_cancellation(mut self, token: CancellationToken) -> Context {
        self.cancel = Cancel::Token(token);
        self
    }

    /// The deadline and cancellation token of the call being handled by the current task, in one
    /// look-up of the task-local context: what a `Channel` ties every call it starts to.
    pub(crate) fn current_deadline_and_cancellation() -> (Option<Instant>, Option<CancellationToken>)
    {
        CURRENT
            .try_with(|c| (c.deadline, c.cancellation()))
            .unwrap_or((None, None))
    }

    /// A copy of the context of the call being handled by the current task, if any.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Context::clone).ok()
    }

    /// The deadline of the call being handled by the current task, if any. Cheaper than
    /// [`Context::current`] because nothing is cloned.
    pub fn current_deadline() -> Option<Instant> {
        CURRENT.try_with(|c| c.deadline).ok().flatten()
    }

    /// Runs `fut` with this context as the current one. The context's cancellation token is taken
    /// now (see [Cancellation](Context#cancellation)), so that work spawned in the scope is
    /// cancelled with the call even when it starts after the call ended.
    pub fn scope<F: Future>(mut self, fut: F) -> tokio::task::futures::TaskLocalFuture<Context, F> {
        if let Cancel::Call(source) = &self.cancel {
            self.cancel = match source.token(self.call_id) {
                Some(token) => Cancel::Token(token),
                None => Cancel::Never,
            };
        }
        CURRENT.scope(self, fut)
    }

    /// Runs a served call's handler with this context as the current one, without taking its
    /// token: the call is running, so the token can be made when first asked for.
    pub(crate) fn scope_call<F: Future>(
        self,
        fut: F,
    ) -> tokio::task::futures::TaskLocalFuture<Context, F> {
        CURRENT.scope(self, fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_saturates() {
        let ctx = Context::new().with_timeout(Duration::from_millis(10));
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(ctx.remaining(), Some(Duration::ZERO));
        assert_eq!(Context::new().remaining(), None);
    }

    /// A source that makes one token per call id while the call "runs".
    #[derive(Default)]
    struct Calls(std::sync::Mutex<Option<CancellationToken>>);

    impl CancelSource for Calls {
        fn token(&self, _call_id: u32) -> Option<CancellationToken> {
            self.0.lock().unwrap().clone()
        }
    }

    #[tokio::test]
    async fn a_scope_takes_the_token_while_the_call_runs() {
        let calls = Arc::new(Calls::default());
        let token = CancellationToken::new();
        *calls.0.lock().unwrap() = Some(token.clone());
        let peer = PeerAddr::Memory(Arc::from("ctx"), 1);
        let ctx = Context::for_call(1, None, Metadata::new(), peer, calls.clone());
        let scoped = ctx.clone().scope(async {
            // The call ended meanwhile: the scope already holds its token.
            Context::current_deadline_and_cancellation().1
        });
        *calls.0.lock().unwrap() = None;
        let seen = scoped.await.expect("taken when the scope was made");
        assert!(ctx.cancellation().is_none(), "asked after the call ended");
        token.cancel();
        assert!(seen.is_cancelled());
        assert!(Context::current_deadline_and_cancellation().1.is_none());
        assert!(!Context::new().is_cancelled());
        assert!(Context::new().with_cancellation(token).is_cancelled());
    }

    #[tokio::test]
    async fn nested_scopes() {
        let outer = Context::new().with_timeout(Duration::from_secs(10));
        outer
            .scope(async {
                assert!(Context::current_deadline().is_some());
                Context::new()
                    .scope(async { assert!(Context::current_deadline().is_none()) })
                    .await;
                assert!(Context::current_deadline().is_some());
            })
            .await;
    }
}
