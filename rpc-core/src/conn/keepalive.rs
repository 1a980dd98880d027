//! Liveness probing of an otherwise quiet connection: a PING after a quiet interval, and the
//! connection declared dead when nothing comes back within the timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::protocol::ProtocolError;

/// The keepalive timer of one connection.
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// Something arrived since the timer was last set.
    heard: bool,
    /// The value of the ping we are waiting to hear back.
    awaiting: Option<u64>,
    sent: u64,
}

impl Keepalive {
    /// Probes after `interval` without input; gives up `timeout` after a probe went unanswered.
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Keepalive {
        Keepalive {
            interval,
            timeout,
            timer: Box::pin(tokio::time::sleep(interval)),
            heard: false,
            awaiting: None,
            sent: 0,
        }
    }

    /// Records that the peer sent something: it is alive.
    pub(crate) fn heard(&mut self) {
        self.heard = true;
    }

    /// Polls the timer: `Ok(Some(v))` asks for a PING with value `v`; an error means the peer
    /// did not answer in time.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Result<Option<u64>, ProtocolError> {
        if self.timer.as_mut().poll(cx).is_pending() {
            return Ok(None);
        }
        let now = Instant::now();
        if self.heard {
            // The peer spoke during the last period: it is alive; probe only after a quiet one.
            self.heard = false;
            self.awaiting = None;
            self.timer.as_mut().reset(now + self.interval);
            let _ = self.timer.as_mut().poll(cx);
            return Ok(None);
        }
        if self.awaiting.is_some() {
            return Err(ProtocolError::KeepaliveTimeout(self.timeout));
        }
        self.sent = self.sent.wrapping_add(1);
        self.awaiting = Some(self.sent);
        self.timer.as_mut().reset(now + self.timeout);
        let _ = self.timer.as_mut().poll(cx);
        Ok(Some(self.sent))
    }
}
