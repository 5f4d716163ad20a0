//! Authentication: random bearer tokens stored only as SHA-256 hashes, idle
//! expiry, pre-shared service tokens (one per internal service, compared in
//! constant time), and login throttling. Passwords are in [`crate::password`].

use std::{net::IpAddr, sync::Arc};

use anima_core::{
    DomainError,
    error::reason,
    model::{AttemptCounter, AuthSession, User, now_micros},
    secret::new_token,
    service_token,
};
use anima_db::Store;
use serde::{Deserialize, Serialize};

use crate::{
    auth_cache::AuthCache,
    config::{ServerConfig, ServiceToken},
};

pub use anima_core::secret::token_hash;

/// An internal service that holds a token of anima-server's: each may call
/// only its own RPCs (see [`crate::rbac::ACCESS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InternalService {
    /// The mail worker: MailWorkerService.
    #[serde(rename = "anima-mail")]
    Mail,
    /// The agent provider: its reports into the login audit log
    /// (AgentAuditService).
    #[serde(rename = "anima-agent")]
    Agent,
}

impl InternalService {
    /// The name configurations use, e.g. `anima-mail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mail => "anima-mail",
            Self::Agent => "anima-agent",
        }
    }
}

impl std::str::FromStr for InternalService {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> anyhow::Result<Self> {
        match name {
            "anima-mail" => Ok(Self::Mail),
            "anima-agent" => Ok(Self::Agent),
            _ => anyhow::bail!(
                "{name:?} is no service that calls anima-server; expected anima-mail or anima-agent"
            ),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A logged-in human.
    User {
        /// The account, as of this request.
        user: User,
        /// Hash of the session token used (for logout).
        token_hash: String,
        /// When the session began.
        session_created_at: i64,
    },
    /// An internal service holding one of its configured tokens.
    Service {
        /// Which service.
        service: InternalService,
    },
    /// Nobody checked: only [`crate::middleware::trust_every_caller`], the
    /// benchmarks' measure of what checking costs, makes this caller. It
    /// exists only with the `trust-every-caller` feature, which no build
    /// of the servers enables.
    #[cfg(feature = "trust-every-caller")]
    Unchecked,
}

/// Turns bearer tokens into callers.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    /// Sessions and permissions already looked up; see [`AuthCache`].
    cache: Arc<AuthCache>,
    idle_timeout_micros: i64,
    /// See [`ServerConfig::service_tokens`].
    service_tokens: Arc<[ServiceToken]>,
}

/// Writing `last_used_at` on every request would turn each read into a
/// write; a minute of slack in the idle clock is harmless.
const TOUCH_INTERVAL_MICROS: i64 = 60 * 1_000_000;

impl Authenticator {
    /// Builds the authenticator from configuration, refusing service
    /// tokens too short to be secret.
    pub fn new(store: Arc<dyn Store>, config: &ServerConfig) -> anyhow::Result<Self> {
        config.check_service_tokens()?;
        Ok(Self {
            cache: Arc::new(AuthCache::new(&*store)),
            store,
            idle_timeout_micros: i64::try_from(config.session_idle_timeout().as_micros())
                .unwrap_or(i64::MAX),
            service_tokens: config.service_tokens.clone().into(),
        })
    }

    /// The service whose token this is: every configured token is compared,
    /// in constant time, so timing tells neither which nor how close.
    fn service_of(&self, token: &str) -> Option<InternalService> {
        self.service_tokens.iter().fold(None, |found, entry| {
            let matched = service_token::matches(token, &entry.token);
            found.or(matched.then_some(entry.name))
        })
    }

    /// The idle timeout, for clients to show.
    pub fn idle_timeout_secs(&self) -> i64 {
        self.idle_timeout_micros / 1_000_000
    }

    /// Resolves an `authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Caller, DomainError> {
        let header = header.ok_or_else(|| {
            DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                "missing authorization: Bearer <token>",
            )
        })?;
        let token = service_token::bearer(header).ok_or_else(|| {
            DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                "malformed authorization header; expected `Bearer <token>`",
            )
        })?;
        if let Some(service) = self.service_of(token) {
            return Ok(Caller::Service { service });
        }
        let hash = token_hash(token);
        let invalid = || {
            DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                "the token is not valid; log in again",
            )
        };
        let (mut session, mut user) = self
            .cache
            .session(&*self.store, &hash)
            .await?
            .ok_or_else(invalid)?;
        let now = now_micros();
        if now - session.last_used_at > self.idle_timeout_micros {
            // Another instance may have used it since this one cached it.
            (session, user) = self
                .cache
                .reread_session(&*self.store, &hash)
                .await?
                .ok_or_else(invalid)?;
        }
        if now - session.last_used_at > self.idle_timeout_micros {
            self.store.delete_session(&hash).await?;
            self.cache.forget_session(&hash);
            return Err(DomainError::unauthenticated(
                reason::SESSION_EXPIRED,
                "the session expired after being idle; log in again",
            ));
        }
        if user.disabled {
            return Err(invalid());
        }
        if now - session.last_used_at > TOUCH_INTERVAL_MICROS {
            self.store.touch_session(&hash, now).await?;
            self.cache.touched(&hash);
        }
        Ok(Caller::User {
            user,
            token_hash: hash,
            session_created_at: session.created_at,
        })
    }

    /// Whether the session with this token hash is still open: not logged
    /// out or revoked, not idle past the timeout, its user not disabled.
    /// Does not count as use (a stream that only listens keeps no session
    /// alive). Read from the database, not the cache: streams recheck when
    /// a replayed event says something changed, which may be ahead of what
    /// this instance's cache has heard of.
    pub async fn check_session(&self, token_hash: &str) -> Result<(), DomainError> {
        let Some((session, user)) = self.store.session_with_user(token_hash).await? else {
            return Err(DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                "the session ended (logged out, password changed or revoked); log in again",
            ));
        };
        if now_micros() - session.last_used_at > self.idle_timeout_micros {
            return Err(DomainError::unauthenticated(
                reason::SESSION_EXPIRED,
                "the session expired after being idle; log in again",
            ));
        }
        if user.disabled {
            return Err(DomainError::unauthenticated(
                reason::UNAUTHENTICATED,
                "this account is disabled",
            ));
        }
        Ok(())
    }

    /// This instance's cache of sessions and permissions. Handlers that
    /// change either tell it before they return; other instances hear of
    /// the change through the event.
    pub fn cache(&self) -> &Arc<AuthCache> {
        &self.cache
    }

    /// Opens a session for a user and returns its token (shown once).
    pub async fn open_session(&self, user_id: &str) -> Result<String, DomainError> {
        let token = new_token();
        let now = now_micros();
        self.store
            .create_session(AuthSession {
                token_hash: token_hash(&token),
                user_id: user_id.to_owned(),
                created_at: now,
                last_used_at: now,
            })
            .await?;
        Ok(token)
    }
}

/// Counts login attempts in the database, so every server instance shares
/// the counts, before any password is checked: N parallel guesses are N
/// attempts. Three counters, in order: the username from one peer address
/// (the quick back-off), the peer address across usernames, and the
/// username from anywhere (a slower limit, so one address cannot lock a
/// user out). A refused attempt counts under none of them.
#[derive(Clone)]
pub struct LoginThrottle {
    store: Arc<dyn Store>,
    per_user_and_peer: u32,
    per_peer: u32,
    per_user: u32,
    window_micros: i64,
}

impl LoginThrottle {
    /// Builds the throttle from configuration.
    pub fn new(store: Arc<dyn Store>, config: &ServerConfig) -> Self {
        Self {
            store,
            per_user_and_peer: config.login_attempts_per_user_and_peer,
            per_peer: config.login_attempts_per_peer,
            per_user: config.login_attempts_per_user,
            window_micros: i64::try_from(config.login_attempt_window_secs)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000),
        }
    }

    fn counters(&self, username: &str, peer: Option<IpAddr>) -> [AttemptCounter; 3] {
        let peer = peer.map_or_else(|| "unknown".into(), |ip| ip.to_string());
        let counter = |key: String, limit: u32| AttemptCounter {
            key,
            limit,
            window_micros: self.window_micros,
            what: "login attempts".into(),
        };
        [
            counter(
                format!("user+peer:{username}|{peer}"),
                self.per_user_and_peer,
            ),
            counter(format!("peer:{peer}"), self.per_peer),
            counter(format!("user:{username}"), self.per_user),
        ]
    }

    /// Counts an attempt, or refuses it (`RESOURCE_EXHAUSTED`/`RATE_LIMITED`).
    pub async fn attempt(&self, username: &str, peer: Option<IpAddr>) -> Result<(), DomainError> {
        Ok(self
            .store
            .count_attempt(&self.counters(username, peer), now_micros())
            .await?)
    }

    /// Forgets the user's attempts after a success; the peer's stay, so
    /// logging into one's own account does not reset a guessing address.
    pub async fn succeeded(&self, username: &str, peer: Option<IpAddr>) -> Result<(), DomainError> {
        let [user_and_peer, _, user] = self.counters(username, peer);
        Ok(self
            .store
            .forget_attempts(&[user_and_peer.key, user.key])
            .await?)
    }
}

/// Writes a file only its owner can read, for files that hold a bearer
/// token (the CLI's session, an agent session's MCP credentials).
pub fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Never through a link planted in the file's place.
    #[cfg(unix)]
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    let mut file = options.open(path)?;
    // The mode above applies only to a file this call creates.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
