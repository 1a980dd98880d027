//! Admission: the checks a request passes, before any handler or layer sees it, and the
//! refusals of those that fail one. A refusal here means no handler ran, so it is marked not
//! processed (`rpc-not-processed`), but for a body that cannot be decompressed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rpc_codec::CodecId;
use tokio::time::Instant;

use super::{GlobalSlot, ServerRole};
use crate::protocol;
use crate::server::service::Dispatch;
use crate::status::{Code, Delivery, Status};

/// A request that passed every check and may run.
pub(super) struct Admitted {
    pub(super) svc: Arc<dyn Dispatch>,
    pub(super) codec: CodecId,
    pub(super) body: Bytes,
    pub(super) slot: GlobalSlot,
    /// Counted from the read that brought the frame.
    pub(super) deadline: Option<Instant>,
}

/// Why a call gets an error before any handler sees it. Overload refusals (an expired deadline, a
/// queue delay over the limit) carry a fixed message so that refusing allocates nothing.
pub(super) enum Refusal {
    Quick(Code, &'static str),
    Status(Status),
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Refusal {
        Refusal::Status(status)
    }
}

impl ServerRole {
    /// The checks a request passes before any handler sees it, in this order: its deadline and
    /// its queue delay (both before the body is touched), the codec, the body's compression, the
    /// connection's limit, the service's existence (`routed`: the service the path names, if the
    /// server has it) and the server's limit on calls in flight.
    /// Every refusal but an undecompressable body is marked unprocessed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &self,
        id: u32,
        service: &str,
        routed: Option<Arc<dyn Dispatch>>,
        codec: u8,
        flags: u8,
        timeout_us: u64,
        body: Bytes,
    ) -> Result<Admitted, Refusal> {
        let deadline = self.check_time(timeout_us)?;
        let codec = self.check_codec(id, codec)?;
        let body = self.decompress(id, flags, body)?;
        self.check_connection_limit(id)?;
        let svc = routed.ok_or_else(|| self.unknown_service(id, service))?;
        let slot = self.reserve_global_slot(id)?;
        Ok(Admitted {
            svc,
            codec,
            body,
            slot,
            deadline,
        })
    }

    /// Never starts a call whose deadline (counted from the read of its frame) has passed, nor,
    /// with `Server::max_queue_delay`, one that waited longer than that for its handler. Reads
    /// the clock only when the call has a deadline or the server a queue-delay limit.
    fn check_time(&self, timeout_us: u64) -> Result<Option<Instant>, Refusal> {
        let max_delay = self.shared.overload.max_delay();
        let deadline = self.batch.deadline(timeout_us);
        if deadline.is_none() && max_delay.is_none() {
            return Ok(None);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Err(Refusal::Quick(
                Code::DeadlineExceeded,
                "deadline exceeded before a handler could start the call; not processed",
            ));
        }
        if self.shared.overload.over_limit(&self.batch, now) {
            return Err(Refusal::Quick(
                Code::ResourceExhausted,
                "overloaded: the call waited, or would wait, longer than the server's max queue \
                 delay before a handler could start it; not processed",
            ));
        }
        Ok(deadline)
    }

    fn check_codec(&self, id: u32, codec: u8) -> Result<CodecId, Status> {
        let codec = CodecId::new(codec);
        let accepted = self.shared.local.codec_set();
        if accepted.contains(codec) {
            return Ok(codec);
        }
        let msg = format!("this server does not accept the {codec} codec; it accepts: {accepted}");
        tracing::debug!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::unimplemented(msg).with_delivery(Delivery::Unprocessed))
    }

    fn decompress(&self, id: u32, flags: u8, body: Bytes) -> Result<Bytes, Status> {
        if flags & protocol::flags::COMPRESSED == 0 {
            return Ok(body);
        }
        rpc_codec::decompress(&body, self.shared.local.max_frame_size as usize).map_err(|e| {
            tracing::warn!(peer = %self.peer, call_id = id, error = %e, "undecodable compressed request");
            Status::invalid_argument(format!("request body could not be decompressed: {e}"))
        })
    }

    fn check_connection_limit(&self, id: u32) -> Result<(), Status> {
        let limit = self.shared.local.max_concurrent_calls;
        if self.running.len() < limit as usize {
            return Ok(());
        }
        let msg = format!("too many calls in flight on this connection (limit {limit})");
        tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::resource_exhausted(msg).with_delivery(Delivery::Unprocessed))
    }

    fn unknown_service(&self, id: u32, service: &str) -> Status {
        let msg = format!("unknown service {service:?}");
        tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
        Status::unimplemented(msg).with_delivery(Delivery::Unprocessed)
    }

    fn reserve_global_slot(&self, id: u32) -> Result<GlobalSlot, Status> {
        let shared = &self.shared;
        if shared.in_flight.fetch_add(1, Ordering::AcqRel) < shared.max_calls {
            return Ok(GlobalSlot(shared.clone()));
        }
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        let msg = format!(
            "server is at its limit of {} calls in flight",
            shared.max_calls
        );
        tracing::warn!(peer = %self.peer, call_id = id, "{msg}");
        Err(Status::resource_exhausted(msg).with_delivery(Delivery::Unprocessed))
    }
}

/// Splits a method path at its last `/` into service and method (`docs/protocol.md` §5), or
/// says why it cannot be one: not UTF-8 is `InvalidArgument`, no `/` is `Unimplemented` (no
/// service can have that name). Both are refusals before any handler: not processed.
pub(super) fn split_path(path: &[u8]) -> Result<(&str, &str), Status> {
    let Ok(path) = std::str::from_utf8(path) else {
        return Err(Status::invalid_argument("method path is not UTF-8")
            .with_delivery(Delivery::Unprocessed));
    };
    path.rsplit_once('/').ok_or_else(|| {
        Status::unimplemented(format!(
            "method path {path:?} is not of the form package.Service/Method"
        ))
        .with_delivery(Delivery::Unprocessed)
    })
}
