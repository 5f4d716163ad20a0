//! Authentication: argon2id passwords, random bearer tokens stored only as
//! SHA-256 hashes, idle expiry, pre-shared service tokens (one per internal
//! service, compared in constant time), and a limiter for failed logins.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anima_core::{
    DomainError, ErrorCode,
    error::reason,
    model::{AuthSession, User, now_micros},
    service_token,
};
use anima_db::Store;
use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{ServerConfig, ServiceToken};

/// Hashes a password with argon2id (the crate's default parameters, which
/// follow the OWASP recommendation). Runs on the blocking pool: it is
/// deliberately slow.
pub async fn hash_password(password: String) -> Result<String, DomainError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| DomainError::internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| DomainError::internal(format!("hashing task failed: {e}")))?
}

/// Checks a password against a stored PHC hash, off the async threads.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A new random bearer token: 256 bits, URL-safe.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The form in which tokens are stored and compared: SHA-256, hex. A fast
/// hash is right here because tokens carry full entropy, unlike passwords.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An internal service that holds a token of anima-server's: each may call
/// only its own RPCs (see [`crate::rbac::ACCESS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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
    /// benchmarks' measure of what checking costs, makes this caller.
    Unchecked,
}

/// Turns bearer tokens into callers.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
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
        for entry in &config.service_tokens {
            service_token::check_strength(
                &format!("the service token of {}", entry.name.as_str()),
                &entry.token,
            )
            .map_err(anyhow::Error::msg)?;
        }
        Ok(Self {
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
        let (session, user) = self
            .store
            .session_with_user(&hash)
            .await?
            .ok_or_else(invalid)?;
        let now = now_micros();
        if now - session.last_used_at > self.idle_timeout_micros {
            self.store.delete_session(&hash).await?;
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
        }
        Ok(Caller::User {
            user,
            token_hash: hash,
            session_created_at: session.created_at,
        })
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

/// Counts failed logins per username and per peer address in a sliding
/// window. In memory: each server instance limits on its own, which bounds
/// guessing to (instances × limit) per window.
#[derive(Clone)]
pub struct LoginLimiter {
    failures: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    per_user: usize,
    per_peer: usize,
    window: Duration,
}

impl LoginLimiter {
    /// Builds the limiter from configuration.
    pub fn new(config: &ServerConfig) -> Self {
        Self {
            failures: Arc::default(),
            per_user: config.login_failures_per_user as usize,
            per_peer: config.login_failures_per_peer as usize,
            window: Duration::from_secs(config.login_failure_window_secs),
        }
    }

    fn keys(username: &str, peer: Option<IpAddr>) -> [(String, bool); 2] {
        [
            (format!("user:{username}"), true),
            (
                format!(
                    "peer:{}",
                    peer.map_or_else(|| "unknown".into(), |ip| ip.to_string())
                ),
                false,
            ),
        ]
    }

    /// Refuses the attempt when the user or the peer used up its failures.
    pub fn check(&self, username: &str, peer: Option<IpAddr>) -> Result<(), DomainError> {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, is_user) in Self::keys(username, peer) {
            let limit = if is_user {
                self.per_user
            } else {
                self.per_peer
            };
            if let Some(times) = failures.get_mut(&key) {
                times.retain(|at| now.duration_since(*at) < self.window);
                if times.len() >= limit {
                    return Err(DomainError::new(
                        ErrorCode::ResourceExhausted,
                        reason::RATE_LIMITED,
                        format!(
                            "too many failed logins; try again in {} seconds",
                            self.window.as_secs()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Records a failed attempt against the user and the peer.
    pub fn failed(&self, username: &str, peer: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, _) in Self::keys(username, peer) {
            failures.entry(key).or_default().push(now);
        }
    }

    /// Forgets the user's failures after a successful login.
    pub fn succeeded(&self, username: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failures.remove(&format!("user:{username}"));
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
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), hash.clone()).await);
        assert!(!verify_password("correct horsf".into(), hash).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn sixth_failure_is_limited_per_user_and_per_peer() {
        let limiter = LoginLimiter::new(&ServerConfig::default());
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..5 {
            limiter.check("ada", peer).expect("allowed");
            limiter.failed("ada", peer);
        }
        let err = limiter.check("ada", peer).expect_err("sixth");
        assert_eq!(err.reason, reason::RATE_LIMITED);
        // Another user from another peer is unaffected.
        limiter
            .check("bob", Some(IpAddr::from([10, 0, 0, 2])))
            .expect("other");
        // One peer guessing many usernames hits the peer limit.
        for n in 0..20 {
            let name = format!("u{n}");
            if limiter.check(&name, peer).is_err() {
                assert!(n >= 15, "peer limit reached after {n} more");
                return;
            }
            limiter.failed(&name, peer);
        }
        panic!("peer limit never reached");
    }
}
