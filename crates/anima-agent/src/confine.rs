//! How a sandbox's first process becomes unprivileged before it runs
//! anything: it joins its session's cgroup and network namespace, keeps
//! the descriptors it is handed, gives up core dumps, drops every group,
//! becomes the sandbox user and sets `no_new_privs`, all between `fork`
//! and `exec`; and the network namespace itself, made by the provider.
//!
//! This is the crate's only unsafe code: a pre-exec hook, and the system
//! calls around namespaces (unshare, setns, ioctls on namespace and
//! interface descriptors). No safe API in std or tokio joins a cgroup or
//! clears `FD_CLOEXEC` in the child alone, and doing it after the spawn
//! would race with the child's first `fork`.
//! The hook makes raw system calls only (async-signal-safe, no allocation),
//! as a hook running in a forked child of a threaded process must.
#![allow(unsafe_code)]

use std::{
    ffi::CString,
    os::fd::{AsRawFd, OwnedFd, RawFd},
};

/// The user namespace that owns the one `namespace` (a user namespace's
/// descriptor) is in: bubblewrap nests the sandbox's user namespace in
/// the one that owns its other namespaces, so whoever joins them must
/// enter that one first.
pub fn parent_user_namespace(namespace: &impl AsRawFd) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: the ioctl takes no argument and returns a new descriptor
    // (close-on-exec) or -1; the descriptor is owned by the result alone.
    let fd = unsafe { libc::ioctl(namespace.as_raw_fd(), libc::NS_GET_PARENT) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned open by the kernel and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A network namespace of a sandbox's own, made by the provider (so the
/// sandbox holds no capability over it) with its loopback up and the
/// provider's listener bound inside, at `address`.
pub fn network_namespace(
    address: std::net::SocketAddr,
) -> std::io::Result<(OwnedFd, std::net::TcpListener)> {
    // A namespace change affects the calling thread only: a thread of its
    // own makes it and ends.
    std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's network namespace,
        // which no other code on this short-lived thread relies on.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        loopback_up()?;
        let listener = std::net::TcpListener::bind(address)?;
        let namespace = std::fs::File::open("/proc/thread-self/ns/net")?;
        Ok((OwnedFd::from(namespace), listener))
    })
    .join()
    .map_err(|_| std::io::Error::other("making a network namespace panicked"))?
}

/// Brings up `lo` in the calling thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain socket call; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is open and owned by nothing else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *to = *from as libc::c_char;
    }
    // SAFETY: both ioctls read and write the ifreq given, which lives
    // across the calls; the flag arm is the one SIOC[GS]IFFLAGS use.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Who a sandbox's processes run as, and what they join and keep.
#[derive(Debug)]
pub struct Confinement {
    /// The unprivileged host user.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// `cgroup.procs` of the session's group, in each hierarchy.
    pub cgroup_procs: Vec<CString>,
    /// Descriptors the program is handed (by number, as in this process);
    /// closed here once the child has them.
    pub handed: Vec<OwnedFd>,
    /// The network namespace it enters (while still privileged).
    pub network: Option<RawFd>,
}

impl Confinement {
    /// The pre-exec hook that applies this in a forked child.
    fn hook(&self) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        let uid = self.uid;
        let gid = self.gid;
        let procs = self.cgroup_procs.clone();
        let handed: Vec<RawFd> = self.handed.iter().map(AsRawFd::as_raw_fd).collect();
        let network = self.network;
        move || {
            // SAFETY: each call is a plain system call on values prepared
            // before the fork (NUL-terminated paths, open descriptors); none
            // allocates or takes a lock, so they are safe between fork and
            // exec. Failures are returned as errors and the exec is skipped.
            unsafe {
                for path in &procs {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(namespace) = network
                    && libc::setns(namespace, libc::CLONE_NEWNET) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                for &fd in &handed {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // No core dumps: a root helper (or the workspace) would
                // pay for each one.
                let no_core = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0
                    || libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                    || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        }
    }

    /// Applies this to `command` when it is spawned. It inherits none of
    /// this process's environment (the server's tokens are there):
    /// bubblewrap's own processes stay visible inside the sandbox.
    pub fn apply(&self, command: &mut tokio::process::Command) {
        command.env_clear();
        let hook = self.hook();
        // SAFETY: the hook only makes async-signal-safe system calls (see
        // `hook`).
        unsafe {
            command.pre_exec(hook);
        }
    }

    /// Applies this to a command run on a PTY, as [`Self::apply`] does.
    pub fn apply_pty(&self, command: pty_process::Command) -> pty_process::Command {
        let hook = self.hook();
        // SAFETY: as in `apply`.
        unsafe { command.env_clear().pre_exec(hook) }
    }
}
