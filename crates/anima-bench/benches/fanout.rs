//! Fan-out: one PostMessage delivered to 1, 100 and 1,000 StreamThread
//! subscribers of a real server process, on PostgreSQL and SQLite.
//!
//! Criterion times one iteration as "post, then wait until every subscriber
//! has the message". Besides that, every subscriber's own delivery latency
//! (from just before the post to its receipt) is kept, and the p50/p99 of
//! those and the server's resident memory are printed per case and written
//! to `target/anima-bench/fanout.json` for `docs/benchmarks.md`.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anima_bench::{Backend, ServerUnderTest, authed, quantile};
use anima_proto::v1::{self as pb, thread_service_client::ThreadServiceClient};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

const SUBSCRIBERS: [usize; 3] = [1, 100, 1_000];
/// Streams per HTTP/2 connection, below the server's concurrency limit.
const STREAMS_PER_CONNECTION: usize = 100;

/// A server with `n` subscribers on one thread, and a client to post.
struct Fanout {
    server: ServerUnderTest,
    token: String,
    work_item_id: String,
    poster: ThreadServiceClient<tonic::transport::Channel>,
    /// Each subscriber reports (iteration, receipt time) here.
    receipts: mpsc::UnboundedReceiver<(u64, Instant)>,
    subscribers: usize,
    next_iteration: u64,
}

impl Fanout {
    async fn start(backend: Backend, subscribers: usize) -> anyhow::Result<Self> {
        // Every subscriber is the admin: lift the per-user limit on live
        // streams (32 by default) above the largest case.
        let server = ServerUnderTest::start_with_env(
            backend,
            &[("ANIMA_RATE_LIMITS_OPEN_STREAMS_PER_USER", "10000")],
        )
        .await?;
        let token = server.admin_token().await?;
        let (_, item) = server
            .project_with_item(
                &token,
                "Fan-out",
                pb::CreateWorkItemRequest {
                    title: "Watched by many".into(),
                    ..Default::default()
                },
            )
            .await?;
        // Subscribe from the newest event: only what the benchmark posts.
        let mut probe = ThreadServiceClient::new(server.channel().await?)
            .stream_thread(authed(
                &token,
                pb::StreamThreadRequest {
                    work_item_id: item.id.clone(),
                    after_event_id: 0,
                },
            ))
            .await?
            .into_inner();
        let cursor = probe
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("no event"))??
            .event_id;
        drop(probe);

        let (report, receipts) = mpsc::unbounded_channel();
        let mut ready = Vec::with_capacity(subscribers);
        let mut channel = server.channel().await?;
        for index in 0..subscribers {
            if index > 0 && index % STREAMS_PER_CONNECTION == 0 {
                channel = server.channel().await?;
            }
            let mut stream = ThreadServiceClient::new(channel.clone())
                .stream_thread(authed(
                    &token,
                    pb::StreamThreadRequest {
                        work_item_id: item.id.clone(),
                        after_event_id: cursor,
                    },
                ))
                .await?
                .into_inner();
            let report = report.clone();
            ready.push(tokio::spawn(async move {
                while let Some(Ok(event)) = stream.next().await {
                    if let Some(pb::thread_event::Kind::Message(message)) = event.kind {
                        let iteration = message.body.parse().unwrap_or(u64::MAX);
                        if report.send((iteration, Instant::now())).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        let poster = ThreadServiceClient::new(server.channel().await?);
        Ok(Self {
            server,
            token,
            work_item_id: item.id,
            poster,
            receipts,
            subscribers,
            next_iteration: 0,
        })
    }

    /// Posts one message and waits until every subscriber has it; returns
    /// the time to the last receipt and each subscriber's latency.
    async fn once(&mut self) -> anyhow::Result<(Duration, Vec<Duration>)> {
        let iteration = self.next_iteration;
        self.next_iteration += 1;
        let sent = Instant::now();
        self.poster
            .post_message(authed(
                &self.token,
                pb::PostMessageRequest {
                    work_item_id: self.work_item_id.clone(),
                    kind: pb::MessageKind::Human as i32,
                    body: iteration.to_string(),
                    ..Default::default()
                },
            ))
            .await?;
        let mut latencies = Vec::with_capacity(self.subscribers);
        while latencies.len() < self.subscribers {
            let (seen, at) = tokio::time::timeout(Duration::from_secs(30), self.receipts.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("subscribers ended"))?;
            anyhow::ensure!(
                seen == iteration,
                "message {seen} arrived during {iteration}"
            );
            latencies.push(at.duration_since(sent));
        }
        let last = latencies.iter().max().copied().unwrap_or_default();
        Ok((last, latencies))
    }
}

/// One line of the report.
struct Case {
    backend: &'static str,
    subscribers: usize,
    samples: usize,
    p50: Duration,
    p99: Duration,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cases: Arc<Mutex<Vec<Case>>> = Arc::default();
    let mut group = c.benchmark_group("fanout");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for backend in [Backend::Postgres, Backend::Sqlite] {
        for subscribers in SUBSCRIBERS {
            let setup = runtime.block_on(Fanout::start(backend, subscribers));
            let fanout = Arc::new(tokio::sync::Mutex::new(setup.expect("set up the fan-out")));
            let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
            group.bench_with_input(
                BenchmarkId::new(backend.name(), subscribers),
                &subscribers,
                |b, _| {
                    b.to_async(&runtime).iter_custom(|iterations| {
                        let fanout = fanout.clone();
                        let latencies = latencies.clone();
                        async move {
                            let mut fanout = fanout.lock().await;
                            let mut total = Duration::ZERO;
                            for _ in 0..iterations {
                                let (last, each) = fanout.once().await.expect("fan-out");
                                total += last;
                                if let Ok(mut all) = latencies.lock() {
                                    all.extend(each);
                                }
                            }
                            total
                        }
                    });
                },
            );
            let fanout = runtime.block_on(fanout.lock_owned());
            let (rss_kib, peak_rss_kib) = fanout.server.memory_kib().expect("server memory");
            let mut all = latencies.lock().map(|all| all.clone()).unwrap_or_default();
            all.sort_unstable();
            let case = Case {
                backend: backend.name(),
                subscribers,
                samples: all.len(),
                p50: quantile(&all, 0.5),
                p99: quantile(&all, 0.99),
                rss_kib,
                peak_rss_kib,
            };
            println!(
                "fanout/{}/{}: p50 {:.2} ms, p99 {:.2} ms over {} deliveries; server RSS {} KiB (peak {} KiB)",
                case.backend,
                case.subscribers,
                case.p50.as_secs_f64() * 1e3,
                case.p99.as_secs_f64() * 1e3,
                case.samples,
                case.rss_kib,
                case.peak_rss_kib
            );
            if let Ok(mut cases) = cases.lock() {
                cases.push(case);
            }
        }
    }
    group.finish();
    write_report(
        &cases
            .lock()
            .map(|cases| cases.iter().map(case_json).collect::<Vec<_>>())
            .unwrap_or_default(),
    );
}

fn case_json(case: &Case) -> String {
    format!(
        "{{\"backend\":\"{}\",\"subscribers\":{},\"deliveries\":{},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"server_rss_kib\":{},\"server_peak_rss_kib\":{}}}",
        case.backend,
        case.subscribers,
        case.samples,
        case.p50.as_secs_f64() * 1e3,
        case.p99.as_secs_f64() * 1e3,
        case.rss_kib,
        case.peak_rss_kib
    )
}

/// Writes the cases where `docs/benchmarks.md` is updated from.
fn write_report(cases: &[String]) {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from("target"))
        .join("anima-bench");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            dir.join("fanout.json"),
            format!("[{}]\n", cases.join(",\n")),
        )
    });
    match written {
        Ok(()) => println!("wrote {}", dir.join("fanout.json").display()),
        Err(err) => eprintln!("could not write the fan-out report: {err}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = fanout
}
criterion_main!(benches);
