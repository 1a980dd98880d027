//! The retry budget: how many extra attempts (retries, hedges) a client may add to its load.
//!
//! A windowed deposit/withdraw counter of our own. tower's `TpsBudget`, which this replaced,
//! rotates its slots only when a call comes, and a rotation that comes later than one slot
//! clears the next slot as well: with a call every 1.05 s it forgot its history after 6.3 s of
//! its 10 s window. Its floor then refilled faster than configured, and paced retries against
//! dead servers reached 53% extra attempts where ratio and floor allowed 40%. Here every slot is
//! stamped with the period it counts, so a slot is either in the window or ignored, and deposits
//! and withdrawals are counted apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The slots a window is divided into: history leaves the window one slot (a tenth) at a time.
const SLOTS: usize = 10;

/// Budget amounts are counted in thousandths of a retry, so that a ratio with three decimals is
/// exact (0.2 earns 200 per call; a retry costs 1000).
const MILLI: u64 = 1000;

/// Caps extra attempts (retries, hedges) at a share of recent calls plus a small floor per
/// second, as Finagle and Linkerd do, so that when everything fails the extra load is bounded.
///
/// The rule, checked before each extra attempt: over the last `window` (the current tenth of it
/// and the nine before),
///
/// ```text
/// extra attempts + 1  ≤  ratio × calls  +  min_per_sec × window
/// ```
///
/// A call counts once however many layers it passes through with the same budget (see
/// [`deposit`](RetryBudget::deposit)). The floor lets a client that makes few calls still retry
/// a few; it is granted per window, so a burst may spend a whole window's floor at once, and over
/// a long outage extra attempts stay within `ratio × calls + min_per_sec × elapsed` plus one
/// window's worth.
///
/// Clones share one budget: give the same budget to the [`RetryLayer`](super::RetryLayer), the
/// [`HedgeLayer`](crate::middleware::HedgeLayer) and any other retry path so that all of them
/// spend from it.
///
/// ```
/// use std::time::Duration;
/// use rpc_core::middleware::RetryBudget;
///
/// // 10% of calls, no floor.
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.1);
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.withdraw());
/// assert!(!budget.withdraw());
/// ```
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Window>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl RetryBudget {
    /// Extra attempts may be up to `ratio` of the calls of the last `window`, plus `min_per_sec`
    /// for each second of the window. Default: 20% over 10 s, plus 10 per second.
    ///
    /// `window` is raised to 10 ms if shorter; `ratio` is clamped to `0.0..=1000.0` (NaN counts
    /// as 0) and used to three decimals.
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> RetryBudget {
        let window = window.max(Duration::from_millis(10));
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            f64::from(ratio).clamp(0.0, 1000.0)
        };
        let reserve = f64::from(min_per_sec) * window.as_secs_f64() * MILLI as f64;
        RetryBudget {
            inner: Arc::new(Window {
                start: Instant::now(),
                slot_nanos: (window.as_nanos() / SLOTS as u128).max(1),
                deposits: Default::default(),
                withdrawals: Default::default(),
                credit: (ratio * MILLI as f64).round() as u64,
                reserve: reserve.min(u64::MAX as f64 / 2.0) as u64,
                spend: Mutex::new(()),
            }),
        }
    }

    /// Counts a call, which earns `ratio` of an extra attempt for the window.
    ///
    /// The retry and hedge layers deposit once per call whatever the number of layers sharing
    /// the budget (a call's [`Attempts`](crate::middleware::Attempts) remembers it); another retry
    /// path deposits for each call it may add attempts to.
    pub fn deposit(&self) {
        let slot = self.inner.slot_now();
        add(&self.inner.deposits[slot as usize % SLOTS], slot);
    }

    /// Takes one extra attempt from the budget; `false` (and nothing taken) if the window's
    /// calls and floor do not cover it.
    pub fn withdraw(&self) -> bool {
        let w = &self.inner;
        // Check and take as one step, so that concurrent withdrawals cannot both take the last
        // one. Deposits only add and need no lock.
        let _spend = w.spend.lock().unwrap_or_else(|e| e.into_inner());
        let slot = w.slot_now();
        let deposits = sum(&w.deposits, slot);
        let withdrawals = sum(&w.withdrawals, slot);
        let earned = deposits.saturating_mul(w.credit).saturating_add(w.reserve);
        if withdrawals.saturating_add(1).saturating_mul(MILLI) > earned {
            return false;
        }
        add(&w.withdrawals[slot as usize % SLOTS], slot)
    }

    /// The extra attempts the budget would allow now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rpc_core::middleware::RetryBudget;
    ///
    /// let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.5);
    /// assert_eq!(budget.available(), 10); // the floor: 1 per second of the window
    /// budget.deposit();
    /// budget.deposit();
    /// assert_eq!(budget.available(), 11);
    /// ```
    pub fn available(&self) -> u64 {
        let w = &self.inner;
        let slot = w.slot_now();
        let earned = sum(&w.deposits, slot)
            .saturating_mul(w.credit)
            .saturating_add(w.reserve);
        (earned / MILLI).saturating_sub(sum(&w.withdrawals, slot))
    }

    /// An identity of the shared budget, for counting a call once per budget.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

/// The counters of one budget: per slot, the calls and the extra attempts of one period.
#[derive(Debug)]
struct Window {
    /// Periods are counted from here.
    start: Instant,
    /// The length of a period (a tenth of the window), in nanoseconds.
    slot_nanos: u128,
    /// Per slot: the period it counts (high 32 bits) and the calls in it (low 32 bits).
    deposits: [AtomicU64; SLOTS],
    /// Per slot: the period it counts and the extra attempts taken in it.
    withdrawals: [AtomicU64; SLOTS],
    /// Thousandths of an attempt earned per call.
    credit: u64,
    /// Thousandths of an attempt granted per window (the floor).
    reserve: u64,
    /// Held while checking and taking a withdrawal.
    spend: Mutex<()>,
}

impl Window {
    /// The number of the current period (wrapping after 2³² periods).
    fn slot_now(&self) -> u32 {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        (elapsed.as_nanos() / self.slot_nanos) as u32
    }
}

fn pack(period: u32, count: u32) -> u64 {
    (u64::from(period) << 32) | u64::from(count)
}

fn unpack(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// Adds one to `cell` for `period`, starting it afresh if it holds an older period; `false` if
/// the count is full (4 billion in one period) and nothing was added.
fn add(cell: &AtomicU64, period: u32) -> bool {
    let mut cur = cell.load(Ordering::Acquire);
    loop {
        let (p, n) = unpack(cur);
        let next = match (p == period, n.checked_add(1)) {
            (false, _) => pack(period, 1),
            (true, Some(n)) => pack(period, n),
            (true, None) => return false,
        };
        match cell.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// The counts of the slots whose period is `now` or one of the `SLOTS - 1` before it.
fn sum(cells: &[AtomicU64; SLOTS], now: u32) -> u64 {
    cells
        .iter()
        .map(|c| unpack(c.load(Ordering::Acquire)))
        .filter(|(p, _)| now.wrapping_sub(*p) < SLOTS as u32)
        .map(|(_, n)| u64::from(n))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[tokio::test(start_paused = true)]
    async fn the_ratio_is_exact() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.1);
        let mut taken = 0;
        for _ in 0..100 {
            budget.deposit();
            while budget.withdraw() {
                taken += 1;
            }
        }
        assert_eq!(taken, 10);
        // 0.3 is not a power of two: still exact to the call.
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.3);
        for _ in 0..10 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_is_per_window_and_comes_back_when_its_spending_leaves_the_window() {
        let budget = RetryBudget::new(Duration::from_secs(10), 2, 0.0);
        let mut taken = 0;
        while budget.withdraw() {
            taken += 1;
        }
        assert_eq!(taken, 20, "2 per second of a 10 s window");
        // Nothing comes back while the spending is in the window...
        tokio::time::advance(secs(9.5)).await;
        assert!(!budget.withdraw());
        // ...and all of it once its slot has left.
        tokio::time::advance(secs(0.6)).await;
        assert_eq!(budget.available(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_are_remembered_for_the_whole_window_under_paced_calls() {
        // tower's TpsBudget forgot these after about 5.5 s when calls came every 1.1 s.
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 1.0);
        for _ in 0..100 {
            budget.deposit();
        }
        for step in 1..=8 {
            tokio::time::advance(secs(1.1)).await;
            budget.deposit();
            assert_eq!(budget.available(), 100 + step, "after {step} steps");
        }
        tokio::time::advance(secs(1.3)).await;
        assert_eq!(budget.available(), 8, "the first slot has left the window");
    }

    #[tokio::test(start_paused = true)]
    async fn paced_failures_stay_within_ratio_and_floor() {
        // Every call fails and wants two retries; calls come every 20 ms for 120 s.
        let (ratio, floor, window) = (0.2, 10u32, 10.0);
        let budget = RetryBudget::new(secs(window), floor, ratio as f32);
        let (mut calls, mut retries) = (0u64, 0u64);
        for _ in 0..6000 {
            budget.deposit();
            calls += 1;
            for _ in 0..2 {
                if budget.withdraw() {
                    retries += 1;
                }
            }
            tokio::time::advance(secs(0.02)).await;
        }
        let elapsed = 120.0;
        let bound = ratio * calls as f64 + f64::from(floor) * (elapsed + window);
        assert!(
            retries as f64 <= bound,
            "{retries} retries for {calls} calls"
        );
        // And the budget is used, not starved.
        assert!(retries as f64 >= ratio * calls as f64 + f64::from(floor) * elapsed * 0.9);
    }
}
