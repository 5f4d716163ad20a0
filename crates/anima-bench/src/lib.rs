//! Shared pieces of the Anima benchmarks: a real server process on a
//! throw-away database, clients logged in to it, a load generator with HDR
//! histograms, and latency statistics.
//!
//! The server runs as its own process (`anima-bench serve …`, the same
//! composition as `anima up`) so that its resident memory can be read from
//! `/proc` apart from the clients'.

pub mod load;
pub mod serve;

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anima_db::testing::TempDatabase;
use anima_proto::v1::{self as pb, auth_service_client::AuthServiceClient};
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
}

impl ServerUnderTest {
    /// Starts `bench_binary serve` (this crate's `anima-bench`) on a new
    /// database of the given backend.
    pub async fn start(bench_binary: &str, backend: Backend) -> anyhow::Result<Self> {
        let database = match backend {
            Backend::Sqlite => TempDatabase::sqlite(),
            Backend::Postgres => TempDatabase::postgres().await,
        };
        let mut server = Self::spawn(bench_binary, &["--database-url", &database.url])?;
        server._database = Some(database);
        Ok(server)
    }

    /// Starts `bench_binary serve` with these arguments (e.g. on the
    /// database of another server, or as the echo baseline).
    pub fn spawn(bench_binary: &str, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = Command::new(bench_binary)
            .arg("serve")
            .args(args)
            .env("ANIMA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {bench_binary} serve"))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on ").map(str::to_owned))
            .context("the server did not say where it listens")?;
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self {
            child: Some(child),
            url,
            _database: None,
        })
    }

    /// A server the benchmark did not start, at `url`.
    pub fn remote(url: &str) -> Self {
        Self {
            child: None,
            url: url.trim_end_matches('/').to_owned(),
            _database: None,
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
        Ok(AuthServiceClient::new(self.channel().await?)
            .login(pb::LoginRequest {
                username: "admin".into(),
                password: ADMIN_PASSWORD.into(),
            })
            .await?
            .into_inner()
            .token)
    }

    /// The server's resident memory now and at its peak, in KiB, from
    /// `/proc/PID/status` (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
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
}

impl Drop for ServerUnderTest {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
