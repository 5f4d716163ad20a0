//! The local sandbox provider's mechanism: one bubblewrap namespace set
//! per agent session, run by an unprivileged host user.
//!
//! The provider runs as root; every process of a session runs as the
//! sandbox user (`anima-sandbox`, made by `scripts/setup-debian`) with no
//! supplementary groups and `no_new_privs`, inside a user namespace of its
//! own where it holds no capability, and cannot make another one
//! (`--disable-userns`). The session's cgroup ([`crate::cgroup`]) caps its
//! processes, memory and CPU as a whole; `/tmp` is a tmpfs of a fixed size.
//!
//! Inside, the session sees a read-only `/usr` (and the `/bin`, `/lib`
//! links into it), its own `/workspace` (read-write, the only place its
//! work persists), the files it was given under `/run/anima` (its own,
//! mode 0600, on a read-only mount), its skills read-only under
//! `/workspace/.anima`, a private `/tmp`, `/proc` and `/dev`. Nothing else
//! of the host exists there: not the host's home, not another session's
//! workspace, not the host's network. Its network namespace is made by the
//! provider (so the sandbox holds no capability over it) with only
//! loopback, where the provider's egress proxy ([`crate::egress`])
//! listens: the session's network zones, and nothing else, are reached
//! through it. Everything the provider mounts is handed to bubblewrap
//! as a descriptor opened without following links. The sandboxes' root
//! lets only the provider list it (0711); each session's directory, its
//! workspace and its files are the sandbox user's, 0700, so no other
//! local user reaches them.
//!
//! One way out exists: the Unix socket [`FORWARD_SOCKET`], served by the
//! provider ([`crate::forward`]), which passes HTTP requests for `/mcp` to
//! the MCP endpoint and nothing else.

use std::{
    collections::VecDeque,
    ffi::OsString,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::fs::{OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
};

use anyhow::Context;
use tokio::{
    io::AsyncReadExt,
    net::UnixListener,
    process::{Child, Command},
    sync::watch,
};

use crate::{
    cgroup::{GroupLimits, Hierarchy, SessionGroup},
    confine::Confinement,
    egress::{PROXY_ADDRESS, Zones},
};

/// Lines of output kept per session, for its status.
pub const KEPT_OUTPUT_LINES: usize = 50;

/// Longest output line kept, in bytes; the rest of a longer line is cut.
pub const KEPT_LINE_BYTES: usize = 4096;

/// Where bubblewrap is.
pub const BWRAP: &str = "/usr/bin/bwrap";

/// Where `nsenter` is: login shells join a running agent's namespaces.
pub const NSENTER: &str = "/usr/bin/nsenter";

/// The host user sandboxes run as unless configured otherwise.
pub const DEFAULT_USER: &str = "anima-sandbox";

/// Where the given files appear inside the sandbox.
pub const FILES_DIR: &str = "/run/anima";

/// Where skills appear inside the sandbox: `SKILLS_MOUNT/skills/NAME/`.
pub const SKILLS_MOUNT: &str = "/workspace/.anima";

/// The socket inside the sandbox that leads to [`SandboxSpec::forward_to`].
pub const FORWARD_SOCKET: &str = "/run/forward.sock";

/// Resource caps of one session (all its processes together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes, `/tmp` included.
    pub memory_bytes: u64,
    /// CPU bandwidth in thousandths of a core.
    pub millicores: u64,
    /// Processes and threads at once.
    pub processes: u64,
    /// Size of `/tmp`, in bytes.
    pub tmp_bytes: u64,
    /// Size of `/workspace`, in bytes (a file system of its own).
    pub workspace_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 4 << 30,
            millicores: 1000,
            processes: 512,
            tmp_bytes: 1 << 30,
            workspace_bytes: 10 << 30,
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
    /// Files it gets under [`FILES_DIR`]: relative path, bytes (secrets,
    /// the MCP client configuration).
    pub files: Vec<(String, Vec<u8>)>,
    /// Values never kept in its recorded output (secrets): each is
    /// replaced by `[redacted]`.
    pub redact: Vec<Vec<u8>>,
    /// Resource caps.
    pub limits: Limits,
    /// A TCP address (`host:port`) of an HTTP server whose `/mcp` is
    /// reached through [`FORWARD_SOCKET`].
    pub forward_to: Option<String>,
    /// Host paths it sees read-only at the same place (a tool's
    /// installation outside `/usr`, such as a Python environment).
    pub read_only: Vec<PathBuf>,
    /// Skill files, relative to `SKILLS_MOUNT/skills` (`NAME/PATH`).
    pub skills: Vec<(String, Vec<u8>)>,
    /// What its egress proxy lets it reach (nothing by default).
    pub zones: Arc<Zones>,
}

/// The host user sandboxes run as.
#[derive(Debug, Clone, Copy)]
struct SandboxUser {
    uid: u32,
    gid: u32,
}

/// What running sandboxes needs of this host, found once.
#[derive(Debug, Clone)]
struct Host {
    user: SandboxUser,
    cgroups: Hierarchy,
}

/// Starts sandboxes under one directory: `ROOT/SESSION/{workspace,files,anima}`.
#[derive(Debug, Clone)]
pub struct LocalSandboxes {
    root: PathBuf,
    user_name: String,
    host: Arc<OnceLock<Result<Host, String>>>,
}

impl LocalSandboxes {
    /// Sandboxes kept under `root` (created when needed, mode 0700), run
    /// as the host user `user_name`.
    pub fn new(root: impl Into<PathBuf>, user_name: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            user_name: user_name.into(),
            host: Arc::default(),
        }
    }

    /// Whether this host can run them, and if not, why: the provider must
    /// be root, bubblewrap and nsenter installed, the sandbox user present
    /// and a cgroup hierarchy with the pids, memory and cpu controllers
    /// mounted.
    pub fn check(&self) -> Result<(), String> {
        self.host().map(|_| ())
    }

    fn host(&self) -> Result<&Host, String> {
        self.host
            .get_or_init(|| find_host(&self.user_name))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Unmounts the workspaces a provider that ended without destroying
    /// its sandboxes (killed, say) left mounted under the root.
    pub fn reclaim(&self) {
        let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        for mount_point in mountinfo
            .lines()
            .filter_map(|line| line.split_whitespace().nth(4))
            .map(PathBuf::from)
            .filter(|mount_point| mount_point.starts_with(&root))
        {
            unmount(&mount_point);
        }
    }

    /// Sets up the session's directories and starts its command.
    pub async fn start(&self, spec: &SandboxSpec) -> anyhow::Result<Sandbox> {
        let host = self.host().map_err(anyhow::Error::msg)?.clone();
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
        for (name, _) in spec.files.iter().chain(&spec.skills) {
            relative(name)?;
        }
        // Bubblewrap runs as the sandbox user and must reach what it
        // mounts: the root only lets it through (0711, nothing listed),
        // each session's directory is its own (0700).
        make_dir(&self.root, 0o711, None)?;
        let dir = self.root.join(&spec.session_id);
        anyhow::ensure!(
            !dir.exists(),
            "session {} has a sandbox directory already",
            spec.session_id
        );
        let owner = Some(host.user);
        make_private_dir(&dir, owner)?;
        make_private_dir(&dir.join("files"), owner)?;
        write_files(&dir.join("files"), &spec.files, owner)?;
        std::fs::create_dir(dir.join("anima"))?;
        deploy_skills(&dir.join("anima"), &spec.skills)?;

        let forwarder = match &spec.forward_to {
            Some(target) => {
                let socket = dir.join("forward.sock");
                let listener = UnixListener::bind(&socket)
                    .with_context(|| format!("binding {}", socket.display()))?;
                std::os::unix::fs::chown(&socket, Some(host.user.uid), Some(host.user.gid))?;
                std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
                Some(tokio::spawn(crate::forward::serve_mcp(
                    listener,
                    target.clone(),
                )))
            }
            None => None,
        };
        let group = host
            .cgroups
            .create(
                &spec.session_id,
                GroupLimits {
                    processes: spec.limits.processes,
                    memory_bytes: spec.limits.memory_bytes,
                    millicores: spec.limits.millicores,
                },
            )
            .context("making the session's cgroup")?;

        // Its own network: loopback, with the egress proxy listening there.
        let proxy_address: std::net::SocketAddr = PROXY_ADDRESS.parse()?;
        let (network, proxy) =
            tokio::task::spawn_blocking(move || crate::confine::network_namespace(proxy_address))
                .await?
                .context("making the sandbox's network namespace")?;
        proxy.set_nonblocking(true)?;
        let egress = tokio::spawn(crate::egress::serve(
            tokio::net::TcpListener::from_std(proxy)?,
            spec.zones.clone(),
        ));

        // Last, so nothing fails between mounting it and the sandbox that
        // unmounts it.
        let workspace = dir.join("workspace");
        let (size, user) = (spec.limits.workspace_bytes, host.user);
        let image = dir.join(WORKSPACE_IMAGE);
        tokio::task::spawn_blocking(move || make_workspace(&image, &workspace, size, user))
            .await?
            .context("making the session's workspace")?;

        let mut sandbox = Sandbox {
            mounted: true,
            network,
            egress,
            child: None,
            dir,
            output: Arc::new(Mutex::new(VecDeque::new())),
            readers: Vec::new(),
            forwarder,
            spec: spec.clone(),
            user: host.user,
            group,
            alive: watch::channel(()).0,
        };
        let (args, confinement) = sandbox.bwrap(BwrapSession::New, &spec.command)?;
        let mut command = Command::new(BWRAP);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        confinement.apply(&mut command);
        let mut child = command.spawn().context("starting bubblewrap")?;
        drop(confinement);
        let redact = Arc::new(spec.redact.clone());
        if let Some(stdout) = child.stdout.take() {
            sandbox.readers.push(tokio::spawn(keep_lines(
                stdout,
                sandbox.output.clone(),
                redact.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            sandbox.readers.push(tokio::spawn(keep_lines(
                stderr,
                sandbox.output.clone(),
                redact,
            )));
        }
        sandbox.child = Some(child);
        Ok(sandbox)
    }
}

fn find_host(user_name: &str) -> Result<Host, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "the sandbox provider must run as root, to start each session as the \
                    unprivileged sandbox user in a cgroup of its own"
                .into(),
        );
    }
    for tool in [BWRAP, NSENTER] {
        if !Path::new(tool).is_file() {
            return Err(format!("{tool} is missing (run scripts/setup-debian)"));
        }
    }
    let user = nix::unistd::User::from_name(user_name)
        .map_err(|err| format!("looking up the sandbox user {user_name:?}: {err}"))?
        .ok_or_else(|| {
            format!("no host user {user_name:?} to run sandboxes as (run scripts/setup-debian)")
        })?;
    if user.uid.is_root() || user.gid.as_raw() == 0 {
        return Err(format!("the sandbox user {user_name:?} must not be root"));
    }
    let cgroups = Hierarchy::detect().map_err(|err| format!("{err:#}"))?;
    Ok(Host {
        user: SandboxUser {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        },
        cgroups,
    })
}

/// The file system image of a session's `/workspace`, beside it.
pub const WORKSPACE_IMAGE: &str = "workspace.img";

/// Makes `/workspace` a file system of its own, `size` bytes (a sparse
/// image, so only what is written takes disk), owned by the sandbox user
/// (0700), mounted without devices or set-id programs at `workspace`.
fn make_workspace(
    image: &Path,
    workspace: &Path,
    size: u64,
    user: SandboxUser,
) -> anyhow::Result<()> {
    std::fs::File::create(image)?.set_len(size.max(16 << 20))?;
    run(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-m", "0", "-J", "size=4", "-E"])
        .arg(format!(
            "root_owner={}:{},lazy_itable_init=1,nodiscard",
            user.uid, user.gid
        ))
        .arg(image))?;
    std::fs::create_dir(workspace)?;
    run(std::process::Command::new("mount")
        .args(["-o", "loop,nodev,nosuid"])
        .arg(image)
        .arg(workspace))?;
    std::fs::set_permissions(workspace, std::fs::Permissions::from_mode(0o700))?;
    std::fs::remove_dir(workspace.join("lost+found"))?;
    Ok(())
}

/// Unmounts `path` (lazily: whatever still holds it lets go on its own).
fn unmount(path: &Path) {
    if let Err(err) = run(std::process::Command::new("umount").arg("-l").arg(path)) {
        tracing::warn!(path = %path.display(), "{err:#}");
    }
}

/// Runs a system tool to its end; its error output if it failed.
fn run(command: &mut std::process::Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    anyhow::ensure!(
        output.status.success(),
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Makes `dir` private: mode 0700, owned by `owner` if given (an existing
/// one is tightened).
fn make_private_dir(dir: &Path, owner: Option<SandboxUser>) -> anyhow::Result<()> {
    make_dir(dir, 0o700, owner)
}

/// Makes `dir` with `mode` (owned by `owner` if given), or gives an
/// existing one that mode.
fn make_dir(dir: &Path, mode: u32, owner: Option<SandboxUser>) -> anyhow::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    if let Some(user) = owner {
        std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))?;
    }
    Ok(())
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

/// The environment of everything run in a sandbox: the spec's, with a
/// home and a path.
fn base_env(spec: &SandboxSpec) -> Vec<(String, String)> {
    let proxy = format!("http://{PROXY_ADDRESS}");
    let mut env = vec![
        ("HOME".to_owned(), "/workspace".to_owned()),
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
    ];
    // Both spellings: tools read one or the other.
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push((name.to_owned(), proxy.clone()));
    }
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

/// Opens `path` for handing to bubblewrap: a descriptor that names it
/// without granting any access (`O_PATH`) and never a link in its place.
fn path_fd(path: &Path) -> anyhow::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(file.into())
}

/// Writes `files` (relative path, bytes) under `dir`, each new (never
/// through a link), 0600 in 0700 directories, owned by `owner`.
fn write_files(
    dir: &Path,
    files: &[(String, Vec<u8>)],
    owner: Option<SandboxUser>,
) -> anyhow::Result<()> {
    for (name, bytes) in files {
        let path = dir.join(relative(name)?);
        let mut parent = dir.to_path_buf();
        if let Some(parents) = Path::new(name).parent() {
            for part in parents.components() {
                parent.push(part);
                make_private_dir(&parent, owner)?;
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::write_all(&mut file, bytes)?;
        if let Some(user) = owner {
            std::os::unix::fs::fchown(&file, Some(user.uid), Some(user.gid))?;
        }
    }
    Ok(())
}

/// Puts a new set of skills under `anima/skills`, a link to a versioned
/// directory that is swapped at once, so an agent never sees half a set.
/// `anima` is the provider's own directory: the agent sees it read-only
/// and cannot plant a link in it.
fn deploy_skills(anima: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let previous = std::fs::read_link(anima.join("skills")).ok();
    let version = previous
        .as_ref()
        .and_then(|target| {
            target
                .to_str()?
                .strip_prefix("skills.")?
                .parse::<u64>()
                .ok()
        })
        .map_or(1, |n| n + 1);
    let fresh = format!("skills.{version}");
    let target = anima.join(&fresh);
    std::fs::create_dir(&target)?;
    for (name, bytes) in files {
        let path = target.join(relative(name)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, bytes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let link = anima.join("skills.link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&fresh, &link)?;
    std::fs::rename(&link, anima.join("skills"))?;
    if let Some(previous) = previous {
        std::fs::remove_dir_all(anima.join(previous))?;
    }
    Ok(())
}

/// The provider's sandboxes by VM id, shared with its SSH server.
pub type Running = Arc<tokio::sync::Mutex<std::collections::HashMap<String, Sandbox>>>;

/// `name` as a path that stays inside the directory it is joined to.
pub(crate) fn relative(name: &str) -> anyhow::Result<&Path> {
    anima_core::path::contained(name)
        .with_context(|| format!("file name {name:?} must be a plain relative path"))
}

/// Keeps the last [`KEPT_OUTPUT_LINES`] lines of a stream, each cut at
/// [`KEPT_LINE_BYTES`], with every value of `redact` replaced.
async fn keep_lines(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    output: Arc<Mutex<VecDeque<String>>>,
    redact: Arc<Vec<Vec<u8>>>,
) {
    // Enough of a line is held that a secret starting before the cut is
    // whole, and so redacted, before the line is cut.
    let longest = redact.iter().map(Vec::len).max().unwrap_or(0);
    let held = KEPT_LINE_BYTES + longest;
    let mut line = Vec::new();
    let mut buffer = vec![0u8; 8192];
    let keep = |line: &mut Vec<u8>| {
        let mut kept = redacted(line, &redact);
        kept.truncate(KEPT_LINE_BYTES);
        line.clear();
        let Ok(mut lines) = output.lock() else { return };
        if lines.len() == KEPT_OUTPUT_LINES {
            lines.pop_front();
        }
        lines.push_back(String::from_utf8_lossy(&kept).into_owned());
    };
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buffer[..n] {
            if byte == b'\n' {
                keep(&mut line);
            } else if line.len() < held {
                line.push(byte);
            }
        }
    }
    if !line.is_empty() {
        keep(&mut line);
    }
}

/// `line` with every non-empty value of `secrets` replaced.
fn redacted(line: &[u8], secrets: &[Vec<u8>]) -> Vec<u8> {
    let mut line = line.to_vec();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        let mut out = Vec::with_capacity(line.len());
        let mut rest = line.as_slice();
        while let Some(at) = rest
            .windows(secret.len())
            .position(|window| window == secret.as_slice())
        {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(b"[redacted]");
            rest = &rest[at + secret.len()..];
        }
        out.extend_from_slice(rest);
        line = out;
    }
    line
}

/// A running (or finished) session sandbox.
pub struct Sandbox {
    /// Whether its workspace is still mounted (unmounted on drop).
    mounted: bool,
    /// Its network namespace (the provider's, not the sandbox user's).
    network: OwnedFd,
    /// Its egress proxy.
    egress: tokio::task::JoinHandle<()>,
    /// Bubblewrap, once started.
    child: Option<Child>,
    dir: PathBuf,
    output: Arc<Mutex<VecDeque<String>>>,
    /// The tasks keeping its output; done once every process is gone.
    readers: Vec<tokio::task::JoinHandle<()>>,
    forwarder: Option<tokio::task::JoinHandle<()>>,
    spec: SandboxSpec,
    user: SandboxUser,
    group: SessionGroup,
    /// Dropped with the sandbox: what runs beside it (login shells) ends.
    alive: watch::Sender<()>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(forwarder) = &self.forwarder {
            forwarder.abort();
        }
        self.egress.abort();
        if self.mounted {
            unmount(&self.dir.join("workspace"));
        }
    }
}

impl Sandbox {
    /// The host directory of its `/workspace`.
    pub fn workspace(&self) -> PathBuf {
        self.dir.join("workspace")
    }

    /// The session's cgroup.
    pub fn group(&self) -> &SessionGroup {
        &self.group
    }

    fn child(&mut self) -> anyhow::Result<&mut Child> {
        self.child.as_mut().context("the sandbox never started")
    }

    /// Bubblewrap's arguments to run `command` in this sandbox, and what
    /// confines it (which holds the descriptors the arguments name).
    fn bwrap(
        &self,
        session: BwrapSession,
        command: &[String],
    ) -> anyhow::Result<(Vec<OsString>, Confinement)> {
        let mut handed = Vec::new();
        let mut args: Vec<OsString> = Vec::new();
        let push = |args: &mut Vec<OsString>, items: &[&str]| {
            args.extend(items.iter().map(OsString::from));
        };
        push(
            &mut args,
            &[
                "--unshare-user",
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--disable-userns",
                "--die-with-parent",
                "--clearenv",
            ],
        );
        if session == BwrapSession::New {
            push(&mut args, &["--new-session"]);
        }
        push(&mut args, &["--ro-bind", "/usr", "/usr"]);
        push(&mut args, &["--symlink", "usr/bin", "/bin"]);
        push(&mut args, &["--symlink", "usr/sbin", "/sbin"]);
        push(&mut args, &["--symlink", "usr/lib", "/lib"]);
        push(&mut args, &["--symlink", "usr/lib64", "/lib64"]);
        push(&mut args, &["--proc", "/proc", "--dev", "/dev"]);
        let tmp_size = self.spec.limits.tmp_bytes.to_string();
        push(
            &mut args,
            &["--size", &tmp_size, "--perms", "1777", "--tmpfs", "/tmp"],
        );
        // Certificates, for clients that will speak TLS through a proxy.
        push(&mut args, &["--ro-bind-try", "/etc/ssl", "/etc/ssl"]);
        let mut bind = |args: &mut Vec<OsString>, kind: &str, source: &Path, target: &Path| {
            let fd = path_fd(source)?;
            args.extend([
                kind.into(),
                fd.as_raw_fd().to_string().into(),
                target.as_os_str().to_owned(),
            ]);
            handed.push(fd);
            anyhow::Ok(())
        };
        bind(
            &mut args,
            "--bind-fd",
            &self.dir.join("workspace"),
            Path::new("/workspace"),
        )?;
        bind(
            &mut args,
            "--ro-bind-fd",
            &self.dir.join("anima"),
            Path::new(SKILLS_MOUNT),
        )?;
        bind(
            &mut args,
            "--ro-bind-fd",
            &self.dir.join("files"),
            Path::new(FILES_DIR),
        )?;
        if self.forwarder.is_some() {
            bind(
                &mut args,
                "--bind-fd",
                &self.dir.join("forward.sock"),
                Path::new(FORWARD_SOCKET),
            )?;
        }
        for path in &self.spec.read_only {
            bind(&mut args, "--ro-bind-fd", path, path)?;
        }
        // Nothing outside its mounts is writable, not even the sandbox's
        // own root (where `/etc` is).
        push(&mut args, &["--remount-ro", "/", "--chdir", "/workspace"]);
        for (name, value) in base_env(&self.spec) {
            args.extend(["--setenv".into(), name.into(), value.into()]);
        }
        args.push("--".into());
        args.extend(command.iter().map(OsString::from));
        Ok((args, self.confinement(handed)?))
    }

    fn confinement(&self, handed: Vec<OwnedFd>) -> anyhow::Result<Confinement> {
        Ok(Confinement {
            uid: self.user.uid,
            gid: self.user.gid,
            cgroup_procs: self.group.procs_files()?,
            handed,
            network: Some(self.network.as_raw_fd()),
        })
    }

    /// Waits for the command to end; its exit code (`None` when a signal
    /// ended it).
    pub async fn wait(&mut self) -> anyhow::Result<Option<i32>> {
        let code = self.child()?.wait().await?.code();
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
        Ok(match self.child()?.try_wait()? {
            Some(status) if read => Some(status.code()),
            _ => None,
        })
    }

    /// A login shell (or `command` run by one) inside this sandbox with
    /// terminal type `term`: its program, arguments and confinement, for a
    /// PTY. While the agent runs, the shell joins its namespaces (it sees
    /// the agent's processes); once the agent has ended, it gets a new
    /// sandbox over the same workspace and files. Either way it runs as
    /// the sandbox user in the session's cgroup, with no capability.
    pub fn shell_command(
        &mut self,
        command: Option<&str>,
        term: &str,
    ) -> anyhow::Result<(Vec<OsString>, Confinement)> {
        let mut shell: Vec<String> = match command {
            Some(command) => vec!["/bin/sh".into(), "-c".into(), command.into()],
            // Without job control: the terminal's process groups are outside
            // the sandbox's PID namespace, so it could not hand them back.
            None => vec!["/bin/sh".into(), "-i".into(), "+m".into()],
        };
        if self.child()?.try_wait()?.is_none() {
            let bwrap = self.child()?.id().context("the sandbox has no process")?;
            let init = namespace_init(bwrap)?;
            // Bubblewrap's sandbox user namespace is nested in the one
            // that owns the other namespaces: the shell enters the outer
            // one with them, then the inner one, as the agent is. As the
            // sandbox user, which owns both, and not root in either, so
            // the shell keeps no capability.
            let inner = std::fs::File::open(format!("/proc/{init}/ns/user"))
                .context("opening the sandbox's user namespace")?;
            let outer = crate::confine::parent_user_namespace(&inner)
                .context("finding the sandbox's outer user namespace")?;
            let inner = OwnedFd::from(inner);
            let fd_path = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());
            let mut argv: Vec<OsString> = vec![
                NSENTER.into(),
                "--target".into(),
                init.to_string().into(),
                format!("--user={}", fd_path(&outer)).into(),
                "--mount".into(),
                "--pid".into(),
                "--ipc".into(),
                "--uts".into(),
                "--preserve-credentials".into(),
                "--wd".into(),
                "--root".into(),
                "--".into(),
                NSENTER.into(),
                format!("--user={}", fd_path(&inner)).into(),
                "--preserve-credentials".into(),
                "--".into(),
                "/usr/bin/env".into(),
                "-i".into(),
            ];
            let mut env = base_env(&self.spec);
            env.push(("TERM".into(), term.into()));
            argv.extend(
                env.into_iter()
                    .map(|(name, value)| format!("{name}={value}").into()),
            );
            argv.extend(shell.into_iter().map(OsString::from));
            Ok((argv, self.confinement(vec![outer, inner])?))
        } else {
            shell.splice(0..0, ["/usr/bin/env".to_owned(), format!("TERM={term}")]);
            let (args, confinement) = self.bwrap(BwrapSession::Inherited, &shell)?;
            let mut argv = vec![OsString::from(BWRAP)];
            argv.extend(args);
            Ok((argv, confinement))
        }
    }

    /// Replaces its skills (files relative to the skills directory).
    pub fn replace_skills(&self, skills: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
        for (name, _) in skills {
            relative(name)?;
        }
        deploy_skills(&self.dir.join("anima"), skills)
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
    /// namespace dies with it, and whatever is left in its cgroup is
    /// killed), its cgroup removed, its workspace unmounted, and its
    /// directory removed, or with `keep` everything but the workspace's
    /// image ([`WORKSPACE_IMAGE`]; the given files, secrets among them,
    /// always go).
    pub async fn destroy(mut self, keep: bool) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && child.try_wait()?.is_none()
        {
            child.kill().await.context("killing the sandbox")?;
        }
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.abort();
        }
        let group = self.group.clone();
        let workspace = self.dir.join("workspace");
        tokio::task::spawn_blocking(move || {
            group.remove();
            unmount(&workspace);
        })
        .await?;
        self.mounted = false;
        let removed: Vec<PathBuf> = if keep {
            ["files", "anima", "forward.sock"]
                .iter()
                .map(|name| self.dir.join(name))
                .collect()
        } else {
            vec![self.dir.clone()]
        };
        for path in removed {
            let gone = if path.is_dir() {
                tokio::fs::remove_dir_all(&path).await
            } else {
                tokio::fs::remove_file(&path).await
            };
            match gone {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("removing {}", path.display()));
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
    fn secrets_are_redacted_wherever_they_appear() {
        let secrets = [b"s3cret".to_vec(), Vec::new()];
        assert_eq!(
            redacted(b"token=s3cret and s3cret!", &secrets),
            b"token=[redacted] and [redacted]!"
        );
        assert_eq!(redacted(b"nothing here", &secrets), b"nothing here");
    }

    #[tokio::test]
    async fn long_lines_are_cut_after_redaction() {
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let secret = b"TOPSECRET".to_vec();
        let mut line = vec![b'x'; KEPT_LINE_BYTES - 3];
        line.extend_from_slice(&secret);
        line.extend_from_slice(&[b'y'; 10_000]);
        line.push(b'\n');
        line.extend_from_slice(b"last");
        keep_lines(line.as_slice(), output.clone(), Arc::new(vec![secret])).await;
        let kept = output.lock().expect("lock").clone();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].len(), KEPT_LINE_BYTES);
        assert!(!kept[0].contains("TOP"), "no part of the secret is kept");
        assert_eq!(kept[1], "last");
    }
}
