//! `anima-bench`: measures the Anima API against baselines that run on the
//! same machine in the same run, and reports the ratios. Absolute times on
//! a shared machine are noise; a ratio to a baseline measured minutes
//! apart on the same hardware is the figure that counts.

use std::{path::PathBuf, time::Duration};

mod ai;
mod desktop;
mod library;
mod mail;
mod revocation;

use anima_bench::{
    Backend, ServerUnderTest, authed,
    load::{Stats, measure},
    serve::{self, ServeArgs},
};
use anima_core::paging::PageRequest;
use anima_proto::v1::{
    self as pb, project_service_client::ProjectServiceClient,
    work_item_service_client::WorkItemServiceClient,
};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use prost::Message;
use serde_json::json;
use tonic::transport::Channel;

/// Benchmarks of the Anima API, each beside a baseline in the same run.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every scenario, one after another, then the table of ratios.
    All(Options),
    /// CreateWorkItem on PostgreSQL beside pgbench doing the same three
    /// inserts in one transaction.
    Write(Options),
    /// GetWorkItem beside a bare tonic echo of the same payload size.
    Read(Options),
    /// GetWorkItem with and without authentication and RBAC.
    Auth(Options),
    /// How long a session logged out on one of two instances (PostgreSQL)
    /// still works on the other.
    Revocation(Options),
    /// ListWorkItems: the first page against a page deep into a big project.
    PageDepth(Options),
    /// Resident memory of the server idle and after the write load.
    Footprint(Options),
    /// anima-ai's local model: ClassifyMail accuracy on the labelled mail
    /// set, and Embed and ClassifyMail throughput over gRPC.
    Ai(Options),
    /// anima-library's search: relevance of words, meaning and the two
    /// fused on the labelled set, and latency, throughput, memory and the
    /// vector graph's recall at 100,000 chunks. It embeds a thousand chunks
    /// with the local model (minutes on two cores), so `all` leaves it out.
    Library(Options),
    /// anima-mail's routing throughput (mails/s) on a private Cyrus: needs
    /// `scripts/setup-debian --with-mail-server` and root, so `all` leaves
    /// it out.
    Mail(Options),
    /// The desktop client's cold start to its first painted dashboard from
    /// a cache of 10,000 work items, and its memory then: needs an X
    /// display (`xvfb-run`) and `anima-desktop` built beside this binary,
    /// so `all` leaves it out.
    Desktop(Options),
    /// Runs a server to measure (used by the other commands).
    #[command(hide = true)]
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct Options {
    /// Short runs: 3 s per measurement and 100,000 work items for page depth.
    #[arg(long)]
    quick: bool,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds per measurement [default: 10, or 3 with --quick].
    #[arg(long)]
    duration: Option<u64>,
    /// Work items seeded for page depth [default: 1,000,000, or 100,000
    /// with --quick].
    #[arg(long)]
    page_items: Option<i64>,
    /// Database of the read, auth and footprint scenarios.
    #[arg(long, value_enum, default_value = "postgres")]
    backend: BackendArg,
    /// Where to write the JSON report [default: $CARGO_TARGET_DIR/anima-bench/report.json].
    #[arg(long)]
    report: Option<PathBuf>,
    /// Measure a running server (e.g. `http://10.0.0.5:7070`) instead of
    /// starting one. Only the write and read scenarios can (the others need
    /// the server's process or database); their pgbench baselines run on
    /// the local PostgreSQL. Needs --token.
    #[arg(long, requires = "token")]
    server: Option<String>,
    /// Session token for --server, of a user who may create projects.
    #[arg(long, env = "ANIMA_BENCH_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
}

impl Options {
    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration.unwrap_or(if self.quick { 3 } else { 10 }))
    }

    fn page_items(&self) -> i64 {
        self.page_items
            .unwrap_or(if self.quick { 100_000 } else { 1_000_000 })
    }

    fn backend(&self) -> Backend {
        match self.backend {
            BackendArg::Sqlite => Backend::Sqlite,
            BackendArg::Postgres => Backend::Postgres,
        }
    }
}

/// One scenario's result: the measurements and the ratio that matters.
struct Outcome {
    scenario: &'static str,
    stats: Vec<Stats>,
    ratio: Option<(String, f64, &'static str)>,
    notes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (options, scenarios): (Options, Vec<&str>) = match cli.command {
            Command::Serve(args) => return serve::run(args).await,
            Command::All(o) => (
                o,
                vec![
                    "write",
                    "read",
                    "auth",
                    "revocation",
                    "page-depth",
                    "footprint",
                    "ai",
                ],
            ),
            Command::Write(o) => (o, vec!["write"]),
            Command::Read(o) => (o, vec!["read"]),
            Command::Auth(o) => (o, vec!["auth"]),
            Command::Revocation(o) => (o, vec!["revocation"]),
            Command::PageDepth(o) => (o, vec!["page-depth"]),
            Command::Footprint(o) => (o, vec!["footprint"]),
            Command::Ai(o) => (o, vec!["ai"]),
            Command::Library(o) => (o, vec!["library"]),
            Command::Mail(o) => (o, vec!["mail"]),
            Command::Desktop(o) => (o, vec!["desktop"]),
        };
        let scenarios = match &options.server {
            None => scenarios,
            Some(url) => {
                let (remote, local): (Vec<&str>, Vec<&str>) = scenarios
                    .into_iter()
                    .partition(|scenario| matches!(*scenario, "write" | "read"));
                if !local.is_empty() {
                    eprintln!(
                        "skipping {} against {url}: they need a server the benchmark starts",
                        local.join(", ")
                    );
                }
                anyhow::ensure!(!remote.is_empty(), "no scenario can run against --server");
                remote
            }
        };
        let mut outcomes = Vec::new();
        for scenario in scenarios {
            eprintln!("== {scenario}");
            let outcome = match scenario {
                "write" => write(&options).await,
                "read" => read(&options).await,
                "auth" => auth(&options).await,
                "revocation" => revocation::scenario(&options).await,
                "page-depth" => page_depth(&options).await,
                "footprint" => footprint(&options).await,
                "mail" => mail::scenario(&options).await,
                "desktop" => desktop::scenario(&options).await,
                "library" => library::scenario(&options).await,
                _ => ai::scenario(&options).await,
            }
            .with_context(|| format!("scenario {scenario}"))?;
            outcomes.push(outcome);
        }
        report(&options, &outcomes)
    })
}

/// A logged-in server with one project and a work item to read.
struct Fixture {
    server: ServerUnderTest,
    token: String,
    project_id: String,
    item: pb::WorkItem,
}

/// With `--server`, the fixture is a new project on that server.
async fn fixture(options: &Options, backend: Backend) -> anyhow::Result<Fixture> {
    let (server, token) = match (&options.server, &options.token) {
        (Some(url), Some(token)) => (ServerUnderTest::remote(url), token.clone()),
        _ => {
            let server = ServerUnderTest::start(backend).await?;
            let token = server.admin_token().await?;
            (server, token)
        }
    };
    let (project, item) = server
        .project_with_item(
            &token,
            "Benchmark",
            pb::CreateWorkItemRequest {
                title: "A work item of typical size".into(),
                description: "A description of about one kilobyte. ".repeat(28),
                ..Default::default()
            },
        )
        .await?;
    Ok(Fixture {
        server,
        token,
        project_id: project.id,
        item,
    })
}

async fn clients(
    server: &ServerUnderTest,
    count: usize,
) -> anyhow::Result<Vec<WorkItemServiceClient<Channel>>> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(WorkItemServiceClient::new(server.channel().await?));
    }
    Ok(clients)
}

async fn get_work_items(
    label: &str,
    server: &ServerUnderTest,
    token: &str,
    id: &str,
    options: &Options,
) -> anyhow::Result<Stats> {
    let token = token.to_owned();
    let id = id.to_owned();
    measure(
        label,
        clients(server, options.clients).await?,
        options.duration(),
        move |client: &mut WorkItemServiceClient<Channel>| {
            let request = authed(
                &token,
                pb::GetWorkItemRequest {
                    id: id.clone(),
                    ..Default::default()
                },
            );
            let mut client = client.clone();
            async move {
                client.get_work_item(request).await?;
                Ok(())
            }
        },
    )
    .await
}

async fn read(options: &Options) -> anyhow::Result<Outcome> {
    let fixture = fixture(options, options.backend()).await?;
    let bytes = fixture.item.encoded_len();
    let anima = get_work_items(
        "GetWorkItem (anima)",
        &fixture.server,
        &fixture.token,
        &fixture.item.id,
        options,
    )
    .await?;
    // The floor of a read that asks the database at all: pgbench sending
    // only the item's query, when this run owns a PostgreSQL database.
    let item_query = match fixture.server.database_url() {
        Some(url) if url.starts_with("postgres") => Some(
            pgbench(
                options,
                "pgbench, the item's SELECT alone",
                url,
                &format!(
                    "SELECT w.*, r.text FROM work_items w \
                     JOIN description_revisions r ON r.id = w.description_revision_id \
                     WHERE w.id = '{}';\n",
                    fixture.item.id
                ),
            )
            .await?,
        ),
        _ => None,
    };
    let echo_server = ServerUnderTest::echo(bytes)?;
    let echo = get_work_items(
        "GetWorkItem (bare tonic echo)",
        &echo_server,
        "",
        "x",
        options,
    )
    .await?;
    Ok(Outcome {
        scenario: "read",
        ratio: Some((
            "anima / echo throughput".into(),
            anima.throughput / echo.throughput,
            "≥ 0.6",
        )),
        notes: std::iter::once(format!(
            "payload {bytes} bytes, {} clients",
            options.clients
        ))
        .chain(item_query.as_ref().map(|query| {
            format!(
                "one query alone allows {:.2} of the echo; anima / that query = {:.2}",
                query.throughput / echo.throughput,
                anima.throughput / query.throughput
            )
        }))
        .collect(),
        stats: [anima, echo].into_iter().chain(item_query).collect(),
    })
}

async fn auth(options: &Options) -> anyhow::Result<Outcome> {
    let fixture = fixture(options, options.backend()).await?;
    let database_url = fixture
        .server
        .database_url()
        .context("the fixture owns its database")?
        .to_owned();
    let with = get_work_items(
        "GetWorkItem with auth + RBAC",
        &fixture.server,
        &fixture.token,
        &fixture.item.id,
        options,
    )
    .await?;
    let trusting = ServerUnderTest::anima(&database_url, &["--trust-every-caller"], &[])?;
    let without = get_work_items(
        "GetWorkItem without (trusted)",
        &trusting,
        "",
        &fixture.item.id,
        options,
    )
    .await?;
    Ok(Outcome {
        scenario: "auth",
        ratio: Some((
            "with / without auth throughput".into(),
            with.throughput / without.throughput,
            "(what security costs)",
        )),
        notes: vec![
            "with: session looked up by token hash and touched, project permission read".into(),
        ],
        stats: vec![with, without],
    })
}

/// The fixture's project and `count - 1` new ones, to spread writes over.
async fn projects(fixture: &Fixture, count: usize) -> anyhow::Result<Vec<String>> {
    let mut projects = vec![fixture.project_id.clone()];
    let mut client = ProjectServiceClient::new(fixture.server.channel().await?);
    for n in 1..count {
        let request = pb::CreateProjectRequest {
            name: format!("Benchmark {n}"),
            description: String::new(),
        };
        let project = client
            .create_project(authed(&fixture.token, request))
            .await?;
        projects.push(project.into_inner().id);
    }
    Ok(projects)
}

/// CreateWorkItem from every client, client `i` writing into
/// `projects[i % projects.len()]`.
async fn create_work_items(
    label: &str,
    fixture: &Fixture,
    projects: &[String],
    options: &Options,
) -> anyhow::Result<Stats> {
    let token = fixture.token.clone();
    let clients = clients(&fixture.server, options.clients)
        .await?
        .into_iter()
        .zip(projects.iter().cycle().cloned())
        .collect();
    measure(
        label,
        clients,
        options.duration(),
        move |(client, project_id): &mut (WorkItemServiceClient<Channel>, String)| {
            let request = authed(
                &token,
                pb::CreateWorkItemRequest {
                    project_id: project_id.clone(),
                    title: "Benchmark write".into(),
                    description: "A new work item with a short description.".into(),
                    ..Default::default()
                },
            );
            let mut client = client.clone();
            async move {
                client.create_work_item(request).await?;
                Ok(())
            }
        },
    )
    .await
}

/// Tables of the write baselines: the rows CreateWorkItem writes, and the
/// per-project counter its keys come from.
const PGBENCH_TABLES: &[&str] = &[
    "CREATE TABLE bench_items (id BIGSERIAL PRIMARY KEY, project_id TEXT NOT NULL, title TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE bench_revisions (id BIGSERIAL PRIMARY KEY, item_id BIGINT NOT NULL, text TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE bench_events (id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, entity_id BIGINT NOT NULL, payload TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE bench_projects (id BIGINT PRIMARY KEY, work_item_seq BIGINT NOT NULL)",
    "INSERT INTO bench_projects SELECT n, 0 FROM generate_series(1, 16) AS n",
];

/// The baseline of the issue: the three inserts CreateWorkItem makes (work
/// item, first revision, outbox event), in one transaction.
const PGBENCH_INSERTS: &str = "\
BEGIN;
INSERT INTO bench_items (project_id, title, created_at) VALUES ('p', 'Benchmark write', now());
INSERT INTO bench_revisions (item_id, text, created_at) VALUES (currval('bench_items_id_seq'), 'A new work item with a short description.', now());
INSERT INTO bench_events (kind, entity_id, payload, created_at) VALUES ('work_item.created', currval('bench_items_id_seq'), '{}', now());
COMMIT;
";

/// The same inserts under every ordering guarantee CreateWorkItem keeps,
/// over 16 projects: the project's ordering lock before the first write
/// (its events in commit order), its key counter (`WI-<n>` unique, no
/// gaps), the writing transaction's id on the event, and the NOTIFY that
/// wakes other instances, sent after the commit (anima sends one per burst
/// of commits, so this is the dearer form). No design that keeps these
/// guarantees can beat it on this server.
const PGBENCH_ORDERED_INSERTS: &str = "\
\\set p random(1, 16)
BEGIN;
SELECT pg_advisory_xact_lock(1634626913, :p);
UPDATE bench_projects SET work_item_seq = work_item_seq + 1 WHERE id = :p;
INSERT INTO bench_items (project_id, title, created_at) VALUES (:p, 'Benchmark write', now());
INSERT INTO bench_revisions (item_id, text, created_at) VALUES (currval('bench_items_id_seq'), 'A new work item with a short description.', now());
INSERT INTO bench_events (kind, entity_id, payload, created_at) VALUES ('work_item.created', currval('bench_items_id_seq'), pg_current_xact_id()::text, now());
COMMIT;
SELECT pg_notify('bench_events', '');
";

/// Runs pgbench with `script` on `database_url` with the benchmark's
/// clients and duration.
async fn pgbench(
    options: &Options,
    label: &str,
    database_url: &str,
    script: &str,
) -> anyhow::Result<Stats> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), script)?;
    let output = tokio::process::Command::new("pgbench")
        .args(["-n", "-c", &options.clients.to_string(), "-j", "2"])
        .args(["-T", &options.duration().as_secs().to_string(), "-f"])
        .arg(file.path())
        .arg(database_url)
        .output()
        .await
        .context("running pgbench (Debian package postgresql-client)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    let tps = number("tps = ").context("pgbench printed no tps")?;
    let latency_ms = number("latency average = ").unwrap_or_default();
    let transactions = number("number of transactions actually processed: ").unwrap_or_default();
    Ok(Stats {
        label: label.into(),
        operations: transactions as u64,
        errors: 0,
        throughput: tps,
        // pgbench reports the mean only.
        p50_us: (latency_ms * 1e3) as u64,
        p99_us: 0,
        p999_us: 0,
    })
}

async fn write(options: &Options) -> anyhow::Result<Outcome> {
    let fixture = fixture(options, Backend::Postgres).await?;
    let spread = projects(&fixture, 16).await?;
    let anima = create_work_items(
        "CreateWorkItem, 16 projects (anima)",
        &fixture,
        &spread,
        options,
    )
    .await?;
    let busy = create_work_items(
        "CreateWorkItem, one busy project (anima)",
        &fixture,
        &spread[..1],
        options,
    )
    .await?;
    drop(fixture);
    let database = anima_db::testing::TempDatabase::postgres().await;
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url).await?;
    for &statement in PGBENCH_TABLES {
        sqlx::query(statement).execute(&mut connection).await?;
    }
    let baseline = pgbench(
        options,
        "pgbench, same 3 inserts",
        &database.url,
        PGBENCH_INSERTS,
    )
    .await?;
    let ceiling = pgbench(
        options,
        "pgbench, same inserts + ordering lock, counter, txid, NOTIFY, 16 projects",
        &database.url,
        PGBENCH_ORDERED_INSERTS,
    )
    .await?;
    Ok(Outcome {
        scenario: "write",
        ratio: Some((
            "anima / pgbench throughput".into(),
            anima.throughput / baseline.throughput,
            "≥ 0.5",
        )),
        notes: vec![
            "pgbench reports a mean latency only (shown as p50)".into(),
            "the headline spreads the clients over 16 projects, as a team server's writes are; \
             the busy-project row sends them all to one, whose writers queue behind its lock"
                .into(),
            format!(
                "one busy project / 16 projects = {:.2}",
                busy.throughput / anima.throughput
            ),
            format!(
                "anima / pgbench with the same ordering guarantees = {:.2}; those guarantees alone allow {:.2} of the plain inserts",
                anima.throughput / ceiling.throughput,
                ceiling.throughput / baseline.throughput
            ),
        ],
        stats: vec![anima, busy, baseline, ceiling],
    })
}

/// Seeds `count` work items straight into the project's tables (the
/// benchmark knows the schema; the API would take hours for a million).
async fn seed_work_items(database_url: &str, project_id: &str, count: i64) -> anyhow::Result<()> {
    let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(database_url).await?;
    let start = std::time::Instant::now();
    sqlx::query(
        "INSERT INTO work_items (id, project_id, plan_id, number, title, description_revision_id, status, \
         priority, workflow_id, phase_id, phase_changed_by, phase_changed_at, capabilities, created_at, updated_at) \
         SELECT 'seed-' || n, $1, NULL, n + 1, 'Seeded ' || n, 'seed-rev-' || n, 'open', 'medium', \
         '00000000-0000-7000-8000-000000000101', 'analysis', '{\"kind\":\"service\",\"name\":\"bench\"}', 0, '[]', 0, 0 \
         FROM generate_series(1, $2) AS n",
    )
    .bind(project_id)
    .bind(count)
    .execute(&mut connection)
    .await?;
    sqlx::query(
        "INSERT INTO description_revisions (id, work_item_id, number, text, author, cause, reverted_from, \
         source_message_id, created_at) \
         SELECT 'seed-rev-' || n, 'seed-' || n, 1, 'Seeded description', '{\"kind\":\"service\",\"name\":\"bench\"}', \
         'create', NULL, NULL, 0 FROM generate_series(1, $1) AS n",
    )
    .bind(count)
    .execute(&mut connection)
    .await?;
    sqlx::query("UPDATE projects SET work_item_seq = work_item_seq + $2 WHERE id = $1")
        .bind(project_id)
        .bind(count)
        .execute(&mut connection)
        .await?;
    sqlx::query("ANALYZE").execute(&mut connection).await?;
    eprintln!(
        "  seeded {count} work items in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn page_depth(options: &Options) -> anyhow::Result<Outcome> {
    let fixture = fixture(options, Backend::Postgres).await?;
    let items = options.page_items();
    let database_url = fixture
        .server
        .database_url()
        .context("own database")?
        .to_owned();
    seed_work_items(&database_url, &fixture.project_id, items).await?;
    // The token of page 10,000 (or the deepest page there is), made as the
    // server makes it, instead of walking 10,000 pages to get it.
    let page_size = 50;
    let depth = (items / page_size).min(10_000);
    let after = (depth - 1) * page_size;
    let query = format!("workitems:{}:*:*", fixture.project_id);
    let deep_token = PageRequest::parse(page_size as i32, "", &query)?.token_for(after.to_string());
    let list = |label: String, page_token: String| {
        let token = fixture.token.clone();
        let project_id = fixture.project_id.clone();
        let server = &fixture.server;
        async move {
            measure(
                &label,
                clients(server, options.clients).await?,
                options.duration(),
                move |client: &mut WorkItemServiceClient<Channel>| {
                    let request = authed(
                        &token,
                        pb::ListWorkItemsRequest {
                            project_id: project_id.clone(),
                            page_size: page_size as i32,
                            page_token: page_token.clone(),
                            ..Default::default()
                        },
                    );
                    let mut client = client.clone();
                    async move {
                        let page = client.list_work_items(request).await?.into_inner();
                        anyhow::ensure!(page.work_items.len() == page_size as usize, "short page");
                        Ok(())
                    }
                },
            )
            .await
        }
    };
    let first = list("ListWorkItems page 1".into(), String::new()).await?;
    let deep = list(format!("ListWorkItems page {depth}"), deep_token).await?;
    Ok(Outcome {
        scenario: "page-depth",
        ratio: Some((
            format!("page {depth} / page 1 p50 latency"),
            deep.p50_us as f64 / first.p50_us.max(1) as f64,
            "≤ 1.5",
        )),
        notes: vec![format!(
            "{items} work items in one project, pages of {page_size}"
        )],
        stats: vec![first, deep],
    })
}

async fn footprint(options: &Options) -> anyhow::Result<Outcome> {
    let fixture = fixture(options, Backend::Sqlite).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle, _) = fixture.server.memory_kib()?;
    let one = [fixture.project_id.clone()];
    let load = create_work_items(
        "CreateWorkItem (SQLite, for memory)",
        &fixture,
        &one,
        options,
    )
    .await?;
    let (after, peak) = fixture.server.memory_kib()?;
    Ok(Outcome {
        scenario: "footprint",
        ratio: Some(("idle RSS, MiB".into(), idle as f64 / 1024.0, "< 60")),
        notes: vec![format!(
            "the composition of `anima up` on SQLite: idle {:.1} MiB, after the write load {:.1} MiB (peak {:.1} MiB)",
            idle as f64 / 1024.0,
            after as f64 / 1024.0,
            peak as f64 / 1024.0
        )],
        stats: vec![load],
    })
}

fn report(options: &Options, outcomes: &[Outcome]) -> anyhow::Result<()> {
    println!();
    for outcome in outcomes {
        println!("## {}", outcome.scenario);
        for stats in &outcome.stats {
            println!("  {}", stats.line());
        }
        for note in &outcome.notes {
            println!("  note: {note}");
        }
        if let Some((what, value, target)) = &outcome.ratio {
            println!("  ratio: {what} = {value:.2} (target {target})");
        }
    }
    let json = json!({
        "clients": options.clients,
        "duration_s": options.duration().as_secs(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "scenarios": outcomes.iter().map(|outcome| json!({
            "scenario": outcome.scenario,
            "stats": outcome.stats.iter().map(Stats::json).collect::<Vec<_>>(),
            "ratio": outcome.ratio.as_ref().map(|(what, value, target)| json!({
                "what": what, "value": value, "target": target,
            })),
            "notes": outcome.notes,
        })).collect::<Vec<_>>(),
    });
    let path = options.report.clone().unwrap_or_else(|| {
        std::env::var("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("target"))
            .join("anima-bench")
            .join("report.json")
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("\nreport written to {}", path.display());
    Ok(())
}
