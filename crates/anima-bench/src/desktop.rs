//! The `desktop` scenario: cold start of the desktop client to its first
//! painted dashboard, from a warm cache holding 10,000 work items, and its
//! resident memory then. The client runs as its own process in a real
//! window (needs an X display: run under `xvfb-run`); its remembered
//! server does not answer, so what it paints comes from the cache alone.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Instant,
};

use anima_desktop::cache::{Cache, Kind};
use anima_proto::v1 as pb;
use anyhow::Context;

use crate::{Options, Outcome};

const PROJECTS: usize = 20;
const WORK_ITEMS: usize = 10_000;
const RUNS: usize = 10;

/// A cache as a week of use leaves it.
async fn seed(path: &std::path::Path) -> anyhow::Result<()> {
    let cache = Cache::open(path).await?;
    // Nothing listens on the discard port: the client opens offline.
    cache.set_meta("server", "http://127.0.0.1:9").await?;
    cache.set_meta("token", "benchmark").await?;
    let projects: Vec<pb::Project> = (0..PROJECTS)
        .map(|p| pb::Project {
            id: format!("project-{p:02}"),
            name: format!("Project {p:02}"),
            description: "A product team's backlog".into(),
            status: pb::ProjectStatus::Active as i32,
            ..pb::Project::default()
        })
        .collect();
    cache
        .replace_records(Kind::Project, "", &projects, |project| {
            (project.id.clone(), project.name.to_lowercase())
        })
        .await?;
    let per_project = WORK_ITEMS / PROJECTS;
    for project in &projects {
        let items: Vec<pb::WorkItem> = (1..=per_project)
            .map(|n| pb::WorkItem {
                id: format!("{}-wi-{n}", project.id),
                project_id: project.id.clone(),
                key: format!("WI-{n}"),
                title: format!("Checkout step {n} loses the coupon on reload"),
                description: "Steps to reproduce: add a coupon, reload the page, the total \
                              is back to the full price. Expected: the coupon stays."
                    .into(),
                status: pb::WorkItemStatus::Open as i32,
                phase_id: "implementation".into(),
                ..pb::WorkItem::default()
            })
            .collect();
        cache
            .replace_records(Kind::WorkItem, &project.id, &items, |item| {
                (item.id.clone(), item.key.clone())
            })
            .await?;
    }
    let dashboard = pb::Dashboard {
        projects: projects
            .iter()
            .map(|project| pb::ProjectSummary {
                project_id: project.id.clone(),
                name: project.name.clone(),
                open_work_items: i64::try_from(per_project).unwrap_or(0),
                ..pb::ProjectSummary::default()
            })
            .collect(),
        open_decisions: (0..10)
            .map(|d| pb::Decision {
                id: format!("decision-{d}"),
                project_id: projects[d % PROJECTS].id.clone(),
                question: format!("Ship release {d} today?"),
                choices: vec!["Ship it".into(), "Wait".into()],
                ..pb::Decision::default()
            })
            .collect(),
        ..pb::Dashboard::default()
    };
    cache
        .replace_records(Kind::Dashboard, "", &[dashboard], |_| {
            ("dashboard".into(), String::new())
        })
        .await
}

/// One cold start: milliseconds to the first painted dashboard, and the
/// resident KiB then.
fn start_once(binary: &std::path::Path, cache: &std::path::Path) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--cache")
        .arg(cache)
        .arg("--exit-after-first-paint")
        .env("SLINT_BACKEND", "winit-software")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("painted"))
        .context("the client never painted (is there an X display? run under xvfb-run)")?;
    let elapsed = started.elapsed().as_secs_f64() * 1_000.0;
    child.wait()?;
    let rss = line
        .split_once("rss_kib=")
        .and_then(|(_, kib)| kib.trim().parse().ok())
        .context("no memory figure")?;
    Ok((elapsed, rss))
}

/// The scenario.
pub async fn scenario(_options: &Options) -> anyhow::Result<Outcome> {
    let binary = std::env::current_exe()?
        .parent()
        .context("the benchmark's directory")?
        .join("anima-desktop");
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --release -p anima-desktop`",
        binary.display()
    );
    let dir = tempfile::tempdir()?;
    let cache = dir.path().join("desktop.sqlite");
    seed(&cache).await?;
    let cache_bytes = std::fs::metadata(&cache)?.len();
    // A first start warms the page cache, as a user's second start would.
    start_once(&binary, &cache)?;
    let mut runs = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        runs.push(tokio::task::block_in_place(|| start_once(&binary, &cache))?);
    }
    let mut times: Vec<f64> = runs.iter().map(|(ms, _)| *ms).collect();
    times.sort_by(f64::total_cmp);
    let median = times[RUNS / 2];
    let worst = times[RUNS - 1];
    let rss_mib = runs.iter().map(|(_, kib)| *kib).max().unwrap_or(0) as f64 / 1024.0;
    Ok(Outcome {
        scenario: "desktop",
        stats: Vec::new(),
        ratio: Some((
            "cold start to first painted dashboard, median ms".into(),
            median,
            "< 300",
        )),
        notes: vec![
            format!(
                "{RUNS} cold starts from a warm cache ({WORK_ITEMS} work items in {PROJECTS} projects, {:.1} MB): median {median:.0} ms, worst {worst:.0} ms",
                cache_bytes as f64 / 1e6
            ),
            format!(
                "resident memory at the first paint: {rss_mib:.0} MiB at most (target < 150 MB)"
            ),
        ],
    })
}
