//! Helpers shared by the end-to-end tests: the CLI run as a process with
//! its own config directory.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
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

/// The titles `anima doc search` answers in a project for `query`, best
/// first.
pub fn found_titles(config_dir: &Path, project: &str, query: &str) -> Vec<String> {
    let found = cli(
        config_dir,
        &["doc", "search", "--project", project, query, "--json"],
        "",
    );
    let found: serde_json::Value = serde_json::from_str(&found).expect("json");
    found
        .as_array()
        .expect("an array of hits")
        .iter()
        .filter_map(|hit| hit["document"]["title"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `query` finds `title` first: a search by meaning finds a
/// document once the library has computed its vectors (asked every
/// 200 ms up to 300 times, a bound and not a speed requirement).
pub fn found_first(config_dir: &Path, project: &str, query: &str, title: &str) {
    for _ in 0..300 {
        if found_titles(config_dir, project, query)
            .first()
            .map(String::as_str)
            == Some(title)
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!(
        "{query:?} does not find {title} first: {:?}",
        found_titles(config_dir, project, query)
    );
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

/// A certificate authority made for one test, and the server certificate
/// it signed for `localhost` and 127.0.0.1, as PEM files.
pub struct TestCa {
    /// The CA's certificate: what clients trust.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

impl TestCa {
    /// Makes a CA named `name` in `dir` and signs a server certificate.
    pub fn new(dir: &Path, name: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Anima test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params")
            .signed_by(&key, &ca)
            .expect("server certificate");
        let files = Self {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.ca, ca.pem()).expect("write CA");
        std::fs::write(&files.cert, server.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }

    /// The environment that makes `anima up` serve this certificate.
    pub fn server_env(&self) -> [(&'static str, String); 2] {
        [
            ("ANIMA_TLS_CERT", self.cert.display().to_string()),
            ("ANIMA_TLS_KEY", self.key.display().to_string()),
        ]
    }
}

/// `anima up` running in the background; killed on drop.
pub struct Up {
    child: Child,
    /// `http://host:port`, or `https://` with TLS.
    pub address: String,
    /// The CA clients trust, when it speaks TLS.
    pub ca_cert: Option<PathBuf>,
    /// The password printed on first start.
    pub admin_password: String,
}

impl Up {
    /// A gRPC channel to it and the admin's session token.
    pub async fn admin_channel(&self) -> (tonic::transport::Channel, String) {
        use anima_proto::v1::{LoginRequest, auth_service_client::AuthServiceClient};
        let channel = anima_client::endpoint(&self.address, self.ca_cert.as_deref())
            .expect("url")
            .connect()
            .await
            .expect("connect");
        let token = AuthServiceClient::new(channel.clone())
            .login(LoginRequest {
                username: "admin".into(),
                password: self.admin_password.clone(),
            })
            .await
            .expect("login")
            .into_inner()
            .token;
        (channel, token)
    }

    pub fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Self {
        Self::start_with_env(data_dir, database_url, &[])
    }

    pub fn start_with_env(
        data_dir: &std::path::Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::launch(data_dir, database_url, env, "127.0.0.1:0", None)
    }

    /// Starts it over TLS with `ca`'s server certificate and `env`.
    pub fn start_tls(data_dir: &Path, ca: &TestCa, env: &[(&str, &str)]) -> Self {
        let tls = ca.server_env();
        let mut all: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.extend_from_slice(env);
        let mut up = Self::launch(data_dir, None, &all, "127.0.0.1:0", None);
        up.ca_cert = Some(ca.ca.clone());
        up
    }

    /// Starts `anima up` again on an earlier one's SQLite data, at its
    /// address (`http://host:port`), as if it had never stopped.
    pub fn restart(data_dir: &std::path::Path, address: &str, admin_password: &str) -> Self {
        let listen = address.strip_prefix("http://").unwrap_or(address);
        Self::launch(data_dir, None, &[], listen, Some(admin_password.to_owned()))
    }

    /// Runs `anima up` and reads its address, and on a first start (no
    /// `admin_password` known) the password it prints.
    pub fn launch(
        data_dir: &std::path::Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
        listen: &str,
        mut admin_password: Option<String>,
    ) -> Self {
        let mut command = Command::new(ANIMA);
        command.envs(env.iter().copied());
        command
            .args(["up", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .env_remove("ANIMA_ADMIN_PASSWORD")
            .env_remove("ANIMA_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
        }
        let mut child = command.spawn().expect("start anima up");
        let stdout = child.stdout.take().expect("stdout");
        let mut address = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.strip_prefix("anima is up at ") {
                address = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(password) = line.strip_prefix("admin password: ") {
                admin_password = Some(password.trim().to_owned());
            }
            if address.is_some() && admin_password.is_some() {
                break;
            }
        }
        // Keep draining what it prints later, as a terminal would.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            address: address.expect("anima up printed its address"),
            ca_cert: None,
            admin_password: admin_password.expect("anima up printed the admin password"),
        }
    }

    /// The most memory the process has held so far (`VmHWM`), in KiB.
    pub fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Sends it a signal by name (`HUP`, `INT`, …).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{name}");
    }

    /// Whether the process is still running: not gone, and not a zombie
    /// (exited, not yet reaped, which `kill -0` would still find).
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }

    /// Logs the CLI with config directory `config` in as the administrator.
    pub fn login_admin(&self, config: &std::path::Path) {
        self.login_as(config, "admin", &self.admin_password);
    }

    /// Creates the user `username` (no admin) through the administrator
    /// logged in at `admin`, and logs them in at `config`.
    pub fn login_new_user(
        &self,
        admin: &std::path::Path,
        username: &str,
        config: &std::path::Path,
    ) {
        cli(
            admin,
            &["user", "create", username, "--password-stdin"],
            USER_PASSWORD,
        );
        self.login_as(config, username, USER_PASSWORD);
    }

    fn login_as(&self, config: &std::path::Path, username: &str, password: &str) {
        let mut args = vec![
            "login".to_owned(),
            "--server".to_owned(),
            self.address.clone(),
            "-u".to_owned(),
            username.to_owned(),
            "--password-stdin".to_owned(),
        ];
        if let Some(ca) = &self.ca_cert {
            args.extend(["--ca-cert".to_owned(), ca.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(config, &args, password);
    }
}

/// The password of the users tests create.
const USER_PASSWORD: &str = "a long enough password";

impl Drop for Up {
    /// Stops it as an operator would (SIGINT), so it tears down its
    /// sandboxes; kills it if it has not stopped after a while.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
