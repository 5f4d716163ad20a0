//! Audited SSH logins into session sandboxes (russh).
//!
//! GetLoginCredentials issues a fresh Ed25519 key pair under a random
//! username; the SSH server accepts that key for that username once, before
//! it expires, and only for the sandbox it was issued for. The login gets a
//! PTY shell inside the session's sandbox ([`Sandbox::shell_command`]).
//!
//! Nothing happens in a shell that the server's audit log does not hear
//! of: the login's start is reported before the shell opens (a login the
//! server does not know is refused), then every command line typed, and at
//! the end the bytes both ways and the exit status ([`AuditSink`]).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anima_proto::v1::{self as pb, agent_audit_service_client::AgentAuditServiceClient};
use anyhow::Context;
use async_trait::async_trait;
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
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel as GrpcChannel,
};

use crate::provider::Running;

/// How long issued credentials stay usable.
pub const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(300);

/// Longest command line kept in the audit log, in bytes.
const MAX_AUDITED_LINE: usize = 4_096;

/// Most command lines kept per login; later ones are counted, not kept.
const MAX_AUDITED_LINES: usize = 10_000;

/// Where logins are reported: the server's audit log.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Stores the record of a login as it stands.
    async fn report(&self, report: pb::LoginReport) -> anyhow::Result<()>;
}

/// anima-server's AgentAuditService, reached with a service token.
pub struct ServerAudit {
    client: AgentAuditServiceClient<GrpcChannel>,
    authorization: MetadataValue<Ascii>,
}

impl ServerAudit {
    /// The service at `url` (connected on first use).
    pub fn new(url: &str, token: &str) -> anyhow::Result<Self> {
        let channel = GrpcChannel::from_shared(url.to_owned())
            .map_err(|err| anyhow::anyhow!("server URL {url:?}: {err}"))?
            .connect_lazy();
        Ok(Self {
            client: AgentAuditServiceClient::new(channel),
            authorization: format!("Bearer {token}")
                .parse()
                .map_err(|_| anyhow::anyhow!("the server token is not a valid header value"))?,
        })
    }
}

#[async_trait]
impl AuditSink for ServerAudit {
    async fn report(&self, report: pb::LoginReport) -> anyhow::Result<()> {
        let mut request = tonic::Request::new(report);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        self.client
            .clone()
            .report_login(request)
            .await
            .map_err(|status| anyhow::anyhow!("reporting a login: {}", status.message()))?;
        Ok(())
    }
}

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

/// The audit record of one login, fed by what is typed and shown.
struct Audit {
    report: pb::LoginReport,
    /// The command line being typed.
    line: Vec<u8>,
    /// Where an escape sequence (arrow keys, ...) being typed stands.
    escape: Escape,
    /// Lines past [`MAX_AUDITED_LINES`], counted.
    dropped: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Started,
    Sequence,
}

impl Audit {
    fn new(login_id: &str, peer: &str) -> Self {
        Self {
            report: pb::LoginReport {
                login_id: login_id.to_owned(),
                start_time: Some(now()),
                peer: peer.to_owned(),
                ..pb::LoginReport::default()
            },
            line: Vec::new(),
            escape: Escape::None,
            dropped: 0,
        }
    }

    /// Takes in what the user typed; whether a command line was completed.
    /// Line editing is applied (backspace, ^U, ^C); escape sequences such
    /// as arrow keys are left out.
    fn typed(&mut self, bytes: &[u8]) -> bool {
        self.report.bytes_in += i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let mut completed = false;
        for &byte in bytes {
            match (self.escape, byte) {
                (Escape::None, 0x1b) => self.escape = Escape::Started,
                (Escape::Started, b'[' | b'O') => self.escape = Escape::Sequence,
                (Escape::Started, _) => self.escape = Escape::None,
                (Escape::Sequence, 0x40..=0x7e) => self.escape = Escape::None,
                (Escape::Sequence, _) => {}
                (Escape::None, b'\r' | b'\n') => completed |= self.end_line(),
                (Escape::None, 0x7f | 0x08) => {
                    // One character back, whatever its UTF-8 length.
                    while let Some(last) = self.line.pop() {
                        if last & 0xc0 != 0x80 {
                            break;
                        }
                    }
                }
                (Escape::None, 0x03 | 0x15) => self.line.clear(),
                (Escape::None, b'\t') => self.line.push(byte),
                (Escape::None, 0x00..=0x1f) => {}
                (Escape::None, _) => {
                    if self.line.len() < MAX_AUDITED_LINE {
                        self.line.push(byte);
                    }
                }
            }
        }
        completed
    }

    fn end_line(&mut self) -> bool {
        let line = String::from_utf8_lossy(&self.line).trim().to_owned();
        self.line.clear();
        if line.is_empty() {
            return false;
        }
        if self.report.commands.len() < MAX_AUDITED_LINES {
            self.report.commands.push(line);
        } else {
            self.dropped += 1;
        }
        true
    }

    /// A command run without a shell (`ssh host COMMAND`).
    fn executed(&mut self, command: &str) {
        self.report.commands.push(command.to_owned());
    }

    fn shown(&mut self, bytes: usize) {
        self.report.bytes_out += i64::try_from(bytes).unwrap_or(i64::MAX);
    }

    fn ended(&mut self, exit_status: i32) {
        // A last line typed without Enter still counts.
        self.end_line();
        if self.dropped > 0 {
            self.report.commands.push(format!(
                "[{} more lines not kept in the audit log]",
                self.dropped
            ));
        }
        self.report.end_time = Some(now());
        self.report.exit_status = Some(exit_status);
    }
}

fn now() -> prost_types::Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0),
    }
}

/// Sends each new state of a login's record to the sink, in order, until
/// the login's last state has gone out.
async fn forward_reports(mut updates: watch::Receiver<pb::LoginReport>, sink: Arc<dyn AuditSink>) {
    while updates.changed().await.is_ok() {
        let report = updates.borrow_and_update().clone();
        for attempt in 1..=5u32 {
            match sink.report(report.clone()).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(login = %report.login_id, attempt, "{err:#}");
                    tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                }
            }
        }
    }
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
    audit: Arc<std::sync::Mutex<Audit>>,
    updates: watch::Sender<pb::LoginReport>,
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

        let mut audit = Audit::new(&login.id, &self.peer);
        if let Some(command) = command {
            audit.executed(command);
        }
        let (updates, reports) = watch::channel(audit.report.clone());
        tokio::spawn(forward_reports(reports, self.logins.audit.clone()));
        let audit = Arc::new(std::sync::Mutex::new(audit));
        let (hangup, hung_up) = tokio::sync::oneshot::channel();
        tokio::spawn(pump_output(
            output,
            child,
            session.handle(),
            channel,
            audit.clone(),
            updates.clone(),
            Ends {
                hung_up,
                sandbox_gone,
            },
        ));
        self.shell = Some(Shell {
            channel,
            input,
            audit,
            updates,
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
}

/// Copies the shell's output to the client until it exits (or the client
/// or the sandbox goes), then reports its exit and closes the channel.
async fn pump_output(
    mut output: pty_process::OwnedReadPty,
    mut child: tokio::process::Child,
    handle: Handle,
    channel: ChannelId,
    audit: Arc<std::sync::Mutex<Audit>>,
    updates: watch::Sender<pb::LoginReport>,
    mut ends: Ends,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let status = loop {
        tokio::select! {
            read = output.read(&mut buffer) => match read {
                Ok(n) if n > 0 => {
                    if let Ok(mut audit) = audit.lock() {
                        audit.shown(n);
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
                    if let Ok(mut audit) = audit.lock() {
                        audit.shown(n);
                    }
                }
                break status;
            }
            _ = &mut ends.hung_up => {
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
    if let Ok(mut audit) = audit.lock() {
        audit.ended(exit_status);
        updates.send_replace(audit.report.clone());
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
        let start = Audit::new(user, &self.peer).report;
        if let Err(err) = self.logins.audit.report(start).await {
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
        let completed = shell.audit.lock().is_ok_and(|mut audit| audit.typed(data));
        if completed && let Ok(audit) = shell.audit.lock() {
            shell.updates.send_replace(audit.report.clone());
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
        // The end of the client's input: the terminal's end-of-file key.
        if let Some(shell) = self.shell_of(channel)
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

/// One-time credentials as an OpenSSH client needs them.
#[derive(Debug, Clone)]
pub struct ClientCredentials<'a> {
    /// Host to connect to.
    pub host: &'a str,
    /// Its port.
    pub port: i32,
    /// The login's username.
    pub username: &'a str,
    /// The OpenSSH private key.
    pub private_key_pem: &'a str,
    /// The server's host key line, the only one trusted.
    pub host_public_key: &'a str,
}

/// The system `ssh` client set up for `credentials`, with the caller's own
/// `options` (such as `-t`), running `command` if any: the
/// key and the server's host key are written into `dir` (keep it private
/// and remove it afterwards); host keys are checked strictly against that
/// one key. Nothing the server sent becomes an option: the username and
/// host are checked to be plain names, the host key is parsed and written
/// anew, and `--` ends the options before the destination.
pub fn openssh_client(
    dir: &Path,
    credentials: &ClientCredentials<'_>,
    options: &[&str],
    command: &[String],
) -> std::io::Result<std::process::Command> {
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let plain = |value: &str, extra: &[u8]| {
        !value.is_empty()
            && value.len() <= 253
            && !value.starts_with('-')
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b) || extra.contains(&b))
    };
    if !plain(credentials.username, b"") {
        return Err(refuse(format!(
            "the server named the login user {:?}, which is not a plain name",
            credentials.username
        )));
    }
    if !plain(credentials.host, b":") {
        return Err(refuse(format!(
            "the server named the host {:?}, which is not a plain host name or address",
            credentials.host
        )));
    }
    let port = u16::try_from(credentials.port)
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| refuse(format!("the server named port {}", credentials.port)))?;
    let host_key = PublicKey::from_openssh(credentials.host_public_key.trim())
        .and_then(|key| key.to_openssh())
        .map_err(|err| refuse(format!("the server's host key: {err}")))?;
    let key = dir.join("login_key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)?;
    std::io::Write::write_all(&mut file, credentials.private_key_pem.as_bytes())?;
    let known_hosts = dir.join("known_hosts");
    let host = if port == 22 {
        credentials.host.to_owned()
    } else {
        format!("[{}]:{port}", credentials.host)
    };
    std::fs::write(&known_hosts, format!("{host} {host_key}\n"))?;
    let mut ssh = std::process::Command::new("ssh");
    ssh.arg("-i")
        .arg(&key)
        .arg("-p")
        .arg(port.to_string())
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
    ssh.args(options)
        .arg("--")
        .arg(format!("{}@{}", credentials.username, credentials.host))
        .args(command);
    Ok(ssh)
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

    fn typed(input: &[u8]) -> Vec<String> {
        let mut audit = Audit::new("login-x", "peer");
        audit.typed(input);
        audit.ended(0);
        audit.report.commands
    }

    #[test]
    fn command_lines_are_kept_as_edited() {
        assert_eq!(typed(b"ls -l\r"), ["ls -l"]);
        assert_eq!(typed(b"lx\x7fs\rpwd\n"), ["ls", "pwd"]);
        assert_eq!(typed(b"rm -rf /\x03echo hi\r"), ["echo hi"]);
        // Arrow keys are not text.
        assert_eq!(typed(b"\x1b[Acat x\x1b[D\r"), ["cat x"]);
        assert_eq!(typed("é\x7fe\r".as_bytes()), ["e"]);
        // Typed without Enter before the end.
        assert_eq!(typed(b"exit"), ["exit"]);
        assert!(typed(b"\r\r  \r").is_empty());
    }

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

    #[test]
    fn nothing_the_server_sends_becomes_an_ssh_option() {
        let dir = tempfile::tempdir().expect("dir");
        let host_key = PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]))
            .public_key()
            .to_openssh()
            .expect("key");
        let good = ClientCredentials {
            host: "127.0.0.1",
            port: 2222,
            username: "login-ab12",
            private_key_pem: "",
            host_public_key: &host_key,
        };
        let injected = format!("{host_key}\n@cert-authority * {host_key}");
        for bad in [
            ClientCredentials {
                username: "-oProxyCommand=touch /tmp/x",
                ..good.clone()
            },
            ClientCredentials {
                host: "-oProxyCommand=x",
                ..good.clone()
            },
            ClientCredentials {
                host: "a b",
                ..good.clone()
            },
            ClientCredentials {
                port: 0,
                ..good.clone()
            },
            ClientCredentials {
                host_public_key: &injected,
                ..good.clone()
            },
        ] {
            assert!(
                openssh_client(dir.path(), &bad, &["-t"], &[]).is_err(),
                "{bad:?}"
            );
        }
        let ssh = openssh_client(dir.path(), &good, &["-t"], &["uptime".into()]).expect("client");
        let args: Vec<String> = ssh
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[args.len() - 3..],
            ["--", "login-ab12@127.0.0.1", "uptime"]
        );
    }

    #[test]
    fn bytes_in_count_everything_typed() {
        let mut audit = Audit::new("login-x", "peer");
        audit.typed(b"ab\x1b[A\r");
        assert_eq!(audit.report.bytes_in, 6);
    }
}
