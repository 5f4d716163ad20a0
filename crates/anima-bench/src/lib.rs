//! Shared pieces of the Anima benchmarks: a real server process on a
//! throw-away database, clients logged in to it, a load generator with HDR
//! histograms, and latency statistics.
//!
//! The server runs as its own process, `anima up` itself (built with the
//! `bench` feature for the trusted baseline), so that its resident memory
//! can be read from `/proc` apart from the clients'.

pub mod load;
pub mod serve;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anima_db::testing::TempDatabase;
use anima_proto::v1 as pb;
use anyhow::Context;
use tonic::{Request, transport::Channel};

/// Password of the benchmark's administrator.
pub const ADMIN_PASSWORD: &str = "benchmark administrator password";

/// Which database the server under test uses.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The production store.
    Postgres,
}

impl Backend {
    /// Its name in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A server process, on a fresh database it owns or on a shared one (all
/// go away on drop), or a server running elsewhere.
pub struct ServerUnderTest {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _database: Option<TempDatabase>,
    _data_dir: Option<tempfile::TempDir>,
}

impl ServerUnderTest {
    /// Starts `anima up` on a new database of the given backend.
    pub async fn start(backend: Backend) -> anyhow::Result<Self> {
        Self::start_with_env(backend, &[]).await
    }

    /// Starts `anima up` on a new database of the given backend with these
    /// extra environment variables (settings, e.g. a raised limit).
    pub async fn start_with_env(backend: Backend, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let database = match backend {
            Backend::Sqlite => TempDatabase::sqlite(),
            Backend::Postgres => TempDatabase::postgres().await,
        };
        let mut server = Self::anima(&database.url, &[], env)?;
        server._database = Some(database);
        Ok(server)
    }

    /// Starts `anima up` on `database_url` with these extra arguments and
    /// environment variables (e.g. `--trust-every-caller`, or a service
    /// token).
    pub fn anima(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let anima = anima_binary()?;
        let data_dir = tempfile::tempdir()?;
        let mut command = Command::new(&anima);
        command
            .arg("up")
            .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(args)
            .env("ANIMA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            // A benchmark session must not expire mid-run.
            .env(
                "ANIMA_SESSION_IDLE_TIMEOUT_SECS",
                (24 * 60 * 60).to_string(),
            )
            .envs(env.iter().copied());
        let mut server = Self::spawn(command, "anima is up at ").with_context(|| {
            format!(
                "starting {} up (build it with `cargo build --release -p anima --features bench`)",
                anima.display()
            )
        })?;
        server._data_dir = Some(data_dir);
        Ok(server)
    }

    /// Starts `anima-bench serve --echo-bytes BYTES` (this binary): a bare
    /// tonic echo of a work item, the floor a gRPC read can reach.
    pub fn echo(bytes: usize) -> anyhow::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["serve", "--echo-bytes", &bytes.to_string()]);
        Self::spawn(command, "listening on ")
    }

    /// Runs `command` and waits for the line that starts with `announce`
    /// and goes on with the server's URL.
    fn spawn(mut command: Command, announce: &str) -> anyhow::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let found = lines.by_ref().map_while(Result::ok).find_map(|line| {
            let rest = line.strip_prefix(announce)?;
            Some(rest.split_whitespace().next().unwrap_or(rest).to_owned())
        });
        let Some(url) = found else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the server did not say where it listens");
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self {
            child: Some(child),
            url,
            _database: None,
            _data_dir: None,
        })
    }

    /// A server the benchmark did not start, at `url`.
    pub fn remote(url: &str) -> Self {
        Self {
            child: None,
            url: url.trim_end_matches('/').to_owned(),
            _database: None,
            _data_dir: None,
        }
    }

    fn own_child(&self) -> anyhow::Result<&Child> {
        self.child
            .as_ref()
            .context("this needs a server the benchmark started itself, not --server")
    }

    /// The database URL of a server started with [`ServerUnderTest::start`].
    pub fn database_url(&self) -> Option<&str> {
        self._database
            .as_ref()
            .map(|database| database.url.as_str())
    }

    /// The server's process id (for profilers).
    pub fn pid(&self) -> anyhow::Result<u32> {
        Ok(self.own_child()?.id())
    }

    /// A new HTTP/2 connection to the server.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.url.clone())?.connect().await?)
    }

    /// A session token of the administrator.
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let session =
            anima_client::Session::login(self.channel().await?, "admin", ADMIN_PASSWORD).await?;
        Ok(session.token().to_owned())
    }

    /// A new project with one work item, made by the holder of `token`
    /// through anima-client as any client would.
    pub async fn project_with_item(
        &self,
        token: &str,
        project: &str,
        item: pb::CreateWorkItemRequest,
    ) -> anyhow::Result<(pb::Project, pb::WorkItem)> {
        let session = anima_client::Session::new(self.channel().await?, token)?;
        let project = session
            .call(pb::CreateProjectRequest {
                name: project.into(),
                description: String::new(),
            })
            .await?;
        let item = session
            .call(pb::CreateWorkItemRequest {
                project_id: project.id.clone(),
                ..item
            })
            .await?;
        Ok((project, item))
    }

    /// The server's resident memory now and at its peak, in KiB.
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        memory_kib(&self.pid()?.to_string())
    }
}

/// A process's resident memory now and at its peak, in KiB, from
/// `/proc/PROCESS/status` (`VmRSS`, `VmHWM`); `process` is a pid or `self`.
pub fn memory_kib(process: &str) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .with_context(|| format!("{name} missing from /proc status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

impl Drop for ServerUnderTest {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `anima` binary the benchmarks measure: `$ANIMA_BIN`, else the one
/// beside this benchmark's binary (the same target directory and profile).
pub fn anima_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ANIMA_BIN") {
        return Ok(path.into());
    }
    let bench = std::env::current_exe()?;
    let mut dir = bench
        .parent()
        .context("the benchmark binary has no directory")?;
    // Criterion's benches run from `deps/`, beside the binaries' directory.
    if dir.ends_with("deps") {
        dir = dir.parent().context("deps/ has no parent")?;
    }
    Ok(dir.join("anima"))
}

/// A request with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The `q`-quantile (0..=1) of durations, by nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
