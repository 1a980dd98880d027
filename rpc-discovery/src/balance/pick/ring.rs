//! Consistent hashing: a hash ring over the endpoints, keyed by a call's [`HASH_KEY`].

use rpc_core::Request;

/// The metadata key whose value picks the consistent-hashing position of a call (e.g. a user id).
pub const HASH_KEY: &str = "rpc-hash-key";

/// Points per endpoint on the ring: enough that keys spread evenly.
const VNODES: usize = 160;

/// A hash ring: [`VNODES`] points per endpoint, sorted.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// (hash, index of the endpoint), sorted.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring over endpoints at these addresses (indexed in this order).
    pub(crate) fn new<'a>(addrs: impl ExactSizeIterator<Item = &'a str>) -> Ring {
        let mut points = Vec::with_capacity(addrs.len() * VNODES);
        for (idx, addr) in addrs.enumerate() {
            for v in 0..VNODES {
                points.push((fnv1a(format!("{addr}#{v}").as_bytes()), idx));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// For a call with a [`HASH_KEY`]: the first of `healthy` (indices of endpoints, at least
    /// one) at or after the key's position on the ring. Without a key: one of `healthy` at random.
    pub(crate) fn pick(&self, req: &Request, healthy: &[usize]) -> usize {
        match req.metadata().get(HASH_KEY) {
            Some(key) if !self.points.is_empty() => {
                let h = fnv1a(key);
                let start = self.points.partition_point(|(x, _)| *x < h);
                let len = self.points.len();
                (0..len)
                    .map(|k| self.points[(start + k) % len].1)
                    .find(|i| healthy.contains(i))
                    .unwrap_or(healthy[0])
            }
            _ => healthy[fastrand::usize(..healthy.len())],
        }
    }
}

/// FNV-1a, 64 bits, then a finalizer to spread close inputs: stable across processes and
/// versions, so every client maps a key to the same endpoint.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        assert_eq!(fnv1a(b"user-42"), fnv1a(b"user-42"));
        assert_ne!(fnv1a(b"user-42"), fnv1a(b"user-43"));
    }

    #[test]
    fn a_key_skips_unhealthy_endpoints() {
        let ring = Ring::new(["a:1", "b:1", "c:1"].into_iter());
        let mut req = Request::new("x.Y/Z", "");
        req.metadata_mut().insert(HASH_KEY, "user-42");
        let all = ring.pick(&req, &[0, 1, 2]);
        let rest: Vec<usize> = (0..3).filter(|&i| i != all).collect();
        let other = ring.pick(&req, &rest);
        assert_ne!(all, other);
        assert_eq!(ring.pick(&req, &rest), other, "stable");
    }
}
