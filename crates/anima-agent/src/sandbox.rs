//! The local sandbox provider's mechanism: one bubblewrap namespace set
//! per agent session (Debian's `bubblewrap`; run as root, as the server
//! that starts agents is).
//!
//! Inside, the session sees a read-only `/usr` (and the `/bin`, `/lib`
//! links into it), its own `/workspace` (read-write, the only place its
//! work persists), the files it was given read-only under `/run/anima`, a
//! private `/tmp`, `/proc` and `/dev`. Nothing else of the host exists
//! there: not the host's home, not another session's workspace. Every
//! namespace is unshared, so without network it has only its own
//! loopback; `network` shares the host's. Memory and CPU time are capped
//! by `prlimit` around it. The session's processes live in their own PID
//! namespace under bubblewrap, which dies with its parent: killing it
//! reaps them all.
//!
//! One way out exists without network: the Unix socket [`FORWARD_SOCKET`],
//! whose connections are forwarded to one TCP address (the MCP endpoint),
//! so a session reaches the server and nothing else.

use std::{
    collections::VecDeque,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::{TcpStream, UnixListener},
    process::{Child, Command},
    sync::watch,
};

/// Lines of output kept per session, for its status.
pub const KEPT_OUTPUT_LINES: usize = 50;

/// Where `prlimit` is: everything in a sandbox runs under its caps.
pub const PRLIMIT: &str = "/usr/bin/prlimit";

/// Where the given files appear inside the sandbox.
pub const FILES_DIR: &str = "/run/anima";

/// The socket inside the sandbox that leads to [`SandboxSpec::forward_to`].
pub const FORWARD_SOCKET: &str = "/run/forward.sock";

/// Resource caps of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Address space per process, in bytes.
    pub memory_bytes: u64,
    /// CPU time per process, in seconds.
    pub cpu_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 4 << 30,
            cpu_seconds: 3600,
        }
    }
}

/// What to run, and with what.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// The session this sandbox belongs to (its directory's name).
    pub session_id: String,
    /// The program and its arguments, run in `/workspace`.
    pub command: Vec<String>,
    /// Environment of the command (nothing of the host's is passed).
    pub env: Vec<(String, String)>,
    /// Whether it shares the host's network.
    pub network: bool,
    /// Files it gets read-only under [`FILES_DIR`]: relative path, bytes
    /// (secrets, the MCP client configuration).
    pub files: Vec<(String, Vec<u8>)>,
    /// Resource caps.
    pub limits: Limits,
    /// A TCP address (`host:port`) reached through [`FORWARD_SOCKET`].
    pub forward_to: Option<String>,
    /// Host paths it sees read-only at the same place (a tool's
    /// installation outside `/usr`, such as a Python environment).
    pub read_only: Vec<PathBuf>,
    /// Files put into `/workspace` before the command starts (skills):
    /// relative path, bytes.
    pub workspace_files: Vec<(String, Vec<u8>)>,
}

/// Starts sandboxes under one directory: `ROOT/SESSION/workspace` and
/// `ROOT/SESSION/files`.
#[derive(Debug, Clone)]
pub struct LocalSandboxes {
    root: PathBuf,
}

impl LocalSandboxes {
    /// Sandboxes kept under `root` (created when needed; keep it off the
    /// paths sandboxes see).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Whether this machine can run them (bubblewrap and prlimit found).
    pub fn available() -> bool {
        ["/usr/bin/bwrap", PRLIMIT, "/usr/bin/nsenter"]
            .iter()
            .all(|tool| Path::new(tool).is_file())
    }

    /// Sets up the session's directories and starts its command.
    pub async fn start(&self, spec: &SandboxSpec) -> anyhow::Result<Sandbox> {
        anyhow::ensure!(!spec.command.is_empty(), "no command to run");
        anyhow::ensure!(
            !spec.session_id.is_empty()
                && spec
                    .session_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "session id {:?} is not a plain name",
            spec.session_id
        );
        let dir = self.root.join(&spec.session_id);
        let workspace = dir.join("workspace");
        let files = dir.join("files");
        tokio::fs::create_dir_all(&workspace)
            .await
            .with_context(|| format!("creating {}", workspace.display()))?;
        tokio::fs::create_dir_all(&files).await?;
        write_files(&files, &spec.files).await?;
        write_files(&workspace, &spec.workspace_files).await?;

        let forwarder = match &spec.forward_to {
            Some(target) => {
                let socket = dir.join("forward.sock");
                match tokio::fs::remove_file(&socket).await {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err.into()),
                }
                let listener = UnixListener::bind(&socket)
                    .with_context(|| format!("binding {}", socket.display()))?;
                Some((socket, tokio::spawn(forward(listener, target.clone()))))
            }
            None => None,
        };

        let forward_socket = forwarder.as_ref().map(|(socket, _)| socket.clone());
        let mut command = Command::new(PRLIMIT);
        command
            .args(bwrap_args(
                spec,
                &dir,
                forward_socket.as_deref(),
                BwrapSession::New,
                &spec.command,
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().context("starting bubblewrap")?;
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(keep_lines(stdout, output.clone())));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(keep_lines(stderr, output.clone())));
        }
        Ok(Sandbox {
            child,
            dir,
            output,
            readers,
            forwarder: forwarder.map(|(_, task)| task),
            forward_socket,
            spec: spec.clone(),
            alive: watch::channel(()).0,
        })
    }
}

/// Whether bubblewrap puts the command in a session of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BwrapSession {
    /// Its own session, so it cannot push input into a terminal it
    /// inherited (TIOCSTI): for agents.
    New,
    /// The caller's, whose terminal it needs: for login shells, whose
    /// terminal is a PTY of their own.
    Inherited,
}

/// `prlimit`'s arguments that run `command` in the sandbox of `spec` kept
/// under `dir`.
fn bwrap_args(
    spec: &SandboxSpec,
    dir: &Path,
    forward_socket: Option<&Path>,
    session: BwrapSession,
    command: &[String],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = limit_args(spec.limits);
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["/usr/bin/bwrap", "--unshare-all"]);
    if spec.network {
        push(&["--share-net"]);
    }
    push(&["--die-with-parent", "--clearenv"]);
    if session == BwrapSession::New {
        push(&["--new-session"]);
    }
    push(&["--ro-bind", "/usr", "/usr"]);
    push(&["--symlink", "usr/bin", "/bin"]);
    push(&["--symlink", "usr/sbin", "/sbin"]);
    push(&["--symlink", "usr/lib", "/lib"]);
    push(&["--symlink", "usr/lib64", "/lib64"]);
    push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    // Name resolution and certificates, for sessions with network.
    push(&["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]);
    push(&["--ro-bind-try", "/etc/ssl", "/etc/ssl"]);
    push(&["--chdir", "/workspace"]);
    args.extend([
        "--bind".into(),
        dir.join("workspace").into_os_string(),
        "/workspace".into(),
        "--ro-bind".into(),
        dir.join("files").into_os_string(),
        FILES_DIR.into(),
    ]);
    if let Some(socket) = forward_socket {
        args.extend(["--bind".into(), socket.into(), FORWARD_SOCKET.into()]);
    }
    for path in &spec.read_only {
        args.extend(["--ro-bind".into(), path.into(), path.into()]);
    }
    for (name, value) in base_env(spec) {
        args.extend(["--setenv".into(), name.into(), value.into()]);
    }
    args.push("--".into());
    args.extend(command.iter().map(OsString::from));
    args
}

/// `prlimit`'s caps, up to the `--` before the capped program.
fn limit_args(limits: Limits) -> Vec<OsString> {
    vec![
        format!("--as={}", limits.memory_bytes).into(),
        format!("--cpu={}", limits.cpu_seconds).into(),
        "--".into(),
    ]
}

/// The environment of everything run in a sandbox: the spec's, with a
/// home and a path.
fn base_env(spec: &SandboxSpec) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_owned(), "/workspace".to_owned()),
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
    ];
    env.extend(spec.env.iter().cloned());
    env
}

/// The process that is PID 1 of the namespaces bubblewrap `pid` made.
fn namespace_init(pid: u32) -> anyhow::Result<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .context("reading the sandbox's processes")?;
    children
        .split_whitespace()
        .next()
        .and_then(|child| child.parse().ok())
        .context("the sandbox has no process left")
}

/// Writes `files` (relative path, bytes) under `dir`.
pub async fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    for (name, bytes) in files {
        let path = dir.join(relative(name)?);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, bytes)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `name` as a path that stays inside the directory it is joined to.
pub fn relative(name: &str) -> anyhow::Result<&Path> {
    let path = Path::new(name);
    anyhow::ensure!(
        !name.is_empty()
            && path
                .components()
                .all(|part| matches!(part, std::path::Component::Normal(_))),
        "file name {name:?} must be a plain relative path"
    );
    Ok(path)
}

/// Hands every connection on `listener` to a new TCP connection to
/// `target`, both ways, until the listener's task is aborted.
async fn forward(listener: UnixListener, target: String) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let target = target.clone();
        tokio::spawn(async move {
            // A refused connection closes the socket: the agent sees the
            // endpoint down, as it would over TCP.
            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// Keeps the last [`KEPT_OUTPUT_LINES`] lines of a stream.
async fn keep_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    output: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(mut kept) = output.lock() else { return };
        if kept.len() == KEPT_OUTPUT_LINES {
            kept.pop_front();
        }
        kept.push_back(line);
    }
}

/// A running (or finished) session sandbox.
pub struct Sandbox {
    child: Child,
    dir: PathBuf,
    output: Arc<Mutex<VecDeque<String>>>,
    /// The tasks keeping its output; done once every process is gone.
    readers: Vec<tokio::task::JoinHandle<()>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
    forward_socket: Option<PathBuf>,
    spec: SandboxSpec,
    /// Dropped with the sandbox: what runs beside it (login shells) ends.
    alive: watch::Sender<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(forwarder) = &self.forwarder {
            forwarder.abort();
        }
    }
}

impl Sandbox {
    /// The host directory of its `/workspace`.
    pub fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    /// Waits for the command to end; its exit code (`None` when a signal
    /// ended it).
    pub async fn wait(&mut self) -> anyhow::Result<Option<i32>> {
        let code = self.child.wait().await?.code();
        // Its last lines may still be in the pipes.
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        Ok(code)
    }

    /// The exit code once it has ended and its output is all read:
    /// `Some(None)` when a signal ended it.
    pub fn try_exit(&mut self) -> anyhow::Result<Option<Option<i32>>> {
        let read = self
            .readers
            .iter()
            .all(tokio::task::JoinHandle::is_finished);
        Ok(match self.child.try_wait()? {
            Some(status) if read => Some(status.code()),
            _ => None,
        })
    }

    /// The argv (for `prlimit`'s path, [`PRLIMIT`]) of a login shell, or of
    /// `command` run by one, inside this sandbox with terminal type `term`.
    /// While the agent runs, the shell joins its namespaces (it sees the
    /// agent's processes); once the agent has ended, it gets a new sandbox
    /// over the same workspace and files.
    pub fn shell_command(
        &mut self,
        command: Option<&str>,
        term: &str,
    ) -> anyhow::Result<Vec<OsString>> {
        let mut shell: Vec<String> = match command {
            Some(command) => vec!["/bin/sh".into(), "-c".into(), command.into()],
            // Without job control: the terminal's process groups are outside
            // the sandbox's PID namespace, so it could not hand them back.
            None => vec!["/bin/sh".into(), "-i".into(), "+m".into()],
        };
        let mut argv: Vec<OsString> = vec![PRLIMIT.into()];
        if self.child.try_wait()?.is_none() {
            let bwrap = self.child.id().context("the sandbox has no process")?;
            let init = namespace_init(bwrap)?;
            argv.extend(limit_args(self.spec.limits));
            argv.extend(
                [
                    "/usr/bin/nsenter",
                    "--target",
                    &init.to_string(),
                    "--all",
                    "--wd",
                    "--root",
                    "/usr/bin/env",
                    "-i",
                ]
                .map(OsString::from),
            );
            let mut env = base_env(&self.spec);
            env.push(("TERM".into(), term.into()));
            argv.extend(
                env.into_iter()
                    .map(|(name, value)| format!("{name}={value}").into()),
            );
            argv.extend(shell.into_iter().map(OsString::from));
        } else {
            shell.splice(0..0, ["/usr/bin/env".to_owned(), format!("TERM={term}")]);
            argv.extend(bwrap_args(
                &self.spec,
                &self.dir,
                self.forward_socket.as_deref(),
                BwrapSession::Inherited,
                &shell,
            ));
        }
        Ok(argv)
    }

    /// Ends (with an error) when the sandbox is destroyed.
    pub fn destroyed(&self) -> watch::Receiver<()> {
        self.alive.subscribe()
    }

    /// The last lines it wrote (standard output and error, interleaved).
    pub fn last_output(&self) -> Vec<String> {
        self.output
            .lock()
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Ends it: every process of the session is killed (bubblewrap's PID
    /// namespace dies with it), and its directory is removed unless `keep`.
    pub async fn destroy(mut self, keep: bool) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_none() {
            self.child.kill().await.context("killing the sandbox")?;
        }
        if !keep {
            match tokio::fs::remove_dir_all(&self.dir).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("removing {}", self.dir.display()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_files_stay_inside_their_directory() {
        assert!(relative("mcp/config.json").is_ok());
        for bad in ["", "/etc/passwd", "../escape", "a/../../b"] {
            assert!(relative(bad).is_err(), "{bad:?}");
        }
    }
}
