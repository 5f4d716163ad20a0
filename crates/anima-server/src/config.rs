//! Server configuration: one TOML file plus `ANIMA_*` environment variables,
//! with defaults that work for `anima up`.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use anyhow::Context;
use serde::Deserialize;

pub use crate::auth::InternalService;
use crate::{secrets::SecretStore, zones::ZoneConfig};

/// Everything the server reads at start.
#[derive(Debug, Clone, Deserialize)]
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
    /// What starts agent sessions: empty for nothing (StartSession is
    /// refused), `manual:DIR` to write each session's MCP credentials
    /// into DIR for an agent run by hand, or `agent:URL` for anima-agent's
    /// sandboxes (see `agent`).
    pub agent_provider: String,
    /// For `agent_provider = "agent:URL"`: what the sandboxes run and reach.
    pub agent: AgentConfig,
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
}

/// Per-user rate limits, shared by every instance; 0 turns one off. A
/// refusal is `RESOURCE_EXHAUSTED`/`RATE_LIMITED` and says when to retry.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
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
        }
    }
}

/// Who may create projects; see [`ServerConfig::project_creators`].
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProjectCreators {
    /// Every signed-in user.
    #[default]
    Everyone,
    /// Server administrators only.
    Admins,
}

impl std::str::FromStr for ProjectCreators {
    type Err = anyhow::Error;

    fn from_str(value: &str) -> anyhow::Result<Self> {
        match value {
            "everyone" => Ok(Self::Everyone),
            "admins" => Ok(Self::Admins),
            _ => anyhow::bail!("expected `everyone` or `admins`, not {value:?}"),
        }
    }
}

/// How anima-server uses anima-agent's sandboxes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The service token presented to anima-agent.
    pub token: String,
    /// The command each sandbox runs (`sh -c`), in its `/workspace`.
    pub command: String,
    /// This server's MCP endpoint as sandboxes reach it
    /// (`http://host:port/mcp`).
    pub mcp_endpoint: String,
}

/// A pre-shared token identifying an internal service.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
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
            login_attempts_per_user_and_peer: 5,
            login_attempts_per_peer: 100,
            login_attempts_per_user: 30,
            login_attempt_window_secs: 5 * 60,
            rate_limits: RateLimits::default(),
            service_tokens: Vec::new(),
            stream_heartbeat_secs: 15,
            stream_lag_limit: 1024,
            agent_provider: String::new(),
            agent: AgentConfig::default(),
            secret_stores: BTreeMap::new(),
            network_zones: BTreeMap::new(),
            ai_url: String::new(),
            ai_token: String::new(),
        }
    }
}

impl ServerConfig {
    /// Reads the TOML file (if given) and applies `ANIMA_*` overrides.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => Self::default(),
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(listen) = var("ANIMA_LISTEN") {
            self.listen = listen
                .parse()
                .with_context(|| format!("ANIMA_LISTEN={listen:?}"))?;
        }
        if let Some(cert) = var("ANIMA_TLS_CERT") {
            self.tls_cert = cert;
        }
        if let Some(key) = var("ANIMA_TLS_KEY") {
            self.tls_key = key;
        }
        if let Some(insecure) = var("ANIMA_INSECURE_LISTEN") {
            self.insecure_listen = insecure
                .parse()
                .with_context(|| format!("ANIMA_INSECURE_LISTEN={insecure:?} (true or false)"))?;
        }
        if let Some(url) = var("ANIMA_DATABASE_URL") {
            self.database_url = url;
        }
        if let Some(dir) = var("ANIMA_DATA_DIR") {
            self.data_dir = dir;
        }
        if let Some(secs) = var("ANIMA_SESSION_IDLE_TIMEOUT_SECS") {
            self.session_idle_timeout_secs = secs
                .parse()
                .with_context(|| format!("ANIMA_SESSION_IDLE_TIMEOUT_SECS={secs:?}"))?;
        }
        if let Some(domains) = var("ANIMA_MAIL_DOMAINS") {
            self.mail_domains = domains
                .split(',')
                .map(|domain| domain.trim().to_lowercase())
                .filter(|domain| !domain.is_empty())
                .collect();
        }
        if let Some(creators) = var("ANIMA_PROJECT_CREATORS") {
            self.project_creators = creators
                .parse()
                .with_context(|| format!("ANIMA_PROJECT_CREATORS={creators:?}"))?;
        }
        for (name, limit) in [
            (
                "ANIMA_OUTBOUND_MAILS_PER_HOUR",
                &mut self.rate_limits.outbound_mails_per_hour,
            ),
            (
                "ANIMA_UPLOADS_PER_HOUR",
                &mut self.rate_limits.uploads_per_hour,
            ),
            (
                "ANIMA_AI_CALLS_PER_HOUR",
                &mut self.rate_limits.ai_calls_per_hour,
            ),
            (
                "ANIMA_MCP_WRITES_PER_MINUTE",
                &mut self.rate_limits.mcp_writes_per_minute,
            ),
            (
                "ANIMA_MAIL_CLASSIFICATIONS_PER_HOUR",
                &mut self.rate_limits.mail_classifications_per_hour,
            ),
            (
                "ANIMA_OPEN_STREAMS_PER_USER",
                &mut self.rate_limits.open_streams_per_user,
            ),
        ] {
            if let Some(value) = var(name) {
                *limit = value
                    .parse()
                    .with_context(|| format!("{name}={value:?} (a count; 0 for no limit)"))?;
            }
        }
        if let Some(secs) = var("ANIMA_STREAM_HEARTBEAT_SECS") {
            self.stream_heartbeat_secs = secs
                .parse()
                .with_context(|| format!("ANIMA_STREAM_HEARTBEAT_SECS={secs:?}"))?;
        }
        if let Some(provider) = var("ANIMA_AGENT_PROVIDER") {
            self.agent_provider = provider;
        }
        if let Some(command) = var("ANIMA_AGENT_COMMAND") {
            self.agent.command = command;
        }
        if let Some(url) = var("ANIMA_AI_URL") {
            self.ai_url = url;
        }
        if let Some(token) = var("ANIMA_AI_TOKEN") {
            self.ai_token = token;
        }
        // `name=dir:PATH,name=env:PREFIX`
        if let Some(stores) = var("ANIMA_SECRET_STORES") {
            self.secret_stores = stores
                .split(',')
                .filter(|entry| !entry.trim().is_empty())
                .map(|entry| {
                    let (name, spec) = entry.split_once('=').context(
                        "ANIMA_SECRET_STORES entries look like name=dir:PATH or name=env:PREFIX",
                    )?;
                    Ok((name.trim().to_owned(), SecretStore::parse(spec.trim())?))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        // `name=token,name=token`
        if let Some(tokens) = var("ANIMA_SERVICE_TOKENS") {
            self.service_tokens = tokens
                .split(',')
                .filter(|entry| !entry.trim().is_empty())
                .map(|entry| {
                    let (name, token) = entry
                        .split_once('=')
                        .context("ANIMA_SERVICE_TOKENS entries look like name=token")?;
                    Ok(ServiceToken {
                        name: name.trim().parse()?,
                        token: token.trim().into(),
                    })
                })
                .collect::<anyhow::Result<_>>()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_values() {
        let mut config: ServerConfig =
            toml::from_str("listen = \"127.0.0.1:9000\"\nsession_idle_timeout_secs = 60\n")
                .expect("toml");
        config
            .apply_env(|name| match name {
                "ANIMA_LISTEN" => Some("127.0.0.1:9001".into()),
                "ANIMA_SERVICE_TOKENS" => Some("anima-mail=old, anima-agent=new".into()),
                "ANIMA_SECRET_STORES" => {
                    Some("ci=dir:/etc/anima/secrets,agents=env:ANIMA_AGENT_SECRET_".into())
                }
                _ => None,
            })
            .expect("env");
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.session_idle_timeout_secs, 60);
        assert_eq!(config.service_tokens.len(), 2);
        assert_eq!(config.service_tokens[1].token, "new");
        assert_eq!(config.service_tokens[1].name, InternalService::Agent);
        assert_eq!(
            config.secret_stores["ci"],
            SecretStore::Directory {
                path: "/etc/anima/secrets".into()
            }
        );
        assert_eq!(
            config.secret_stores["agents"],
            SecretStore::Environment {
                prefix: "ANIMA_AGENT_SECRET_".into()
            }
        );
    }

    #[test]
    fn secret_stores_read_from_toml() {
        let config: ServerConfig =
            toml::from_str("[secret_stores.ci]\nkind = \"dir\"\npath = \"/srv/secrets\"\n")
                .expect("toml");
        assert_eq!(
            config.secret_stores["ci"],
            SecretStore::Directory {
                path: "/srv/secrets".into()
            }
        );
    }

    #[test]
    fn tokens_of_unknown_services_are_refused() {
        let mut config = ServerConfig::default();
        let err = config
            .apply_env(|name| {
                (name == "ANIMA_SERVICE_TOKENS").then(|| "anima-up=0123456789".to_owned())
            })
            .expect_err("unknown service");
        assert!(format!("{err:#}").contains("anima-up"), "{err:#}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ServerConfig>("lisen = \"x\"").is_err());
    }
}
