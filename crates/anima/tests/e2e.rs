//! End to end: `anima up` as a real process on a free port, the CLI logging
//! in with the printed admin password, creating a user, and gRPC reflection
//! listing every service — on the embedded SQLite and on PostgreSQL.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
};

use anima_db::testing::TempDatabase;
use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const ANIMA: &str = env!("CARGO_BIN_EXE_anima");

/// `anima up` running in the background; killed on drop.
struct Up {
    child: Child,
    address: String,
    admin_password: String,
}

impl Up {
    fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Self {
        let mut command = Command::new(ANIMA);
        command
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
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
        let mut admin_password = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.strip_prefix("anima is up at ") {
                address = rest.split_whitespace().next().map(str::to_owned);
            }
            if let Some(password) = line.strip_prefix("admin password: ") {
                admin_password = Some(password.trim().to_owned());
                break;
            }
        }
        // Keep draining what it prints later, as a terminal would.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            address: address.expect("anima up printed its address"),
            admin_password: admin_password.expect("anima up printed the admin password"),
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI with its own config directory and returns stdout.
fn cli(config_dir: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(ANIMA)
        .args(args)
        .env("ANIMA_CONFIG_DIR", config_dir)
        .env_remove("ANIMA_SERVER")
        .env_remove("ANIMA_NEW_PASSWORD")
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
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "anima {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

async fn listed_services(address: &str) -> Vec<String> {
    let channel = tonic::transport::Channel::from_shared(address.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("one response").expect("ok");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn first_start_login_create_user_and_reflection(database_url: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&dir.path().join("data"), database_url);
    let config = dir.path().join("config");

    let out = cli(
        &config,
        &[
            "login",
            "--server",
            &up.address,
            "--username",
            "admin",
            "--password-stdin",
        ],
        &up.admin_password,
    );
    assert!(out.contains("logged in"), "{out}");
    assert!(cli(&config, &["whoami"], "").contains("admin"));

    let out = cli(
        &config,
        &[
            "user",
            "create",
            "grace",
            "--email",
            "grace@example.org",
            "--password-stdin",
        ],
        "a long enough password",
    );
    assert!(out.contains("grace"), "{out}");
    let users: serde_json::Value =
        serde_json::from_str(&cli(&config, &["user", "list", "--json"], "")).expect("json");
    let names: Vec<&str> = users
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|user| user["username"].as_str())
        .collect();
    assert_eq!(names, ["admin", "grace"]);

    // The new user can log in with the password given at creation.
    let other = dir.path().join("grace-config");
    cli(
        &other,
        &[
            "login",
            "--server",
            &up.address,
            "-u",
            "grace",
            "--password-stdin",
        ],
        "a long enough password",
    );
    assert!(cli(&other, &["whoami", "--json"], "").contains("\"grace\""));

    let services = listed_services(&up.address).await;
    for service in [
        "anima.v1.AuthService",
        "anima.v1.TeamService",
        "anima.v1.ProjectService",
        "anima.v1.PlanService",
        "anima.v1.WorkItemService",
        "anima.v1.WorkflowService",
        "anima.v1.ThreadService",
        "anima.v1.AgentSessionService",
        "anima.v1.RepositoryService",
        "anima.v1.MailboxService",
        "anima.v1.DocumentService",
        "anima.v1.AkhService",
        "anima.v1.DashboardService",
        "anima.v1.AnimaAiService",
        "anima.v1.AgentProviderService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.iter().any(|listed| listed == service),
            "{service} missing from {services:?}"
        );
    }
}

#[tokio::test]
async fn anima_up_on_sqlite() {
    first_start_login_create_user_and_reflection(None).await;
}

#[tokio::test]
async fn anima_up_on_postgres() {
    let db = TempDatabase::postgres().await;
    first_start_login_create_user_and_reflection(Some(&db.url)).await;
}

#[tokio::test]
async fn second_start_keeps_the_admin_and_prints_no_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = Up::start(&data, None);
    drop(first);
    let mut child = Command::new(ANIMA)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start again");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first_line)
        .expect("line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(first_line.starts_with("anima is up at"), "{first_line}");
    assert!(!first_line.contains("password"));
}
