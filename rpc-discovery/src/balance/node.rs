//! One live endpoint of a balanced channel: its instance, its connection, its counters, its
//! health and its circuit breaker; and a call sent to it.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpc_core::client::{ChannelState, OpenStream};
use rpc_core::middleware::{Attempts, BreakerState, CircuitBreaker};
use rpc_core::stream::{RawSender, RawStreaming};
use rpc_core::{Channel, Code, Delivery, Request, Response, Status};
use tokio::time::Instant;

use super::config::BalanceConfig;
use super::health::{endpoint_failed, Availability, Health};
use crate::instance::Instance;

/// One live endpoint and what the balancer knows about it.
pub(crate) struct Node {
    pub(super) instance: Instance,
    pub(super) channel: Channel,
    /// Calls in flight.
    pub(super) outstanding: AtomicU32,
    /// Calls sent so far.
    pub(super) picks: AtomicUsize,
    /// Times it was chosen in panic mode (every endpoint unavailable).
    pub(super) panic_picks: AtomicUsize,
    pub(super) health: Health,
    pub(super) breaker: Option<CircuitBreaker>,
}

impl Node {
    /// The endpoint of `instance`, reached through `channel`.
    pub(super) fn new(instance: Instance, channel: Channel, config: &BalanceConfig) -> Node {
        Node {
            breaker: config.breaker.as_ref().map(|(c, stats)| {
                CircuitBreaker::new(instance.addr.clone(), c.clone(), stats.clone())
            }),
            instance,
            channel,
            outstanding: AtomicU32::new(0),
            picks: AtomicUsize::new(0),
            panic_picks: AtomicUsize::new(0),
            health: Health::new(config.default_rtt),
        }
    }

    /// The instance's address.
    pub(crate) fn addr(&self) -> &str {
        &self.instance.addr
    }

    /// Whether it may take a call at `now`: not while its breaker is open, otherwise as its
    /// health says.
    pub(super) fn availability(&self, now: Instant) -> Availability {
        if self
            .breaker
            .as_ref()
            .is_some_and(|b| b.state() == BreakerState::Open)
        {
            return Availability::Ejected;
        }
        self.health.availability(now)
    }

    /// What a call costs here, for P2C: the latency estimate times the calls in flight plus one.
    pub(super) fn cost(&self, now: Instant, decay: Duration) -> f64 {
        let ewma = self.health.latency().estimate(now, decay);
        ewma * f64::from(self.outstanding.load(Ordering::Relaxed) + 1)
    }

    /// Sends `req` here (through the breaker when there is one) and learns from the outcome.
    pub(super) async fn call(
        &self,
        req: Request,
        config: &BalanceConfig,
    ) -> Result<Response, Status> {
        if let Some(attempts) = req.extensions().get::<Arc<Attempts>>() {
            attempts.record(&self.instance.addr);
        }
        let admission = match &self.breaker {
            Some(b) => Some(b.admit()?),
            None => None,
        };
        self.picks.fetch_add(1, Ordering::Relaxed);
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(self);
        let started = Instant::now();
        let result = self.channel.unary(req).await;
        drop(guard);
        if let (Some(b), Some(a)) = (&self.breaker, admission) {
            b.record_result(a, &result);
        }
        self.record(config, started.elapsed(), &result);
        result
    }

    /// Opens a stream here (through the breaker when there is one) and learns from the open's
    /// outcome: only a failure to open says something of the endpoint.
    pub(super) async fn open_stream(
        &self,
        req: Request,
        stream_flags: u8,
        config: &BalanceConfig,
    ) -> Result<(Option<RawSender>, RawStreaming), Status> {
        let admission = match &self.breaker {
            Some(b) => Some(b.admit()?),
            None => None,
        };
        self.picks.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let opened = OpenStream::open_stream(&self.channel, req, stream_flags).await;
        if let (Some(b), Some(a)) = (&self.breaker, admission) {
            b.record_error(a, opened.as_ref().err());
        }
        if let Err(status) = &opened {
            self.record(config, started.elapsed(), &Err(status.clone()));
        }
        opened
    }

    fn record(&self, config: &BalanceConfig, rtt: Duration, result: &Result<Response, Status>) {
        match result {
            Err(status) if endpoint_failed(status) => {
                if status.code() == Code::DeadlineExceeded {
                    // No answer for `rtt`: at least that slow, as far as latency-aware picks go.
                    self.health.latency().observe(rtt, config.ewma_decay);
                }
                let connection_lost = self.channel.state() == ChannelState::TransientFailure;
                self.health.failed(
                    &self.instance.addr,
                    config.eject_after,
                    &config.ejection,
                    connection_lost,
                );
            }
            // Never sent, for a reason that is not the endpoint's (the deadline passed first, a
            // local limit): it says nothing about the endpoint, and a probe stays unproven.
            Err(status) if status.delivery() == Delivery::NotSent => {}
            // Answered: successfully, or refusing the request.
            _ => self
                .health
                .succeeded(&self.instance.addr, rtt, config.ewma_decay),
        }
    }
}

/// Counts a call in flight until dropped (finished or cancelled).
struct InFlight<'a>(&'a Node);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
        // A probe that was cancelled proves nothing: let another call probe.
        self.0.health.end_probe();
    }
}
