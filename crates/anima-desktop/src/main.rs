//! The `anima-desktop` binary: the human's window onto an Anima server.

use std::path::PathBuf;

use clap::Parser;
use slint::ComponentHandle;

/// Opens the Anima desktop client.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The read cache [default: the platform cache dir, e.g.
    /// ~/.cache/anima/desktop.sqlite].
    #[arg(long, env = "ANIMA_DESKTOP_CACHE")]
    cache: Option<PathBuf>,
    /// The server offered on the login screen (a remembered login's server
    /// comes first).
    #[arg(long, env = "ANIMA_SERVER")]
    server: Option<String>,
    /// PEM file of the CA that signed an https:// server's certificate
    /// (a private CA) [default: the system's trusted roots].
    #[arg(long, env = "ANIMA_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Sign in (ANIMA_USERNAME, ANIMA_PASSWORD), save every screen as a PNG
    /// into this directory, and exit (see scripts/screenshots).
    #[arg(long)]
    screenshots: Option<PathBuf>,
    /// Exit once the first dashboard with data is rendered, printing the
    /// resident memory then (`anima-bench desktop` times it).
    #[arg(long, hide = true)]
    exit_after_first_paint: bool,
}

/// Resident memory of this process, in KiB (Linux).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let cache = match args.cache {
        Some(path) => path,
        None => dirs::cache_dir()
            .map(|dir| dir.join("anima").join("desktop.sqlite"))
            .ok_or_else(|| anyhow::anyhow!("no cache directory; pass --cache"))?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let app = anima_desktop::app::App::start(
        anima_desktop::app::Options {
            cache,
            server: args.server.clone(),
            ca_cert: args.ca_cert.clone(),
        },
        runtime.handle().clone(),
    )?;
    // The software renderer has no rendering notifier: once the cached
    // dashboard is in the window, rendering it into a snapshot is the
    // first paint.
    let first_paint = slint::Timer::default();
    if args.exit_after_first_paint {
        let window = app.window().as_weak();
        first_paint.start(
            slint::TimerMode::Repeated,
            std::time::Duration::from_millis(2),
            move || {
                let Some(window) = window.upgrade() else {
                    return;
                };
                if slint::Model::row_count(&window.get_projects()) > 0
                    && window.window().take_snapshot().is_ok()
                {
                    println!("painted rss_kib={}", resident_kib());
                    let _ = slint::quit_event_loop();
                }
            },
        );
    }
    match args.screenshots {
        Some(dir) => {
            let variable = |name: &str| {
                std::env::var(name).map_err(|_| anyhow::anyhow!("--screenshots needs {name}"))
            };
            let credentials = anima_desktop::tour::Credentials {
                server: args
                    .server
                    .ok_or_else(|| anyhow::anyhow!("--screenshots needs --server"))?,
                username: variable("ANIMA_USERNAME")?,
                password: variable("ANIMA_PASSWORD")?,
            };
            anima_desktop::tour::run(app, runtime.handle().clone(), credentials, dir)
        }
        None => app.run(),
    }
}
