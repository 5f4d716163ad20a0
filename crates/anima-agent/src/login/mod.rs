//! Audited SSH logins into session sandboxes (russh).
//!
//! GetLoginCredentials issues a fresh Ed25519 key pair under a random
//! username; the SSH server accepts that key for that username once, before
//! it expires, and only for the sandbox it was issued for. The login gets a
//! PTY shell inside the session's sandbox ([`Sandbox::shell_command`]).
//!
//! Nothing happens in a shell that the server's audit log does not hear
//! of: the login's start is reported before the shell opens (a login the
//! server does not know is refused), then every byte typed and shown, and
//! its end ([`crate::audit`]); a record the server stops taking ends the
//! shell.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

mod shell;

use crate::{audit::AuditSink, sandbox::Running};
use anima_proto::v1 as pb;
use anyhow::Context;
use rand::RngCore;
use russh::keys::{
    PrivateKey, PublicKey,
    ssh_key::{LineEnding, private::Ed25519Keypair},
};
use tokio::{io::AsyncWriteExt, net::TcpListener};

/// How long issued credentials stay usable.
pub const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(300);

/// Credentials issued and not used yet.
struct Pending {
    vm_id: String,
    key: PublicKey,
    expires: Instant,
}

/// The SSH side of the provider: issues credentials and serves logins.
pub struct Logins {
    host_key: PrivateKey,
    host: String,
    port: u16,
    pending: std::sync::Mutex<HashMap<String, Pending>>,
    audit: Arc<dyn AuditSink>,
    running: Running,
}

/// Where the SSH server listens and what it says it is.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Listen address (port 0: any free port; credentials name the port).
    pub listen: SocketAddr,
    /// The host name clients connect to; the listen address's IP if unset.
    pub host: Option<String>,
}

impl Logins {
    /// Starts the SSH server. Its host key is kept in `host_key_path`
    /// (made on first start), so clients can keep trusting it.
    pub async fn start(
        options: LoginOptions,
        host_key_path: &Path,
        audit: Arc<dyn AuditSink>,
        running: Running,
    ) -> anyhow::Result<Arc<Self>> {
        let host_key = load_or_make_host_key(host_key_path).await?;
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding the SSH server to {}", options.listen))?;
        let address = listener.local_addr()?;
        let logins = Arc::new(Self {
            host_key: host_key.clone(),
            host: options.host.unwrap_or_else(|| address.ip().to_string()),
            port: address.port(),
            pending: std::sync::Mutex::new(HashMap::new()),
            audit,
            running,
        });
        let config = Arc::new(russh::server::Config {
            keys: vec![host_key],
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(3600)),
            ..Default::default()
        });
        let mut server = shell::Door(logins.clone());
        tokio::spawn(async move {
            use russh::server::Server as _;
            if let Err(err) = server.run_on_socket(config, &listener).await {
                tracing::error!(%err, "the SSH server stopped");
            }
        });
        Ok(logins)
    }

    /// One-time credentials into sandbox `vm_id`.
    pub fn issue(&self, vm_id: &str) -> anyhow::Result<pb::LoginCredentials> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        let mut name = [0u8; 12];
        rand::rng().fill_bytes(&mut name);
        let username = format!("login-{}", hex::encode(name));
        let private_key_pem = key.to_openssh(LineEnding::LF)?.to_string();
        let host_public_key = self.host_key.public_key().to_openssh()?;
        let expire_time = SystemTime::now() + CREDENTIAL_LIFETIME;
        {
            let mut pending = self
                .pending
                .lock()
                .map_err(|_| anyhow::anyhow!("credentials lock poisoned"))?;
            let now = Instant::now();
            pending.retain(|_, credential| credential.expires > now);
            pending.insert(
                username.clone(),
                Pending {
                    vm_id: vm_id.to_owned(),
                    key: key.public_key().clone(),
                    expires: now + CREDENTIAL_LIFETIME,
                },
            );
        }
        let since_epoch = expire_time.duration_since(SystemTime::UNIX_EPOCH)?;
        Ok(pb::LoginCredentials {
            command: format!(
                "ssh -i KEY -p {} -o StrictHostKeyChecking=yes {username}@{}",
                self.port, self.host
            ),
            host: self.host.clone(),
            port: i32::from(self.port),
            username,
            private_key_pem,
            host_public_key,
            expire_time: Some(prost_types::Timestamp {
                seconds: i64::try_from(since_epoch.as_secs())?,
                nanos: i32::try_from(since_epoch.subsec_nanos())?,
            }),
        })
    }

    /// Forgets the unused credentials of a sandbox (it is being destroyed).
    pub fn revoke(&self, vm_id: &str) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|_, credential| credential.vm_id != vm_id);
        }
    }

    /// Whether `username` holds live credentials for `key` (without using them).
    fn offered(&self, username: &str, key: &PublicKey) -> bool {
        self.pending.lock().is_ok_and(|pending| {
            pending.get(username).is_some_and(|credential| {
                credential.key.key_data() == key.key_data() && credential.expires > Instant::now()
            })
        })
    }

    /// Uses up the credentials of `username` if `key` is theirs; the
    /// sandbox they open.
    fn redeem(&self, username: &str, key: &PublicKey) -> Option<String> {
        let mut pending = self.pending.lock().ok()?;
        let credential = pending.get(username)?;
        if credential.key.key_data() != key.key_data() || credential.expires <= Instant::now() {
            return None;
        }
        pending.remove(username).map(|credential| credential.vm_id)
    }
}

async fn load_or_make_host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => {
            PrivateKey::from_openssh(text).with_context(|| format!("reading {}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rng().fill_bytes(&mut seed);
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let text = key.to_openssh(LineEnding::LF)?;
            write_private(path, text.as_bytes())
                .await
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes a file only its owner can read.
async fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

#[cfg(test)]
mod tests {
    use super::*;

    use async_trait::async_trait;

    struct Nowhere;

    #[async_trait]
    impl AuditSink for Nowhere {
        async fn report(&self, _report: pb::LoginReport) -> anyhow::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn credentials_work_once_with_their_key_and_not_after_expiry() {
        let key = |seed: u8| PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]));
        let logins = Logins {
            host_key: key(0),
            host: "127.0.0.1".into(),
            port: 22,
            pending: std::sync::Mutex::new(HashMap::new()),
            audit: Arc::new(Nowhere),
            running: Running::default(),
        };
        let mine = key(1);
        let now = Instant::now();
        let mut pending = logins.pending.lock().expect("lock");
        for (username, expires) in [
            ("login-live", now + Duration::from_secs(60)),
            ("login-stale", now - Duration::from_secs(1)),
        ] {
            pending.insert(
                username.into(),
                Pending {
                    vm_id: "local:a".into(),
                    key: mine.public_key().clone(),
                    expires,
                },
            );
        }
        drop(pending);
        assert!(!logins.offered("login-stale", mine.public_key()));
        assert_eq!(logins.redeem("login-stale", mine.public_key()), None);
        assert!(!logins.offered("login-live", key(2).public_key()));
        assert_eq!(logins.redeem("login-live", key(2).public_key()), None);
        assert!(logins.offered("login-live", mine.public_key()));
        assert_eq!(
            logins.redeem("login-live", mine.public_key()).as_deref(),
            Some("local:a")
        );
        assert_eq!(
            logins.redeem("login-live", mine.public_key()),
            None,
            "used up"
        );
    }
}
