//! Round robin: each endpoint in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The next of `healthy` after the one `next` last gave.
pub(super) fn pick(healthy: &[usize], next: &AtomicUsize) -> usize {
    healthy[next.fetch_add(1, Ordering::Relaxed) % healthy.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_turns() {
        let next = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..6).map(|_| pick(&[3, 5, 8], &next)).collect();
        assert_eq!(picks, [3, 5, 8, 3, 5, 8]);
    }
}
