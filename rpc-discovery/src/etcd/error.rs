//! What can go wrong talking to etcd, and how it reaches a caller: as a
//! [`DiscoveryError::Backend`] whose source is the etcd client's error.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use tokio::time::timeout;

use crate::error::DiscoveryError;

/// The backend name in errors.
pub(super) const BACKEND: &str = "etcd";

/// gRPC's `NOT_FOUND` status code: what etcd answers when asked about a lease it does not know
/// (`etcdserver: requested lease not found`).
const GRPC_NOT_FOUND: i32 = 5;

/// A failed step of talking to etcd: what the registry was doing, and why it failed.
#[derive(Debug)]
pub(super) struct CallError {
    /// The step, e.g. `granting a lease`.
    what: &'static str,
    cause: Cause,
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Cause {
    /// The etcd client reported an error.
    #[error(transparent)]
    Etcd(etcd_client::Error),
    /// etcd did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// etcd answered with an error message.
    #[error("{0}")]
    Refused(String),
    /// etcd's answer lacked a part it always has.
    #[error("no {0} in the answer")]
    Missing(&'static str),
    /// A stream ended.
    #[error("it ended")]
    Ended,
    /// A keep-alive stream went unanswered for this long.
    #[error("no answer for {0:?}")]
    Silent(Duration),
    /// The revision a watch was to resume from has been compacted away.
    #[error("revision {revision} was compacted (oldest kept: {oldest}); listing again")]
    Compacted {
        /// The revision the watch asked for.
        revision: i64,
        /// The oldest revision etcd keeps.
        oldest: i64,
    },
    /// etcd canceled a watch.
    #[error("etcd canceled it: {0}")]
    Canceled(String),
    /// etcd answers from a store older than what the watch has seen: it was restored from a
    /// backup (or lost its data).
    #[error(
        "etcd's revision went back from {seen} to {now} (restored from a backup?); listing again"
    )]
    RevisionWentBack {
        /// The newest revision the watch had seen.
        seen: i64,
        /// The revision etcd reports now.
        now: i64,
    },
    /// etcd answers as another cluster than the one listed.
    #[error("etcd's cluster id changed from {old:#x} to {new:#x}; listing again")]
    NewCluster {
        /// The cluster the watch had listed.
        old: u64,
        /// The cluster answering now.
        new: u64,
    },
}

impl CallError {
    /// `what` failed because of `cause`.
    pub(super) fn new(what: &'static str, cause: Cause) -> CallError {
        CallError { what, cause }
    }

    /// `what` failed with the etcd client's error `e`.
    pub(super) fn etcd(what: &'static str, e: etcd_client::Error) -> CallError {
        CallError::new(what, Cause::Etcd(e))
    }

    /// `true` if etcd says the lease does not exist (it expired or was revoked).
    pub(super) fn lease_not_found(&self) -> bool {
        match &self.cause {
            // etcd-client reports the first keep-alive answer of a lease etcd does not know (TTL
            // 0) as this variant; its only other use, a request channel that closed, cannot
            // happen on a stream that is being opened.
            Cause::Etcd(etcd_client::Error::LeaseKeepAliveError(_)) => true,
            Cause::Etcd(etcd_client::Error::GRpcStatus(s)) => i32::from(s.code()) == GRPC_NOT_FOUND,
            _ => false,
        }
    }
}

/// `what: cause`, for logs.
impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

/// The step becomes the context; the etcd client's error (or the cause) the source.
impl From<CallError> for DiscoveryError {
    fn from(e: CallError) -> DiscoveryError {
        let source: Box<dyn Error + Send + Sync> = match e.cause {
            Cause::Etcd(etcd) => Box::new(etcd),
            other => Box::new(other),
        };
        DiscoveryError::backend(BACKEND, e.what, source)
    }
}

/// Runs the etcd call `call` (the step `what`) under `limit`.
pub(super) async fn limited<T>(
    limit: Duration,
    what: &'static str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CallError::etcd(what, e)),
        Err(_) => Err(CallError::new(what, Cause::Timeout(limit))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etcd_error_is_the_source() {
        let e = CallError::etcd(
            "granting a lease",
            etcd_client::Error::InvalidArgs("bad".into()),
        );
        let err = DiscoveryError::from(e);
        assert_eq!(
            err.to_string(),
            "etcd registry: granting a lease: invalid arguments: bad"
        );
        let source = err.source().expect("a source");
        assert!(source.downcast_ref::<etcd_client::Error>().is_some());
    }

    #[test]
    fn lease_not_found_is_recognised_by_type() {
        // A gRPC NOT_FOUND status, built without naming tonic (this crate does not depend on it).
        let not_found = std::io::Error::new(std::io::ErrorKind::NotFound, "lease not found");
        let gone = CallError::etcd(
            "revoking the lease",
            etcd_client::Error::GRpcStatus(not_found.into()),
        );
        assert!(gone.lease_not_found());
        let unavailable = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let down = CallError::etcd(
            "revoking the lease",
            etcd_client::Error::GRpcStatus(unavailable.into()),
        );
        assert!(!down.lease_not_found());
        let timeout = CallError::new("revoking the lease", Cause::Timeout(Duration::from_secs(1)));
        assert!(!timeout.lease_not_found());
    }
}
