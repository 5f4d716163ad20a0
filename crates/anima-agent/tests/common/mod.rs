//! What the sandbox tests share: whether this host can run sandboxes, and
//! the escapes tried from inside one. Not every test binary uses all of it.
#![allow(dead_code)]

use std::path::Path;

use anima_agent::sandbox::{DEFAULT_USER, LocalSandboxes};

/// Whether sandboxes can run here (as root, with bubblewrap, the sandbox
/// user and cgroups; `scripts/setup-debian` sets them up). Where they
/// cannot, the test is skipped with the reason, unless
/// `ANIMA_TEST_REQUIRE_SANDBOX` is set (as `scripts/test` does as root):
/// then it fails.
pub fn sandboxes_ready(root: &Path) -> bool {
    match LocalSandboxes::new(root, DEFAULT_USER).check() {
        Ok(()) => true,
        Err(why) if std::env::var_os("ANIMA_TEST_REQUIRE_SANDBOX").is_some() => {
            panic!("sandboxes are required here but cannot run: {why}")
        }
        Err(why) => {
            eprintln!("sandboxes cannot run here ({why}); skipped");
            false
        }
    }
}

/// A file of a kept workspace, read from its image (with e2fsprogs'
/// debugfs, which needs no mount).
pub fn read_from_image(image: &Path, path: &str) -> Vec<u8> {
    let output = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat /{path}"))
        .arg(image)
        .output()
        .expect("debugfs (e2fsprogs)");
    assert!(output.status.success(), "{output:?}");
    output.stdout
}

/// Every way out of a sandbox's confinement, tried from inside by a
/// sandbox of the provider process `provider`; each line names what was
/// tried and whether it held.
pub fn escapes(provider: u32) -> String {
    format!(
        r#"
try() {{ if sh -c "$2" >/dev/null 2>&1; then echo "ESCAPED: $1"; else echo "held: $1"; fi; }}
try remount-usr 'mount -o remount,rw /usr'
try write-usr 'touch /usr/x'
try write-etc 'touch /etc/x'
try write-files 'touch /run/anima/x'
try mount-tmpfs 'mount -t tmpfs none /tmp'
try unshare-user 'unshare -U true'
try unshare-mount 'unshare -m true'
try module 'modprobe -q dummy || insmod /nonexistent.ko'
try host-root 'ls /root'
try setuid-root 'su -c true root </dev/null'
try ptrace-provider 'python3 -c "import ctypes, sys; sys.exit(ctypes.CDLL(None).ptrace(16, {provider}, 0, 0) != 0)"'
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status | tr -s '\t' ' '
id -u
"#
    )
}

pub fn assert_held(output: &[String]) {
    let escaped: Vec<&String> = output
        .iter()
        .filter(|line| line.starts_with("ESCAPED"))
        .collect();
    assert!(escaped.is_empty(), "{escaped:?} in {output:?}");
    for wanted in [
        "CapInh: 0000000000000000",
        "CapPrm: 0000000000000000",
        "CapEff: 0000000000000000",
        "CapAmb: 0000000000000000",
        "NoNewPrivs: 1",
    ] {
        assert!(
            output.iter().any(|line| line == wanted),
            "{wanted}: {output:?}"
        );
    }
    assert_ne!(
        output.last().map(String::as_str),
        Some("0"),
        "not root: {output:?}"
    );
    assert_eq!(
        output
            .iter()
            .filter(|line| line.starts_with("held"))
            .count(),
        11
    );
}
