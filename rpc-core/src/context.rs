//! The per-call [`Context`]: deadline, metadata, peer and call id, reachable from inside a handler.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::metadata::Metadata;
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
}

impl Context {
    /// An empty context: no deadline, no metadata, no peer.
    pub fn new() -> Context {
        Context::default()
    }

    pub(crate) fn for_call(
        call_id: u32,
        deadline: Option<Instant>,
        metadata: Metadata,
        peer: PeerAddr,
    ) -> Context {
        Context {
            call_id,
            deadline,
            metadata,
            peer: Some(peer),
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

    /// A copy of the context of the call being handled by the current task, if any.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Context::clone).ok()
    }

    /// The deadline of the call being handled by the current task, if any. Cheaper than
    /// [`Context::current`] because nothing is cloned.
    pub fn current_deadline() -> Option<Instant> {
        CURRENT.try_with(|c| c.deadline).ok().flatten()
    }

    /// Runs `fut` with this context as the current one.
    pub fn scope<F: Future>(self, fut: F) -> tokio::task::futures::TaskLocalFuture<Context, F> {
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
