//! The `[server]` and `[agent]` sections of `anima.toml`, with defaults
//! that work for `anima up`; every key is also an `ANIMA_*` variable (see
//! [`anima_core::config`]).

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use serde::{Deserialize, Serialize};

pub use crate::auth::InternalService;
use crate::{
    secrets::{SecretStore, SecretStores},
    zones::{NetworkZones, ZoneConfig},
};

/// `[server]`: everything the API server reads at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the one listener (gRPC, `/mcp`, `/healthz`).
    pub listen: SocketAddr,
    /// PEM certificate chain for TLS on the listener; with `tls_key`, the
    /// listener speaks only TLS. Reloaded on `SIGHUP`.
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    pub tls_key: String,
    /// Allow plaintext on an address beyond loopback (a TLS-terminating
    /// proxy in front); refused otherwise.
    pub insecure_listen: bool,
    /// `sqlite://…` or `postgres://…`; empty means SQLite in `data_dir`.
    pub database_url: String,
    /// Where the embedded database lives when `database_url` is empty.
    pub data_dir: String,
    /// A session expires after this many seconds without a request.
    pub session_idle_timeout_secs: u64,
    /// The mail domains project owners may make mailbox addresses in (e.g.
    /// `["shop.example"]`); none configured, no mailbox can be made.
    pub mail_domains: Vec<String>,
    /// The forge hosts repositories may be on (`HOST` or `HOST:PORT` over
    /// https, `http://HOST[:PORT]` to allow plain http): the server reads
    /// their APIs, so a project owner must not point it at any other
    /// address. A plain git remote needs an entry only when it is given a
    /// credential.
    pub forge_hosts: Vec<String>,
    /// Who may create projects (and so become their Owner): `everyone`
    /// signed in (the default) or only server `admins`.
    pub project_creators: ProjectCreators,
    /// Login attempts allowed per username from one peer address within
    /// the window (counted before the password is checked; a success
    /// forgets them).
    pub login_attempts_per_user_and_peer: u32,
    /// Login attempts allowed per peer address, across usernames.
    pub login_attempts_per_peer: u32,
    /// Login attempts allowed per username from all addresses together:
    /// above the per-address limit, so one address cannot lock a user out.
    pub login_attempts_per_user: u32,
    /// Length of the login-attempt window, in seconds.
    pub login_attempt_window_secs: u64,
    /// Per-user limits on outbound mail, AI requests and agents' MCP
    /// writes (`[rate_limits]`).
    pub rate_limits: RateLimits,
    /// Tokens that internal services (anima-mail, anima-agent) present,
    /// each naming its service, which it alone may be used for. Several
    /// may be valid at once, which is how they rotate: add the new token,
    /// move the service over, remove the old one.
    pub service_tokens: Vec<ServiceToken>,
    /// A live stream that delivered nothing for this many seconds sends a
    /// heartbeat, so proxies keep it open.
    pub stream_heartbeat_secs: u64,
    /// How many events a stream consumer may fall behind the newest before
    /// it is cut off with a cursor to resume from.
    pub stream_lag_limit: usize,
    /// Where agent sessions' secrets come from, by store name
    /// (`[secret_stores.NAME]` with `kind = "dir"`, `path`, or `kind =
    /// "env"`, `prefix`); a secret capability `NAME://KEY` names one. No
    /// store: sessions get no secrets.
    pub secret_stores: BTreeMap<String, SecretStore>,
    /// Network zones agent sessions may be granted, by name
    /// (`[network_zones.NAME]` with `allow = ["host:port", …]` and
    /// optionally `connect_to = { "host:port" = "address:port" }`). No
    /// zone: sandboxes reach nothing but their MCP endpoint.
    pub network_zones: BTreeMap<String, ZoneConfig>,
    /// Where anima-ai answers (`http://host:port`); empty turns the AI
    /// features off (they answer `FAILED_PRECONDITION`/`NO_AI_SERVICE`).
    /// `anima up` points it at its own listener.
    pub ai_url: String,
    /// The service token anima-server presents to anima-ai.
    pub ai_token: String,
    /// Where anima-library, which keeps documents' bytes, answers
    /// (`http://host:port`); empty refuses documents and mail with
    /// attachments (`FAILED_PRECONDITION`/`NO_LIBRARY_SERVICE`). `anima
    /// up` hosts the library itself.
    pub library_url: String,
    /// The service token anima-server presents to anima-library.
    pub library_token: String,
}

/// Per-user rate limits, shared by every instance; 0 turns one off. A
/// refusal is `RESOURCE_EXHAUSTED`/`RATE_LIMITED` and says when to retry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Emails one user may send from threads per hour.
    pub outbound_mails_per_hour: u32,
    /// Documents one user may upload per hour (each at most 100 MiB).
    pub uploads_per_hour: u32,
    /// Requests to anima-ai (summaries, drafts, reviews, gap analyses)
    /// one user may make per hour: remote models cost money.
    pub ai_calls_per_hour: u32,
    /// Inbound mails per project and hour that anima-ai may classify (mail
    /// comes from anyone); past it, mail waits in triage.
    pub mail_classifications_per_hour: u32,
    /// Writes (posts, tasks, decision requests) one agent session may make
    /// over MCP per minute.
    pub mcp_writes_per_minute: u32,
    /// Live streams (threads, sessions, dashboards) one user may hold open
    /// at once, per server instance.
    pub open_streams_per_user: u32,
    /// Uploads one user may have in progress at once, per server
    /// instance (each holds a few MiB of buffers until it ends).
    pub open_uploads_per_user: u32,
    /// Library searches (`search_library`) one agent session may make over
    /// MCP per minute: each scans its project's documents' text.
    pub mcp_searches_per_minute: u32,
    /// Library searches (SearchDocuments) one user may make per minute:
    /// each embeds its query in anima-ai and ranks the index's chunks.
    pub searches_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            outbound_mails_per_hour: 60,
            uploads_per_hour: 120,
            ai_calls_per_hour: 120,
            mcp_writes_per_minute: 120,
            mail_classifications_per_hour: 600,
            open_streams_per_user: 32,
            open_uploads_per_user: 4,
            mcp_searches_per_minute: 30,
            searches_per_minute: 60,
        }
    }
}

/// Who may create projects; see [`ServerConfig::project_creators`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProjectCreators {
    /// Every signed-in user.
    #[default]
    Everyone,
    /// Server administrators only.
    Admins,
}

/// `[agent]`: what starts agent sessions, and what their sandboxes run
/// and reach.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Who runs the sessions (see [`AgentProviderKind`]).
    pub provider: AgentProviderKind,
    /// The command each sandbox runs (`sh -c`), in its `/workspace`; for
    /// `local`, none means StartSession is refused.
    pub command: String,
    /// This server's MCP endpoint as sandboxes reach it
    /// (`http://host:port/mcp`); `anima up` fills in its own.
    pub mcp_endpoint: String,
    /// For `remote`: where anima-agent answers (`http://host:port`).
    pub url: String,
    /// For `remote`: the service token presented to anima-agent.
    pub token: String,
    /// For `manual`: the directory each session's MCP credentials are
    /// written into, for an agent run by hand.
    pub credentials_dir: String,
    /// For `local`: the unprivileged host user sandboxes run as; empty
    /// for anima-agent's own (`anima-sandbox`).
    pub sandbox_user: String,
    /// For `local`: host paths bound read-only into every sandbox.
    pub read_only: Vec<String>,
    /// For `local`: where the SSH server for logins into sandboxes
    /// listens; port 0 picks a free one (credentials name it).
    pub ssh_listen: SocketAddr,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            provider: AgentProviderKind::Local,
            command: String::new(),
            mcp_endpoint: String::new(),
            url: String::new(),
            token: String::new(),
            credentials_dir: String::new(),
            sandbox_user: String::new(),
            read_only: Vec::new(),
            ssh_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Who runs agent sessions.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgentProviderKind {
    /// Nobody: StartSession is refused.
    None,
    /// `anima up` itself, in sandboxes on this host, once `command` is
    /// set.
    #[default]
    Local,
    /// anima-agent running elsewhere, at `url`.
    Remote,
    /// A person: credentials go to `credentials_dir`.
    Manual,
}

/// A pre-shared token identifying an internal service: a table with
/// `name` and `token`, or the text `NAME=TOKEN`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "ServiceTokenEntry")]
pub struct ServiceToken {
    /// The service it belongs to (`anima-mail`, `anima-agent`); it may call
    /// that service's RPCs and nothing else.
    pub name: InternalService,
    /// The secret itself: at least
    /// [`anima_core::service_token::MIN_SERVICE_TOKEN_CHARS`] characters.
    pub token: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7433)),
            tls_cert: String::new(),
            tls_key: String::new(),
            insecure_listen: false,
            database_url: String::new(),
            data_dir: String::new(),
            session_idle_timeout_secs: 8 * 60 * 60,
            project_creators: ProjectCreators::Everyone,
            mail_domains: Vec::new(),
            forge_hosts: ["github.com", "gitlab.com", "gitea.com", "codeberg.org"]
                .map(String::from)
                .to_vec(),
            login_attempts_per_user_and_peer: 5,
            login_attempts_per_peer: 100,
            login_attempts_per_user: 30,
            login_attempt_window_secs: 5 * 60,
            rate_limits: RateLimits::default(),
            service_tokens: Vec::new(),
            stream_heartbeat_secs: 15,
            stream_lag_limit: 1024,
            secret_stores: BTreeMap::new(),
            network_zones: BTreeMap::new(),
            ai_url: String::new(),
            ai_token: String::new(),
            library_url: String::new(),
            library_token: String::new(),
        }
    }
}

impl ServerConfig {
    /// Refuses what the server refuses at start, without starting it:
    /// guessable service tokens, bad secret stores or network zones.
    pub fn check(&self) -> anyhow::Result<()> {
        self.check_service_tokens()?;
        crate::forge::ForgeHosts::new(&self.forge_hosts)?;
        SecretStores::new(self.secret_stores.clone())?;
        NetworkZones::new(self.network_zones.clone())?;
        Ok(())
    }

    /// Refuses service tokens too short to be secret.
    pub fn check_service_tokens(&self) -> anyhow::Result<()> {
        for entry in &self.service_tokens {
            anima_core::service_token::check_strength(
                &format!("the service token of {}", entry.name.as_str()),
                &entry.token,
            )
            .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// Silence after which a live stream sends a heartbeat (at least 1 s).
    pub fn stream_heartbeat(&self) -> Duration {
        Duration::from_secs(self.stream_heartbeat_secs.max(1))
    }

    /// Idle time after which a session expires.
    pub fn session_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.session_idle_timeout_secs)
    }
}

/// How a service token may be written.
#[derive(Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum ServiceTokenEntry {
    Table {
        name: InternalService,
        token: String,
    },
    Text(String),
}

impl TryFrom<ServiceTokenEntry> for ServiceToken {
    type Error = anyhow::Error;

    fn try_from(entry: ServiceTokenEntry) -> anyhow::Result<Self> {
        Ok(match entry {
            ServiceTokenEntry::Table { name, token } => Self { name, token },
            ServiceTokenEntry::Text(text) => {
                // The text is not repeated in an error: it holds the token.
                let written_wrong = || {
                    anyhow::anyhow!(
                        "a service token is written anima-mail=TOKEN or anima-agent=TOKEN"
                    )
                };
                let (name, token) = text.split_once('=').ok_or_else(written_wrong)?;
                Self {
                    name: name.trim().parse().map_err(|_| written_wrong())?,
                    token: token.trim().into(),
                }
            }
        })
    }
}

/// The sections of `anima.toml` that anima-server reads; the others are
/// left to their components.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSections {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[agent]`.
    pub agent: AgentConfig,
}

impl ServerSections {
    /// Reads `anima.toml` (if given) and the `ANIMA_*` variables, which
    /// win.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Ok(anima_core::config::read(file)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> anyhow::Result<ServerSections> {
        Ok(anima_core::config::load(
            Some(("anima.toml", file)),
            |name| {
                env.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| value.to_string())
            },
        )?)
    }

    #[test]
    fn env_overrides_file_values() {
        let config = load(
            "[server]\nlisten = \"127.0.0.1:9000\"\nsession_idle_timeout_secs = 60\n",
            &[
                ("ANIMA_LISTEN", "127.0.0.1:9001"),
                ("ANIMA_SERVICE_TOKENS", "anima-mail=old, anima-agent=new"),
                (
                    "ANIMA_SECRET_STORES",
                    "ci=dir:/etc/anima/secrets,agents=env:ANIMA_AGENT_SECRET_",
                ),
                ("ANIMA_RATE_LIMITS_UPLOADS_PER_HOUR", "3"),
                ("ANIMA_AGENT_PROVIDER", "remote"),
            ],
        )
        .expect("config");
        let server = config.server;
        assert_eq!(server.listen.port(), 9001);
        assert_eq!(server.session_idle_timeout_secs, 60);
        assert_eq!(server.rate_limits.uploads_per_hour, 3);
        assert_eq!(server.service_tokens.len(), 2);
        assert_eq!(server.service_tokens[1].token, "new");
        assert_eq!(server.service_tokens[1].name, InternalService::Agent);
        assert_eq!(
            server.secret_stores["ci"],
            SecretStore::Directory {
                path: "/etc/anima/secrets".into()
            }
        );
        assert_eq!(
            server.secret_stores["agents"],
            SecretStore::Environment {
                prefix: "ANIMA_AGENT_SECRET_".into()
            }
        );
        assert_eq!(config.agent.provider, AgentProviderKind::Remote);
    }

    #[test]
    fn tables_read_from_toml() {
        let config = load(
            "[server.secret_stores.ci]\nkind = \"dir\"\npath = \"/srv/secrets\"\n\
             [[server.service_tokens]]\nname = \"anima-mail\"\ntoken = \"t\"\n\
             [agent]\nprovider = \"manual\"\ncredentials_dir = \"/tmp/c\"\n",
            &[],
        )
        .expect("config");
        assert_eq!(
            config.server.secret_stores["ci"],
            SecretStore::Directory {
                path: "/srv/secrets".into()
            }
        );
        assert_eq!(config.server.service_tokens[0].name, InternalService::Mail);
        assert_eq!(config.agent.provider, AgentProviderKind::Manual);
    }

    #[test]
    fn tokens_of_unknown_services_are_refused() {
        let err = load("", &[("ANIMA_SERVICE_TOKENS", "anima-up=0123456789")])
            .expect_err("unknown service");
        assert!(format!("{err:#}").contains("anima-mail=TOKEN"), "{err:#}");
        // A token written with the wrong separator is not echoed.
        let err =
            load("", &[("ANIMA_SERVICE_TOKENS", "anima-mail:s3cr3t-token=")]).expect_err("no name");
        assert!(!format!("{err:#}").contains("s3cr3t"), "{err:#}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(load("[server]\nlisen = \"x\"\n", &[]).is_err());
        let misspelt =
            "[[server.service_tokens]]\nname = \"anima-mail\"\ntoken = \"t\"\nrole = 1\n";
        assert!(load(misspelt, &[]).is_err());
        assert!(load("[agent]\nprovider = \"agent:http://x\"\n", &[]).is_err());
    }
}
