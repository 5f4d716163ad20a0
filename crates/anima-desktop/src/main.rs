//! The `anima-desktop` binary: the human's window onto an Anima server.

use std::path::PathBuf;

use clap::Parser;

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
            server: args.server,
        },
        runtime.handle().clone(),
    )?;
    app.run()
}
