//! Helpers shared by the end-to-end tests: the CLI run as a process with
//! its own config directory.

#![allow(dead_code)]

use std::{
    io::Write,
    process::{Command, Stdio},
};

/// The `anima` binary under test.
pub const ANIMA: &str = env!("CARGO_BIN_EXE_anima");

/// Runs the CLI with its own config directory, extra environment and stdin.
pub fn run(
    config_dir: &std::path::Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut child = Command::new(ANIMA)
        .args(args)
        .env("ANIMA_CONFIG_DIR", config_dir)
        .env_remove("ANIMA_SERVER")
        .env_remove("ANIMA_NEW_PASSWORD")
        .env_remove("ANIMA_PROJECT")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run anima");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Runs the CLI, which must succeed, and returns stdout.
pub fn cli(config_dir: &std::path::Path, args: &[&str], stdin: &str) -> String {
    cli_with_env(config_dir, args, stdin, &[])
}

pub fn cli_with_env(
    config_dir: &std::path::Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> String {
    let output = run(config_dir, args, stdin, env);
    assert!(
        output.status.success(),
        "anima {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Runs the CLI, which must fail, and returns stderr.
pub fn cli_fails(config_dir: &std::path::Path, args: &[&str]) -> String {
    let output = run(config_dir, args, "", &[]);
    assert!(
        !output.status.success(),
        "anima {args:?} should have failed"
    );
    String::from_utf8(output.stderr).expect("utf-8")
}
