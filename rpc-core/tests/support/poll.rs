//! The one poll-until helper of the workspace's tests. `rpc-core`'s tests load it through
//! `support/mod.rs`; other crates' tests include this file with `#[path]`, so that there is one
//! definition of "wait until this holds" and it works alike on a real and on a paused tokio clock.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often [`eventually`] checks its condition (tokio time: virtual when the clock is paused).
pub const POLL_EVERY: Duration = Duration::from_millis(5);

/// Polls `cond` every [`POLL_EVERY`] until it holds, and returns how long that took. Fails the test
/// when `limit` (tokio time: real, or virtual under a paused clock) passes first, naming `what`.
///
/// The condition is async so that it may call services; a plain check reads
/// `eventually(limit, "x", || async { flag.load(SeqCst) })`.
#[allow(dead_code)] // not every test binary that includes this file polls
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}
