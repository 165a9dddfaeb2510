//! Measuring how long a change takes to reach a broker: retry a fresh connection until it is accepted,
//! or watch a live one until the broker closes it.

use std::time::{Duration, Instant};

use rumqttc::{Event, EventLoop, MqttOptions, Packet, Publish};
use test_support::mqtt;
use tokio::time::timeout;

/// Connects with fresh options until the broker accepts; returns the time from `since`.
pub async fn until_accepted(since: Instant, opts: impl Fn() -> MqttOptions) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        if let Ok((client, ev, _)) = mqtt::connect(opts()).await {
            let elapsed = since.elapsed();
            let _ = client.disconnect().await;
            mqtt::drive(ev);
            return elapsed;
        }
        assert!(Instant::now() < deadline, "still refused 10 s after the change");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls a live connection until the broker closes it; returns the elapsed time from `since` and the
/// publishes that arrived before the close (e.g. `$SYS/tokenInvalidNotice`).
pub async fn until_closed(since: Instant, ev: &mut EventLoop) -> (Duration, Vec<Publish>) {
    let mut got = Vec::new();
    loop {
        match timeout(Duration::from_secs(10), ev.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push(p),
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return (since.elapsed(), got),
            Err(_) => panic!("the connection was still open 10 s after the change"),
        }
    }
}

/// Nearest-rank percentile of the samples in milliseconds.
pub fn percentile_ms(samples: &[Duration], p: f64) -> f64 {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * ms.len() as f64).ceil().max(1.0) as usize;
    ms[rank.min(ms.len()) - 1]
}

/// Prints the figures and checks the 1 s promise (docs/spec.md 5: "within about 1 s").
pub fn report(what: &str, samples: &[Duration]) {
    let p50 = percentile_ms(samples, 50.0);
    let p99 = percentile_ms(samples, 99.0);
    println!(
        "propagation {what}: n={} p50={p50:.1} ms p99={p99:.1} ms",
        samples.len()
    );
    assert!(p99 < 1000.0, "{what}: p99 {p99:.1} ms is over the promised 1 s");
}
