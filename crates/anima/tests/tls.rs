//! TLS on the one listener: `anima up` with a certificate from a test CA.
//! The CLI, grpcio and an HTTPS client reach gRPC and `/healthz` when they
//! trust that CA and fail when they do not; `SIGHUP` swaps the
//! certificate; plaintext beyond loopback is refused unless asked for.
//! (`/mcp` over TLS: `e2e.rs`, `mcp_with_the_python_sdk`.)

mod common;

use std::process::{Command, Output};

use common::{ANIMA, TestCa, Up, cli, run};

fn python(args: &[&str]) -> Output {
    let python = std::env::var("ANIMA_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/anima-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls_client.py"))
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("no Python test clients at {python} ({err}); run scripts/setup-debian --with-test-clients")
        })
}

/// Runs the Python client's checks, which must all pass.
fn python_checks(args: &[&str]) -> String {
    let output = python(args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "tls_client.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `anima login` as the administrator into a fresh config directory,
/// trusting `ca` if given.
fn login(up: &Up, config: &std::path::Path, server: &str, ca: Option<&std::path::Path>) -> Output {
    let mut args = vec![
        "login",
        "--server",
        server,
        "-u",
        "admin",
        "--password-stdin",
    ];
    let ca = ca.map(|ca| ca.display().to_string());
    if let Some(ca) = &ca {
        args.extend(["--ca-cert", ca.as_str()]);
    }
    run(config, &args, &up.admin_password, &[])
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn clients_that_trust_the_ca_get_in_and_others_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path(), "first");
    let up = Up::start_tls(&dir.path().join("data"), &ca, &[]);
    let port = up
        .address
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("anima up names its https:// address: {}", up.address))
        .to_owned();

    // The CLI with the CA; later commands use the one `login` remembered.
    let config = dir.path().join("trusting");
    up.login_admin(&config);
    assert!(cli(&config, &["whoami"], "").starts_with("admin"));
    // The session is never handed to another server.
    let elsewhere = run(
        &config,
        &["whoami", "--server", "https://127.0.0.1:1"],
        "",
        &[],
    );
    assert!(!elsewhere.status.success());
    assert!(
        stderr(&elsewhere).contains("run `anima login --server https://127.0.0.1:1` first"),
        "{}",
        stderr(&elsewhere)
    );

    // Without it, the server's certificate is not trusted.
    let refused = login(&up, &dir.path().join("untrusting"), &up.address, None);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("UnknownIssuer"),
        "{}",
        stderr(&refused)
    );
    // Nor does plaintext get an answer from the TLS port.
    let plaintext = login(
        &up,
        &dir.path().join("plaintext"),
        &format!("http://127.0.0.1:{port}"),
        None,
    );
    assert!(!plaintext.status.success());
    // A CA for a plaintext URL is a mistake, said so.
    let mixed = login(
        &up,
        &dir.path().join("mixed"),
        &format!("http://127.0.0.1:{port}"),
        Some(&ca.ca),
    );
    assert!(
        stderr(&mixed).contains("use its https:// URL"),
        "{}",
        stderr(&mixed)
    );

    // Clients that are not Anima's own: grpcio, and HTTPS for /healthz.
    let ca_path = ca.ca.display().to_string();
    let out = python_checks(&["grpc", &format!("127.0.0.1:{port}"), &ca_path]);
    assert!(
        out.contains("ok: grpcio without the CA is refused"),
        "{out}"
    );
    let out = python_checks(&["healthz", &format!("{}/healthz", up.address), &ca_path]);
    assert!(
        out.contains("ok: /healthz without the CA is refused"),
        "{out}"
    );
}

#[test]
fn sighup_swaps_the_certificate_and_keeps_it_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = TestCa::new(dir.path(), "first");
    let second = TestCa::new(dir.path(), "second");
    // The files the server is told about; replaced in place, as a
    // certificate renewal does.
    let served = TestCa {
        ca: first.ca.clone(),
        cert: dir.path().join("served-cert.pem"),
        key: dir.path().join("served-key.pem"),
    };
    let serve = |from: &TestCa| {
        std::fs::copy(&from.cert, &served.cert).expect("certificate");
        std::fs::copy(&from.key, &served.key).expect("key");
    };
    serve(&first);
    let up = Up::start_tls(&dir.path().join("data"), &served, &[]);
    let trusts = |ca: &TestCa, name: &str| {
        login(&up, &dir.path().join(name), &up.address, Some(&ca.ca))
            .status
            .success()
    };
    assert!(trusts(&first, "before-first"));
    assert!(!trusts(&second, "before-second"));

    serve(&second);
    up.signal("HUP");
    // The reload is asynchronous: wait, boundedly, for the new one.
    let swapped = (0..50).any(|attempt| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        trusts(&second, &format!("after-{attempt}"))
    });
    assert!(swapped, "after SIGHUP the second certificate is served");
    assert!(!trusts(&first, "after-first"));

    // A broken pair is reported and the one in use kept.
    std::fs::write(&served.cert, "not a certificate").expect("break it");
    up.signal("HUP");
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        up.is_running(),
        "a bad certificate does not stop the server"
    );
    assert!(trusts(&second, "kept"));
}

#[test]
fn plaintext_beyond_loopback_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = Command::new(ANIMA)
        .args(["up", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("refused"))
        .env_remove("ANIMA_INSECURE_LISTEN")
        .env_remove("ANIMA_TLS_CERT")
        .env_remove("ANIMA_TLS_KEY")
        .output()
        .expect("run anima up");
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(
        why.contains("refusing to listen on 0.0.0.0:0 without TLS") && why.contains("--tls-cert"),
        "{why}"
    );

    // Half a TLS configuration is an error too.
    let half = Command::new(ANIMA)
        .args(["up", "--tls-cert", "cert.pem", "--data-dir"])
        .arg(dir.path().join("half"))
        .output()
        .expect("run anima up");
    assert!(!half.status.success());
    assert!(stderr(&half).contains("--tls-key"), "{}", stderr(&half));

    // Behind a TLS-terminating proxy, the operator says so.
    let up = Up::launch(
        &dir.path().join("insecure"),
        None,
        &[("ANIMA_INSECURE_LISTEN", "true")],
        "0.0.0.0:0",
        None,
    );
    assert!(up.address.starts_with("http://0.0.0.0:"), "{}", up.address);
}
