//! The crate's one source of unpredictable bits: temporary names, run ids, object keys.
//!
//! std's randomly keyed SipHash over a process-wide counter and the clock: no RNG
//! dependency, no two calls in a process alike, and no panic where the OS refuses
//! random bytes (`Uuid::now_v7` panics when a seccomp sandbox denies `getrandom`, and a
//! commit must not panic). Each process draws its own keys; a forked child that shares
//! its parent's keys and counter still differs in the nanosecond clock, and every user
//! of these bits survives a collision (`O_EXCL` draws again, a conditional PUT fails).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use uuid::Uuid;

/// 64 unpredictable bits.
pub(crate) fn u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(since_epoch().as_nanos());
    hasher.finish()
}

/// A fresh UUIDv7: the clock's milliseconds, then 74 unpredictable bits.
pub(crate) fn uuid_v7() -> Uuid {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&u64().to_le_bytes());
    random[8..].copy_from_slice(&u64().to_le_bytes()[..2]);
    let millis = since_epoch().as_millis() as u64;
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_differ() {
        let draws: std::collections::BTreeSet<u64> = (0..1000).map(|_| super::u64()).collect();
        assert_eq!(draws.len(), 1000);
    }

    #[test]
    fn uuids_are_version_7_and_differ() {
        let (a, b) = (super::uuid_v7(), super::uuid_v7());
        assert_eq!(a.get_version_num(), 7);
        assert_ne!(a, b);
    }
}
