//! The wall clock of the per-message paths (message IDs, expiry checks, the rate limiter, token
//! timetables): the kernel's coarse clock, in milliseconds since the epoch.
//!
//! Why not `SystemTime::now()`: it reads the hardware counter, about 25 ns here, and a QoS 0
//! message read it five times (4.8 % of the broker's CPU at saturation, measured with perf). The
//! coarse clock is the time of the kernel's last tick, a plain memory read, at most one tick
//! (1 – 4 ms) behind: finer than anything it decides (expiry in seconds, token expiry in
//! seconds, a rate limiter with a one-second burst), and never ahead of the precise clock.

/// Milliseconds since the Unix epoch, at most one kernel tick old.
#[cfg(target_os = "linux")]
pub fn now_ms() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame; the call writes only into it.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000;
    }
    common::time::now_ms()
}

/// Elsewhere: the precise clock.
#[cfg(not(target_os = "linux"))]
pub fn now_ms() -> i64 {
    common::time::now_ms()
}

/// Milliseconds on a clock that never steps back (since boot on Linux), at most one kernel tick
/// old: for intervals, which a wall clock set back by NTP would stretch.
#[cfg(target_os = "linux")]
pub fn monotonic_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as in `now_ms`.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
        return ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1_000_000.0;
    }
    precise_monotonic_ms()
}

#[cfg(not(target_os = "linux"))]
pub fn monotonic_ms() -> f64 {
    precise_monotonic_ms()
}

fn precise_monotonic_ms() -> f64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn follows_the_precise_clock_within_a_tick_and_never_leads() {
        for _ in 0..1_000 {
            let coarse = super::now_ms();
            let precise = common::time::now_ms();
            assert!(coarse <= precise, "coarse {coarse} ahead of {precise}");
            assert!(precise - coarse <= 20, "coarse {coarse} far behind {precise}");
        }
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let start = super::monotonic_ms();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let passed = super::monotonic_ms() - start;
        assert!((40.0..1_000.0).contains(&passed), "{passed} ms");
    }
}
