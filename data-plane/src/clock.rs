//! The wall clock of the per-message paths (message IDs, expiry checks, the rate limiter, token
//! timetables): the kernel's coarse clock, in milliseconds since the epoch.
//!
//! Why not `SystemTime::now()`: it reads the hardware counter, about 25 ns here, and a QoS 0
//! message read it five times (4.8 % of the broker's CPU at saturation, measured with perf). The
//! coarse clock is the time of the kernel's last tick, a plain memory read, at most one tick
//! (1 – 4 ms) behind: finer than anything it decides (expiry in seconds, token expiry in
//! seconds, a rate limiter with a one-second burst), and never ahead of the precise clock.

/// Milliseconds since the Unix epoch, at most one kernel tick old.
pub fn now_ms() -> i64 {
    #[cfg(target_os = "linux")]
    if let Some(ts) = read(libc::CLOCK_REALTIME_COARSE) {
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000;
    }
    common::time::now_ms()
}

/// Milliseconds on a clock that never steps back, at most one kernel tick old: for intervals,
/// which a wall clock set back by NTP would stretch.
pub fn monotonic_ms() -> f64 {
    #[cfg(target_os = "linux")]
    {
        // Without the coarse clock (kernels before 2.6.32), the precise one of the same epoch.
        let ts = read(libc::CLOCK_MONOTONIC_COARSE)
            .or_else(|| read(libc::CLOCK_MONOTONIC))
            .expect("every Linux has CLOCK_MONOTONIC");
        ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1_000_000.0
    }
    #[cfg(not(target_os = "linux"))]
    {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1000.0
    }
}

/// The time of `clock`; None when this kernel does not have it.
#[cfg(target_os = "linux")]
fn read(clock: libc::clockid_t) -> Option<libc::timespec> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame; the call writes only into it.
    (unsafe { libc::clock_gettime(clock, &mut ts) } == 0).then_some(ts)
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
