//! The local sandbox on this machine's bubblewrap, attacked from inside:
//! what a session can and cannot reach or change, its limits as a whole,
//! its exit and output, and that destroying it leaves no process behind.
//! Skipped (with the reason) where sandboxes cannot run, unless
//! `ANIMA_TEST_REQUIRE_SANDBOX` is set; `scripts/setup-debian` prepares
//! the host.

use std::time::Duration;

use anima_agent::sandbox::{DEFAULT_USER, Limits, LocalSandboxes, SandboxSpec};

mod common;

fn sandboxes() -> Option<(LocalSandboxes, tempfile::TempDir)> {
    let root = tempfile::tempdir().expect("root");
    if !common::sandboxes_ready(root.path()) {
        return None;
    }
    Some((LocalSandboxes::new(root.path(), DEFAULT_USER), root))
}

fn shell(session: &str, script: &str) -> SandboxSpec {
    SandboxSpec {
        session_id: session.into(),
        command: vec!["/bin/bash".into(), "-c".into(), script.into()],
        ..SandboxSpec::default()
    }
}

/// Runs a sandbox to its end; its output, then it is destroyed.
async fn run(sandboxes: &LocalSandboxes, spec: &SandboxSpec) -> Vec<String> {
    let mut sandbox = sandboxes.start(spec).await.expect("start");
    sandbox.wait().await.expect("wait");
    let output = sandbox.last_output();
    sandbox.destroy(false).await.expect("destroy");
    output
}

#[tokio::test]
async fn a_session_sees_its_workspace_and_files_and_nothing_else() {
    let Some((sandboxes, root)) = sandboxes() else {
        return;
    };
    // Something of the host's that must stay out of reach.
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let secret_of_the_host = tempfile::Builder::new()
        .prefix("host-secret")
        .tempfile_in(&home)
        .expect("host file");

    let mut first = sandboxes
        .start(&SandboxSpec {
            files: vec![("secrets/token".into(), b"s3cret".to_vec())],
            ..shell(
                "first",
                "cat /run/anima/secrets/token > seen; echo mine > own.txt",
            )
        })
        .await
        .expect("start");
    assert_eq!(
        first.wait().await.expect("wait"),
        Some(0),
        "{:?}",
        first.last_output()
    );
    assert_eq!(
        std::fs::read_to_string(first.workspace().join("seen")).expect("seen"),
        "s3cret",
        "given files are readable"
    );

    let probe = format!(
        "test -e {host} && echo HOST; test -e {other} && echo OTHER; ls /workspace | wc -l; \
         touch /usr/x 2>/dev/null && echo USR_WRITABLE; \
         (echo overwrite > /run/anima/anything) 2>/dev/null && echo FILES_WRITABLE; echo done",
        host = secret_of_the_host.path().display(),
        other = first.workspace().display(),
    );
    let mut second = sandboxes
        .start(&shell("second", &probe))
        .await
        .expect("start");
    assert_eq!(second.wait().await.expect("wait"), Some(0));
    assert_eq!(
        second.last_output(),
        ["0", "done"],
        "no host home, no other workspace, an empty own workspace, read-only system and files"
    );
    for sandbox in [first, second] {
        sandbox.destroy(false).await.expect("destroy");
    }
    assert_eq!(
        std::fs::read_dir(root.path()).expect("root").count(),
        0,
        "directories removed"
    );
}

#[tokio::test]
async fn no_sandbox_reaches_the_hosts_network() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let connect = format!(
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=5)' \
         2>/dev/null && echo CONNECTED || echo REFUSED; \
         python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 5432), timeout=5)' \
         2>/dev/null && echo POSTGRES || echo NO_POSTGRES; \
         tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
    );
    let output = run(&sandboxes, &shell("closed", &connect)).await;
    assert_eq!(output, ["REFUSED", "NO_POSTGRES", "lo"], "{output:?}");
}

#[tokio::test]
async fn nothing_in_a_sandbox_escapes_its_confinement() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    let output = run(
        &sandboxes,
        &shell("escapes", &common::escapes(std::process::id())),
    )
    .await;
    common::assert_held(&output);
    assert!(!std::path::Path::new("/usr/x").exists());
    assert!(!std::path::Path::new("/etc/x").exists());
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_the_host_keeps_answering() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    let limit = 64;
    let sandbox = sandboxes
        .start(&SandboxSpec {
            limits: Limits {
                processes: limit,
                ..Limits::default()
            },
            ..shell("bomb", "bomb() { bomb | bomb & }; bomb; sleep 300")
        })
        .await
        .expect("start");
    let mut peak = 0;
    for _ in 0..40 {
        peak = peak.max(sandbox.group().processes());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(peak > 1, "the bomb ran");
    assert!(
        u64::try_from(peak).unwrap_or(u64::MAX) <= limit,
        "{peak} processes, over the session's {limit}"
    );
    // The host still starts processes and answers.
    let host = tokio::process::Command::new("true")
        .status()
        .await
        .expect("the host forks");
    assert!(host.success());
    let dirs = sandbox.group().dirs().to_vec();
    sandbox.destroy(false).await.expect("destroy");
    assert!(dirs.iter().all(|dir| !dir.exists()), "its cgroup is gone");
}

#[tokio::test]
async fn the_workspace_has_a_fixed_size() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    let output = run(
        &sandboxes,
        &SandboxSpec {
            limits: Limits {
                workspace_bytes: 32 << 20,
                ..Limits::default()
            },
            ..shell(
                "full",
                "dd if=/dev/zero of=fill bs=1M count=64 2>/dev/null && echo FILLED || echo FULL; \
                 ls -A /workspace | grep -v -e '^fill$' -e '^.anima$' | wc -l",
            )
        },
    )
    .await;
    assert_eq!(output, ["FULL", "0"], "nothing but what the session wrote");
}

#[tokio::test]
async fn tmp_has_a_fixed_size() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    let output = run(
        &sandboxes,
        &SandboxSpec {
            limits: Limits {
                tmp_bytes: 4 << 20,
                ..Limits::default()
            },
            ..shell(
                "tmp",
                "dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null && echo FILLED || echo FULL",
            )
        },
    )
    .await;
    assert_eq!(output, ["FULL"]);
}

#[tokio::test]
async fn exit_codes_and_output_are_kept_and_destroying_reaps_every_process() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    let mut failing = sandboxes
        .start(&shell("failing", "echo one; echo two >&2; exit 3"))
        .await
        .expect("start");
    assert_eq!(failing.wait().await.expect("wait"), Some(3));
    let mut output = failing.last_output();
    output.sort();
    assert_eq!(output, ["one", "two"]);
    failing.destroy(false).await.expect("destroy");

    // Background processes that outlive the shell that started them.
    let marker = "4242.1717";
    let lingering = sandboxes
        .start(&shell(
            "lingering",
            &format!("sleep {marker} & sleep {marker} & echo started; wait"),
        ))
        .await
        .expect("start");
    let running = || {
        std::fs::read_dir("/proc")
            .expect("proc")
            .filter_map(Result::ok)
            .filter(|entry| {
                std::fs::read(entry.path().join("cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
            })
            .count()
    };
    for _ in 0..100 {
        if running() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(running() >= 2, "the session's processes run");
    lingering.destroy(false).await.expect("destroy");
    for _ in 0..100 {
        if running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(running(), 0, "no process of the session is left");
}

#[tokio::test]
async fn bad_specs_are_refused_before_anything_runs() {
    let Some((sandboxes, root)) = sandboxes() else {
        return;
    };
    for spec in [
        shell("../escape", "true"),
        SandboxSpec {
            files: vec![("../../etc/x".into(), Vec::new())],
            ..shell("files", "true")
        },
        SandboxSpec {
            command: Vec::new(),
            ..shell("empty", "true")
        },
    ] {
        assert!(sandboxes.start(&spec).await.is_err(), "{spec:?}");
    }
    assert!(
        !root.path().join("empty").exists(),
        "nothing set up for a refused spec"
    );
}

#[tokio::test]
async fn memory_is_capped() {
    let Some((sandboxes, _root)) = sandboxes() else {
        return;
    };
    // The cap is the session's: two processes of 160 MiB each pass a
    // 256 MiB cap per process but not per session.
    let allocate = "take='import time; x = bytearray(160 << 20); x[::4096] = b\"y\" * len(x[::4096]); time.sleep(2)'; \
                    python3 -c \"$take\" & first=$!; python3 -c \"$take\" & second=$!; \
                    wait $first && wait $second && echo ALLOCATED || echo CAPPED";
    for (session, memory_bytes, expected) in [
        ("small", 256 << 20, "CAPPED"),
        ("large", 2 << 30, "ALLOCATED"),
    ] {
        let output = run(
            &sandboxes,
            &SandboxSpec {
                limits: Limits {
                    memory_bytes,
                    ..Limits::default()
                },
                ..shell(session, allocate)
            },
        )
        .await;
        assert_eq!(
            output.last().map(String::as_str),
            Some(expected),
            "{output:?}"
        );
    }
}
