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

use crate::{
    audit::{AuditSink, Record, SharedRecord, opening},
    provider::Running,
};
use anima_proto::v1 as pb;
use anyhow::Context;
use rand::RngCore;
use russh::{
    Channel, ChannelId,
    keys::{
        PrivateKey, PublicKey,
        ssh_key::{LineEnding, private::Ed25519Keypair},
    },
    server::{Auth, ChannelOpenHandle, Handle, Msg, PublicKeyOffer, Session, VerifiedPublicKey},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

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
        let mut server = Door(logins.clone());
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
        let username = format!(
            "login-{}",
            name.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
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

/// Makes a connection handler per client.
struct Door(Arc<Logins>);

impl russh::server::Server for Door {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            logins: self.0.clone(),
            peer: peer.map(|peer| peer.to_string()).unwrap_or_default(),
            login: None,
            terminal: None,
            shell: None,
        }
    }
}

/// A logged-in user's sandbox.
struct Login {
    id: String,
    vm_id: String,
}

/// The terminal the client asked for.
struct Terminal {
    term: String,
    size: pty_process::Size,
}

/// The shell of a connection (one per login).
struct Shell {
    channel: ChannelId,
    input: pty_process::OwnedWritePty,
    record: SharedRecord,
    /// Dropped with the connection: the shell is killed.
    _hangup: tokio::sync::oneshot::Sender<()>,
}

/// One SSH client.
struct Connection {
    logins: Arc<Logins>,
    peer: String,
    login: Option<Login>,
    terminal: Option<Terminal>,
    shell: Option<Shell>,
}

impl Connection {
    /// Starts the login's shell (or `command`) on a PTY in its sandbox.
    async fn open_shell(
        &mut self,
        channel: ChannelId,
        command: Option<&str>,
        session: &mut Session,
    ) -> anyhow::Result<()> {
        let login = self.login.as_ref().context("not logged in")?;
        anyhow::ensure!(self.shell.is_none(), "one shell per login");
        let term = self
            .terminal
            .as_ref()
            .map_or("dumb", |terminal| terminal.term.as_str());
        let ((argv, confinement), sandbox_gone) = {
            let mut running = self.logins.running.lock().await;
            let sandbox = running
                .get_mut(&login.vm_id)
                .context("the session's sandbox is gone")?;
            (sandbox.shell_command(command, term)?, sandbox.destroyed())
        };
        let (program, args) = argv.split_first().context("empty shell command")?;
        let (pty, pts) = pty_process::open()?;
        if let Some(terminal) = &self.terminal {
            pty.resize(terminal.size)?;
        }
        let child = confinement
            .apply_pty(pty_process::Command::new(program).args(args))
            .kill_on_drop(true)
            .spawn(pts)?;
        drop(confinement);
        let (output, input) = pty.into_split();

        let (record, audit_failed) =
            Record::start(&login.id, &self.peer, command, self.logins.audit.clone());
        let (hangup, hung_up) = tokio::sync::oneshot::channel();
        tokio::spawn(pump_output(
            output,
            child,
            session.handle(),
            channel,
            record.clone(),
            Ends {
                hung_up,
                sandbox_gone,
                audit_failed,
            },
        ));
        self.shell = Some(Shell {
            channel,
            input,
            record,
            _hangup: hangup,
        });
        session.channel_success(channel)?;
        Ok(())
    }

    fn shell_of(&mut self, channel: ChannelId) -> Option<&mut Shell> {
        self.shell.as_mut().filter(|shell| shell.channel == channel)
    }
}

/// What ends a shell besides its own exit.
struct Ends {
    /// The client went away.
    hung_up: tokio::sync::oneshot::Receiver<()>,
    /// The sandbox was destroyed.
    sandbox_gone: watch::Receiver<()>,
    /// The audit record cannot be kept (fail closed).
    audit_failed: watch::Receiver<bool>,
}

/// Returns once the record is failed (never, if it cannot fail any more).
async fn audit_failure(failed: &mut watch::Receiver<bool>) {
    if failed.wait_for(|failed| *failed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Copies the shell's output to the client until it exits (or the client
/// or the sandbox goes), then reports its exit and closes the channel.
async fn pump_output(
    mut output: pty_process::OwnedReadPty,
    mut child: tokio::process::Child,
    handle: Handle,
    channel: ChannelId,
    record: SharedRecord,
    mut ends: Ends,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let status = loop {
        tokio::select! {
            read = output.read(&mut buffer) => match read {
                Ok(n) if n > 0 => {
                    if let Ok(mut record) = record.lock() {
                        record.shown(&buffer[..n]);
                    }
                    if handle.data(channel, buffer[..n].to_vec()).await.is_err() {
                        let _ = child.start_kill();
                    }
                }
                // The PTY closes when the last process holding it is gone.
                _ => break child.wait().await,
            },
            status = child.wait() => {
                // What it wrote last may still be in the PTY.
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(100), output.read(&mut buffer)).await
                {
                    if n == 0 || handle.data(channel, buffer[..n].to_vec()).await.is_err() {
                        break;
                    }
                    if let Ok(mut record) = record.lock() {
                        record.shown(&buffer[..n]);
                    }
                }
                break status;
            }
            _ = &mut ends.hung_up => {
                let _ = child.start_kill();
                break child.wait().await;
            }
            () = audit_failure(&mut ends.audit_failed) => {
                let _ = handle
                    .data(channel, b"\r\nthe audit log cannot be written: the shell ends\r\n".to_vec())
                    .await;
                let _ = child.start_kill();
                break child.wait().await;
            }
            _ = ends.sandbox_gone.changed() => {
                let _ = handle
                    .data(channel, b"\r\nthe session's sandbox was destroyed\r\n".to_vec())
                    .await;
                let _ = child.start_kill();
                break child.wait().await;
            }
        }
    };
    let exit_status = status.ok().and_then(|status| status.code()).unwrap_or(-1);
    if let Ok(mut record) = record.lock() {
        record.ended(exit_status);
    }
    let _ = handle
        .exit_status_request(channel, u32::try_from(exit_status).unwrap_or(255))
        .await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.logins.offered(user, offer.public_key) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(vm_id) = self.logins.redeem(user, key.public_key) else {
            return Ok(Auth::reject());
        };
        // The server must know of the login before it opens.
        if let Err(err) = self.logins.audit.report(opening(user, &self.peer)).await {
            tracing::warn!(
                login = user,
                "refusing a login the audit log did not take: {err:#}"
            );
            return Ok(Auth::reject());
        }
        self.login = Some(Login {
            id: user.to_owned(),
            vm_id,
        });
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.login.is_some() && self.shell.is_none() {
            reply.accept().await;
        } else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.terminal = Some(Terminal {
            term: term.to_owned(),
            size: pty_process::Size::new(
                u16::try_from(row_height).unwrap_or(u16::MAX).max(1),
                u16::try_from(col_width).unwrap_or(u16::MAX).max(1),
            ),
        });
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Err(err) = self.open_shell(channel, None, session).await {
            refuse(channel, session, &err)?;
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        if let Err(err) = self.open_shell(channel, Some(&command), session).await {
            refuse(channel, session, &err)?;
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(shell) = self.shell_of(channel) else {
            return Ok(());
        };
        // Input the record does not take never reaches the shell.
        if !shell
            .record
            .lock()
            .is_ok_and(|mut record| record.typed(data))
        {
            return Ok(());
        }
        // A shell that has just exited takes no more input; its end is
        // on its way to the client.
        if let Err(err) = shell.input.write_all(data).await {
            tracing::debug!(%err, "input to a login shell that ended");
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The end of the client's input: the terminal's end-of-file key,
        // recorded like any other.
        if let Some(shell) = self.shell_of(channel)
            && shell
                .record
                .lock()
                .is_ok_and(|mut record| record.typed(&[0x04]))
            && let Err(err) = shell.input.write_all(&[0x04]).await
        {
            tracing::debug!(%err, "end of input to a login shell that ended");
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(shell) = self.shell_of(channel) {
            let size = pty_process::Size::new(
                u16::try_from(row_height).unwrap_or(u16::MAX).max(1),
                u16::try_from(col_width).unwrap_or(u16::MAX).max(1),
            );
            if let Err(err) = shell.input.resize(size) {
                tracing::debug!(%err, "cannot resize a login's terminal");
            }
        }
        Ok(())
    }
}

/// Tells the client why its shell did not start.
fn refuse(
    channel: ChannelId,
    session: &mut Session,
    err: &anyhow::Error,
) -> Result<(), russh::Error> {
    session.data(channel, format!("{err:#}\r\n").into_bytes())?;
    session.channel_failure(channel)?;
    session.close(channel)?;
    Ok(())
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
