//! Open-loop load: requests sent at a fixed arrival rate whatever the answers do, each one's
//! latency measured from when it was due rather than when it went out. A stall then counts
//! against every request it held up, not only the one in flight (the correction for
//! coordinated omission), and the percentiles come from an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

pub struct OpenFigures {
    /// The rate asked for, and the rate answered.
    pub rate: f64,
    pub answered: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: usize,
}

/// `total` calls of `call(i)`, the `i`th due `i / rate` seconds after the start.
pub async fn run<F, Fut>(rate: f64, total: usize, call: F) -> OpenFigures
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let mut calls = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let answer = call(i);
        calls.push(tokio::spawn(async move {
            let ok = answer.await;
            (ok, due.elapsed())
        }));
    }
    // Microseconds, up to ten minutes, three significant figures.
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds");
    let mut errors = 0;
    for answered in calls {
        let (ok, latency) = answered.await.expect("a call panicked");
        if !ok {
            errors += 1;
        }
        latencies.saturating_record(latency.as_micros().max(1) as u64);
    }
    let elapsed = start.elapsed();
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    OpenFigures {
        rate,
        answered: total as f64 / elapsed.as_secs_f64(),
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: latencies.max() as f64 / 1000.0,
        errors,
    }
}
