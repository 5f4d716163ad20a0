//! Per-session control groups: what caps a whole session (every process
//! in it, login shells included) rather than each process on its own.
//!
//! A session's group limits its number of processes (a fork bomb stops at
//! the limit, the host keeps answering), its memory (tmpfs `/tmp`
//! included) and its CPU bandwidth. Both cgroup layouts are handled: the
//! unified hierarchy (v2, what systemd hosts have) and the per-controller
//! one (v1, as on hosts booted with the legacy layout). Groups live under
//! `anima-sandboxes/` at the hierarchy's root, named by session id.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;

/// The directory, under each hierarchy's root, that holds session groups.
const PARENT: &str = "anima-sandboxes";

/// The controllers a session needs.
const CONTROLLERS: [&str; 3] = ["pids", "memory", "cpu"];

/// What a session's group allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Processes (and threads) at once.
    pub processes: u64,
    /// Memory in bytes, page cache and tmpfs included.
    pub memory_bytes: u64,
    /// CPU bandwidth in thousandths of a core (1000: one core).
    pub millicores: u64,
}

/// The cgroup hierarchies of this host.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    /// The unified hierarchy mounted here.
    V2(PathBuf),
    /// One mount per controller, in [`CONTROLLERS`] order.
    V1(Vec<PathBuf>),
}

impl Hierarchy {
    /// Finds the hierarchy that offers every controller a session needs.
    pub fn detect() -> anyhow::Result<Self> {
        let mountinfo =
            std::fs::read_to_string("/proc/self/mountinfo").context("reading mountinfo")?;
        let mounts = cgroup_mounts(&mountinfo);
        if let Some((path, _)) = mounts.iter().find(|(_, kind)| kind.is_none()) {
            let offered =
                std::fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default();
            if CONTROLLERS
                .iter()
                .all(|wanted| offered.split_whitespace().any(|c| c == *wanted))
            {
                return Ok(Self::V2(path.clone()));
            }
        }
        let per_controller: Option<Vec<PathBuf>> = CONTROLLERS
            .iter()
            .map(|wanted| {
                mounts.iter().find_map(|(path, controllers)| {
                    controllers
                        .as_ref()
                        .is_some_and(|list| list.iter().any(|c| c == wanted))
                        .then(|| path.clone())
                })
            })
            .collect();
        per_controller.map(Self::V1).context(
            "no cgroup hierarchy offers the pids, memory and cpu controllers, so sessions \
             cannot be limited as a whole",
        )
    }

    /// Makes the group of session `name` with `limits`.
    pub fn create(&self, name: &str, limits: GroupLimits) -> anyhow::Result<SessionGroup> {
        let group = match self {
            Self::V2(root) => {
                // Controllers reach a group only when every ancestor hands
                // them down; the root may hold processes while doing so.
                let enable = "+pids +memory +cpu";
                write(&root.join("cgroup.subtree_control"), enable)?;
                let parent = root.join(PARENT);
                make_dir(&parent)?;
                write(&parent.join("cgroup.subtree_control"), enable)?;
                let dir = parent.join(name);
                make_dir(&dir)?;
                SessionGroup {
                    dirs: vec![dir],
                    v2: true,
                }
            }
            Self::V1(mounts) => {
                let mut dirs = Vec::new();
                for mount in mounts {
                    let dir = mount.join(PARENT).join(name);
                    if dirs.contains(&dir) {
                        continue; // controllers mounted together
                    }
                    make_dir(&mount.join(PARENT))?;
                    make_dir(&dir)?;
                    dirs.push(dir);
                }
                SessionGroup { dirs, v2: false }
            }
        };
        if let Err(err) = group.limit(limits) {
            group.remove();
            return Err(err);
        }
        Ok(group)
    }
}

/// Cgroup mounts from `/proc/self/mountinfo`: the unified one (`None`) and
/// the v1 ones with their controllers.
fn cgroup_mounts(mountinfo: &str) -> Vec<(PathBuf, Option<Vec<String>>)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mount_point = before.split_whitespace().nth(4)?;
            let mut after = after.split_whitespace();
            let fstype = after.next()?;
            let options = after.nth(1).unwrap_or_default();
            let path = PathBuf::from(unescape(mount_point));
            match fstype {
                "cgroup2" => Some((path, None)),
                "cgroup" => Some((path, Some(options.split(',').map(str::to_owned).collect()))),
                _ => None,
            }
        })
        .collect()
}

/// mountinfo writes spaces and the like as `\040`.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).unwrap_or_default();
        match u8::from_str_radix(code, 8) {
            Ok(byte) if code.len() == 3 => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            _ => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn make_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err).with_context(|| format!("creating {}", dir.display())),
    }
}

fn write(file: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(file, value).with_context(|| format!("writing {value:?} to {}", file.display()))
}

/// One session's group (a directory per hierarchy on v1).
#[derive(Debug, Clone)]
pub struct SessionGroup {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl SessionGroup {
    fn limit(&self, limits: GroupLimits) -> anyhow::Result<()> {
        let period = 100_000u64;
        let quota = (limits.millicores.max(10) * period / 1000).to_string();
        let memory = limits.memory_bytes.to_string();
        let processes = limits.processes.max(1).to_string();
        for dir in &self.dirs {
            let has = |file: &str| dir.join(file).exists();
            if self.v2 {
                write(&dir.join("pids.max"), &processes)?;
                write(&dir.join("memory.max"), &memory)?;
                if has("memory.swap.max") {
                    write(&dir.join("memory.swap.max"), "0")?;
                }
                write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
            } else {
                if has("pids.max") {
                    write(&dir.join("pids.max"), &processes)?;
                }
                if has("memory.limit_in_bytes") {
                    write(&dir.join("memory.limit_in_bytes"), &memory)?;
                    // Memory plus swap, so swap is no way around the cap.
                    if has("memory.memsw.limit_in_bytes") {
                        write(&dir.join("memory.memsw.limit_in_bytes"), &memory)?;
                    }
                }
                if has("cpu.cfs_quota_us") {
                    write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota)?;
                }
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes `0` into to join.
    pub fn procs_files(&self) -> anyhow::Result<Vec<CString>> {
        self.dirs
            .iter()
            .map(|dir| {
                CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
                    .context("a cgroup path with a NUL byte")
            })
            .collect()
    }

    /// How many processes the session has now.
    pub fn processes(&self) -> usize {
        self.dirs.first().map_or(0, |dir| pids_in(dir).len())
    }

    /// The group's directories (one per hierarchy).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Kills whatever still runs in the group and removes it. Best effort:
    /// an emptied group that cannot be removed only costs a directory.
    pub fn remove(&self) {
        for _ in 0..100 {
            let left: Vec<i32> = self.dirs.iter().flat_map(|dir| pids_in(dir)).collect();
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in &self.dirs {
            if let Err(err) = std::fs::remove_dir(dir)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(group = %dir.display(), %err, "cannot remove a session's cgroup");
            }
        }
    }
}

fn pids_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_layouts_are_read_from_mountinfo() {
        let mountinfo = "\
35 24 0:30 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
36 24 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 24 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
38 24 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
39 24 0:34 / /mnt/with\\040space rw - ext4 /dev/sda rw";
        let mounts = cgroup_mounts(mountinfo);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[1].0, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(
            mounts[1]
                .1
                .as_ref()
                .is_some_and(|c| c.contains(&"cpu".into()))
        );
        assert_eq!(mounts[3], (PathBuf::from("/sys/fs/cgroup/unified"), None));
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
    }
}
