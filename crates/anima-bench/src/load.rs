//! The load generator: N clients issue one operation in a loop for a fixed
//! time; every latency goes into an HDR histogram; a progress line shows
//! the rate while it runs.

use std::{
    future::Future,
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

/// What one measurement found.
#[derive(Debug, Clone)]
pub struct Stats {
    /// What was measured.
    pub label: String,
    /// Operations completed.
    pub operations: u64,
    /// Operations that failed (not counted in the latencies).
    pub errors: u64,
    /// Operations per second.
    pub throughput: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
}

impl Stats {
    /// One line for the report.
    pub fn line(&self) -> String {
        format!(
            "{:<34} {:>10.0} ops/s   p50 {:>8.2} ms   p99 {:>8.2} ms   p99.9 {:>8.2} ms   ({} ops, {} errors)",
            self.label,
            self.throughput,
            self.p50_us as f64 / 1e3,
            self.p99_us as f64 / 1e3,
            self.p999_us as f64 / 1e3,
            self.operations,
            self.errors
        )
    }

    /// The figures as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "label": self.label,
            "operations": self.operations,
            "errors": self.errors,
            "throughput": self.throughput,
            "p50_ms": self.p50_us as f64 / 1e3,
            "p99_ms": self.p99_us as f64 / 1e3,
            "p999_ms": self.p999_us as f64 / 1e3,
        })
    }
}

/// Runs `operation` on every client in a loop for `duration` and reports.
/// Each client is its own task with its own state (e.g. its own channel).
pub async fn measure<C, F, Fut>(
    label: &str,
    clients: Vec<C>,
    duration: Duration,
    operation: F,
) -> anyhow::Result<Stats>
where
    C: Send + 'static,
    F: Fn(&mut C) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + duration;
    let progress = {
        let done = done.clone();
        let stop = stop.clone();
        let label = label.to_owned();
        tokio::spawn(async move {
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = done.load(Ordering::Relaxed);
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r  {label}: {now} ops, {} ops/s   ", now - last);
                let _ = err.flush();
                last = now;
            }
            let _ = writeln!(std::io::stderr());
        })
    };
    let mut tasks = Vec::new();
    for mut client in clients {
        let operation = operation.clone();
        let done = done.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            // Up to a minute, in microseconds, with 3 significant digits.
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            while Instant::now() < deadline {
                let begun = Instant::now();
                match operation(&mut client).await {
                    Ok(()) => {
                        let micros = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
                        histogram.saturating_record(micros.max(1));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok(histogram)
        }));
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = progress.await;
    Ok(Stats {
        label: label.to_owned(),
        operations: all.len(),
        errors: failed.load(Ordering::Relaxed),
        throughput: all.len() as f64 / elapsed,
        p50_us: all.value_at_quantile(0.5),
        p99_us: all.value_at_quantile(0.99),
        p999_us: all.value_at_quantile(0.999),
    })
}
