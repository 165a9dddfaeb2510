//! What stands between the Internet and Argon2 at login: a rate limit per client address (every
//! attempt counts), one per username (failures count), and a cap on password hashes computed at once.
//! Over a rate limit the answer is 429 `TooManyRequests` with `Retry-After`; over the hash cap it is
//! 503 `ServerBusy` at once, instead of queueing behind the hashes (each costs tens of milliseconds of
//! a core and 19 MiB of memory).
//!
//! Limits are token buckets (capacity = the per-minute rate, refilled continuously). Their state is in
//! memory, per process, and bounded: at most `MAX_ENTRIES` addresses and as many usernames; when full,
//! buckets that have refilled completely (they hold no information) go first, then the least recently
//! used. IPv6 addresses count by /64 (one host usually has the whole prefix). Usernames are kept as
//! SHA-256, so long names cost nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Buckets kept per kind (addresses, usernames).
pub(crate) const MAX_ENTRIES: usize = 10_000;

pub(crate) struct LoginGuard {
    by_address: Mutex<Buckets<IpAddr>>,
    by_user: Mutex<Buckets<[u8; 32]>>,
    hashes: Arc<Semaphore>,
}

/// Held while a password is hashed.
pub(crate) struct HashPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl LoginGuard {
    pub fn new(attempts_per_minute: u32, failures_per_minute: u32, max_concurrent_hashes: usize) -> Self {
        Self {
            by_address: Mutex::new(Buckets::new(attempts_per_minute, MAX_ENTRIES)),
            by_user: Mutex::new(Buckets::new(failures_per_minute, MAX_ENTRIES)),
            hashes: Arc::new(Semaphore::new(max_concurrent_hashes.max(1))),
        }
    }

    /// Lets one attempt by `address` for `username` go ahead, or says why not.
    pub fn admit(&self, address: IpAddr, username: &str) -> Result<HashPermit, ApiError> {
        let now = Instant::now();
        if let Err(wait) = lock(&self.by_address).take(address_key(address), now) {
            crate::metrics::login_refused("address");
            return Err(too_many(wait));
        }
        if let Err(wait) = lock(&self.by_user).peek(user_key(username), now) {
            crate::metrics::login_refused("username");
            return Err(too_many(wait));
        }
        match self.hashes.clone().try_acquire_owned() {
            Ok(permit) => Ok(HashPermit(permit)),
            Err(_) => {
                crate::metrics::login_refused("busy");
                Err(ApiError::ServerBusy)
            }
        }
    }

    /// Counts a failed attempt against `username`.
    pub fn failed(&self, username: &str) {
        let _ = lock(&self.by_user).take(user_key(username), Instant::now());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn too_many(wait: Duration) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

/// IPv4 as is; IPv6 by its /64 (an IPv4-mapped one as the IPv4 address).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn user_key(username: &str) -> [u8; 32] {
    Sha256::digest(username.as_bytes()).into()
}

/// Token buckets by key, at most `max` of them.
struct Buckets<K> {
    map: HashMap<K, Bucket>,
    capacity: f64,
    per_sec: f64,
    max: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    fn new(per_minute: u32, max: usize) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Self {
            map: HashMap::new(),
            capacity,
            per_sec: capacity / 60.0,
            max: max.max(1),
        }
    }

    /// The bucket of `key` refilled up to `now` (a new one is full).
    fn current(&self, key: K, now: Instant) -> Bucket {
        match self.map.get(&key) {
            Some(b) => Bucket {
                tokens: (b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * self.per_sec)
                    .min(self.capacity),
                updated: now,
            },
            None => Bucket {
                tokens: self.capacity,
                updated: now,
            },
        }
    }

    /// Whether `key` has a token now, without using it; else how long until it has one.
    fn peek(&self, key: K, now: Instant) -> Result<(), Duration> {
        let b = self.current(key, now);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        }
    }

    /// Uses a token of `key`; else how long until it has one.
    fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        let mut b = self.current(key, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_sec))
        };
        if !self.map.contains_key(&key) && self.map.len() >= self.max {
            self.evict(now);
        }
        self.map.insert(key, b);
        result
    }

    /// Makes room for one: drops every bucket that has refilled by now, else the least recently used.
    fn evict(&mut self, now: Instant) {
        let (capacity, per_sec) = (self.capacity, self.per_sec);
        self.map
            .retain(|_, b| b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_sec < capacity);
        if self.map.len() >= self.max
            && let Some(oldest) = self.map.iter().min_by_key(|(_, b)| b.updated).map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_and_say_how_long_to_wait() {
        let mut b = Buckets::new(2, 10);
        let t0 = Instant::now();
        assert!(b.take(1, t0).is_ok());
        assert!(b.take(1, t0).is_ok());
        let wait = b.take(1, t0).unwrap_err();
        assert!((29.0..=30.0).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(b.peek(1, t0 + Duration::from_secs(29)).is_err());
        assert!(b.peek(1, t0 + Duration::from_secs(31)).is_ok());
        assert!(b.take(2, t0).is_ok(), "keys are independent");
    }

    #[test]
    fn memory_is_bounded_and_busy_keys_survive() {
        let mut b = Buckets::new(5, 100);
        let t0 = Instant::now();
        // A key under attack: emptied, and touched again after the flood started.
        for _ in 0..6 {
            let _ = b.take(u32::MAX, t0);
        }
        for k in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(k));
            let _ = b.take(k, now);
            if k % 50 == 0 {
                assert!(b.take(u32::MAX, now).is_err(), "still limited at {k}");
            }
            assert!(b.map.len() <= 100);
        }
        assert!(b.map.contains_key(&u32::MAX));
    }

    #[test]
    fn ipv6_counts_by_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
