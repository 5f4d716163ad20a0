//! End to end: `anima up` as a real process on a free port, the CLI logging
//! in with the printed admin password, creating a user, and gRPC reflection
//! listing every service — on the embedded SQLite and on PostgreSQL.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anima_db::testing::TempDatabase;
use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

mod common;

use common::{ANIMA, TestCa, Up, cli, cli_fails, cli_with_env, found_first, found_titles, run};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
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

/// Through the CLI: a project, a plan and a work item; the description
/// edited twice (with --description, then in $EDITOR), three revisions
/// listed, the first restored and read back; then archived.
fn planning_through_the_cli(database_url: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    // The administrator's configuration: a zone and a secret store.
    let config_file = dir.path().join("anima.toml");
    std::fs::write(
        &config_file,
        "[server.network_zones.docs]\nallow = [\"docs.rs:443\", \"crates.io:443\"]\n\
         [server.secret_stores.agents]\nkind = \"env\"\nprefix = \"ANIMA_AGENT_SECRET_\"\n",
    )
    .expect("config");
    let up = Up::start_with_env(
        &dir.path().join("data"),
        database_url,
        &[
            ("ANIMA_CONFIG", &*config_file.to_string_lossy()),
            ("ANIMA_AGENT_SECRET_GITHUB_TOKEN", "ghp_not_a_real_token"),
            ("ANIMA_FORGE_HOSTS", "github.com,http://git.example:3000"),
        ],
    );
    let config = dir.path().join("config");
    up.login_admin(&config);

    let project = json(&cli(
        &config,
        &[
            "project",
            "create",
            "Demo",
            "--description",
            "an end-to-end test",
            "--json",
        ],
        "",
    ));
    assert_eq!(project["status"], "active");
    let plan = json(&cli(
        &config,
        &[
            "plan",
            "create",
            "--project",
            "Demo",
            "Launch",
            "--workflow",
            "bugfix",
            "--json",
        ],
        "",
    ));
    let plan_id = plan["id"].as_str().expect("plan id");
    let item = json(&cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Demo",
            "Write the docs",
            "--description",
            "version one",
            "--plan",
            plan_id,
            "--priority",
            "high",
            "--json",
        ],
        "",
    ));
    assert_eq!(item["key"], "WI-1");
    assert_eq!(item["phase"], "triage");
    assert_eq!(item["priority"], "high");

    let edited = json(&cli(
        &config,
        &[
            "workitem",
            "edit",
            "WI-1",
            "--project",
            "Demo",
            "--description",
            "version two",
            "--json",
        ],
        "",
    ));
    assert_eq!(edited["description"], "version two");
    // The second edit goes through $EDITOR, as a person would make it.
    let edited = json(&cli_with_env(
        &config,
        &["workitem", "edit", "wi-1", "--project", "Demo", "--json"],
        "",
        &[("VISUAL", "sed -i s/two/three/"), ("EDITOR", "false")],
    ));
    assert_eq!(edited["description"], "version three");

    let revisions = json(&cli(
        &config,
        &[
            "workitem",
            "revisions",
            "WI-1",
            "--project",
            "Demo",
            "--json",
        ],
        "",
    ));
    let texts: Vec<&str> = revisions
        .as_array()
        .expect("array")
        .iter()
        .map(|revision| revision["text"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["version one", "version two", "version three"]);
    let table = cli(
        &config,
        &["workitem", "revisions", "WI-1", "--project", "Demo"],
        "",
    );
    assert!(
        table.contains("*3"),
        "the current revision is marked: {table}"
    );

    cli(
        &config,
        &["workitem", "revert", "WI-1", "1", "--project", "Demo"],
        "",
    );
    let reverted = json(&cli(
        &config,
        &["workitem", "show", "WI-1", "--project", "Demo", "--json"],
        "",
    ));
    assert_eq!(reverted["description"], "version one");
    let revisions = json(&cli(
        &config,
        &[
            "workitem",
            "revisions",
            "WI-1",
            "--project",
            "Demo",
            "--json",
        ],
        "",
    ));
    assert_eq!(revisions.as_array().expect("array").len(), 4);
    assert_eq!(revisions[3]["cause"], "revert");

    let moved = json(&cli(
        &config,
        &[
            "workitem",
            "move",
            "WI-1",
            "fix",
            "--project",
            "Demo",
            "--json",
        ],
        "",
    ));
    assert_eq!(moved["phase"], "fix");
    let plan = json(&cli(&config, &["plan", "show", plan_id, "--json"], ""));
    assert_eq!(plan["phases"][1]["total"], 1);

    // Capabilities: granted, listed, one taken away; bad input changes nothing.
    let capabilities = |flags: &[&'static str]| {
        let mut args = vec!["workitem", "capabilities", "WI-1", "--project", "Demo"];
        args.extend(flags);
        args
    };
    let granted = json(&cli(
        &config,
        &capabilities(&[
            "--network",
            "docs",
            "--secret",
            "token=agents://DOCS_TOKEN",
            "--json",
        ]),
        "",
    ));
    let granted = granted["capabilities"].as_array().expect("capabilities");
    assert_eq!(granted.len(), 2, "{granted:?}");
    let network_id = granted
        .iter()
        .find(|capability| {
            capability["what"]
                .as_str()
                .is_some_and(|w| w.contains("docs.rs:443"))
        })
        .and_then(|capability| capability["id"].as_str())
        .expect("the network zone is listed");
    let err = cli_fails(&config, &capabilities(&["--network", "everything"]));
    assert!(err.contains("NETWORK_ZONE_UNKNOWN"), "{err}");
    let err = cli_fails(&config, &capabilities(&["--network", "mine=*.com:443"]));
    assert!(err.contains("administrators defined"), "{err}");
    // Secrets come from the configured stores only: never the server's
    // environment, its files, or a store nobody configured.
    for reference in ["s=env://ANIMA_SERVICE_TOKENS", "s=vault://kv-ci"] {
        let err = cli_fails(&config, &capabilities(&["--secret", reference]));
        assert!(err.contains("SECRET_STORE_UNKNOWN"), "{reference}: {err}");
    }
    for reference in ["s=file:///proc/self/environ", "s=agents://../x"] {
        let err = cli_fails(&config, &capabilities(&["--secret", reference]));
        assert!(err.contains("INVALID_CAPABILITY"), "{reference}: {err}");
    }
    let err = cli_fails(&config, &capabilities(&["--remove", "cap-none"]));
    assert!(err.contains("has no capability cap-none"), "{err}");
    let listed = cli(&config, &capabilities(&[]), "");
    assert!(
        listed.contains("DOCS_TOKEN") && listed.contains("docs.rs"),
        "the refused changes changed nothing: {listed}"
    );
    let mut remove = capabilities(&["--remove"]);
    remove.push(network_id);
    cli(&config, &remove, "");
    let listed = cli(&config, &capabilities(&[]), "");
    assert!(
        listed.contains("DOCS_TOKEN") && !listed.contains("docs.rs"),
        "only the secret is left: {listed}"
    );
    cli(&config, &capabilities(&["--clear"]), "");
    let listed = cli(&config, &capabilities(&[]), "");
    assert!(listed.contains("has no capabilities"), "{listed}");

    let err = cli_fails(&config, &["workitem", "show", "WI-9", "--project", "Demo"]);
    assert!(err.contains("WORK_ITEM_NOT_FOUND"), "{err}");
    let err = cli_fails(
        &config,
        &["workitem", "move", "WI-1", "deploy", "--project", "Demo"],
    );
    assert!(err.contains("PHASE_NOT_IN_WORKFLOW"), "{err}");

    let listed = cli(&config, &["workitem", "list", "--project", "Demo"], "");
    assert!(
        listed.contains("WI-1") && listed.contains("Write the docs"),
        "{listed}"
    );
    let members = cli(&config, &["project", "members", "list", "Demo"], "");
    assert!(
        members.contains("admin") && members.contains("Owner"),
        "{members}"
    );
    let workflows = cli(&config, &["workflow", "list"], "");
    assert!(
        workflows.contains("Analysis → Implementation → Review & Audit"),
        "{workflows}"
    );

    // Repositories: on a forge the administrator listed, read with a
    // secret named by reference.
    let added = json(&cli(
        &config,
        &[
            "repo",
            "add",
            "git@github.com:team/docs.git",
            "--forge",
            "github",
            "--project",
            "Demo",
            "--credential",
            "agents://GITHUB_TOKEN",
            "--json",
        ],
        "",
    ));
    assert_eq!(added["name"], "docs");
    assert_eq!(added["default_branch"], "main");
    assert_eq!(added["credential"], "agents://GITHUB_TOKEN");
    let gitea = json(&cli(
        &config,
        &[
            "repo",
            "add",
            "http://git.example:3000/team/site",
            "--forge",
            "gitea",
            "--project",
            "Demo",
            "--name",
            "Site",
            "--json",
        ],
        "",
    ));
    for (args, reason) in [
        (
            vec![
                "https://169.254.169.254/latest/meta-data",
                "--forge",
                "gitea",
            ],
            "FORGE_HOST_NOT_ALLOWED",
        ),
        (
            vec![
                "https://github.com/team/x",
                "--forge",
                "github",
                "--credential",
                "ghp_abc123",
            ],
            "INVALID_FIELD",
        ),
        (
            vec![
                "https://github.com/team/x",
                "--forge",
                "github",
                "--credential",
                "agents://NOPE",
            ],
            "SECRET_NOT_FOUND",
        ),
    ] {
        let mut command = vec!["repo", "add", "--project", "Demo"];
        command.extend(args);
        let err = cli_fails(&config, &command);
        assert!(err.contains(reason), "{command:?}: {err}");
    }
    cli(
        &config,
        &["repo", "remove", gitea["id"].as_str().expect("id")],
        "",
    );
    let listed = cli(&config, &["repo", "list", "--project", "Demo"], "");
    assert!(
        listed.contains("docs")
            && listed.contains("agents://GITHUB_TOKEN")
            && !listed.contains("Site"),
        "{listed}"
    );
    assert!(!listed.contains("ghp_not_a_real_token"), "{listed}");

    cli(&config, &["project", "archive", "Demo"], "");
    let err = cli_fails(
        &config,
        &["workitem", "create", "--project", "Demo", "Too late"],
    );
    assert!(err.contains("PROJECT_ARCHIVED"), "{err}");
    let archived = json(&cli(&config, &["project", "show", "Demo", "--json"], ""));
    assert_eq!(archived["status"], "archived");
    assert_eq!(archived["work_items"], 1);
}

/// Through the CLI: a thread followed live by one process while another
/// posts; a decision asked, listed, refused with a wrong answer, answered,
/// and shown on the dashboard.
#[test]
fn threads_and_decisions_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&dir.path().join("data"), None);
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Talk"], "");
    cli(
        &config,
        &["workitem", "create", "--project", "Talk", "Discuss"],
        "",
    );

    let mut follower = Command::new(ANIMA)
        .args([
            "thread",
            "follow",
            "WI-1",
            "--project",
            "Talk",
            "--after",
            "0",
            "--json",
        ])
        .env("ANIMA_CONFIG_DIR", &config)
        .env_remove("ANIMA_SERVER")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("follow");
    let stdout = follower.stdout.take().expect("stdout");
    let (lines, followed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });

    let posted = json(&cli(
        &config,
        &[
            "thread",
            "post",
            "WI-1",
            "--project",
            "Talk",
            "Hello from the CLI",
            "--json",
        ],
        "",
    ));
    assert_eq!(posted["sequence"], 1);
    let seen = json(
        &followed
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the follower printed the message"),
    );
    assert_eq!(seen["body"], "Hello from the CLI");
    assert_eq!(seen["author"], "admin");
    let _ = follower.kill();
    let _ = follower.wait();

    let asked = json(&cli(
        &config,
        &[
            "ask",
            "WI-1",
            "--project",
            "Talk",
            "Ship it?",
            "--input",
            "Go or no",
            "--choice",
            "yes",
            "--choice",
            "no",
            "--json",
        ],
        "",
    ));
    let id = asked[0]["id"].as_str().expect("id").to_owned();
    let waiting = json(&cli(&config, &["decisions", "--json"], ""));
    assert_eq!(waiting[0]["id"], id.as_str());
    assert_eq!(waiting[0]["work_item"], "WI-1");
    let dashboard = json(&cli(&config, &["dashboard", "--json"], ""));
    assert_eq!(dashboard["projects"][0]["open_decisions"], 1);
    assert_eq!(dashboard["open_decisions"][0]["input"], "Go or no");

    let err = cli_fails(&config, &["decide", &id, "maybe"]);
    assert!(err.contains("ANSWER_NOT_A_CHOICE"), "{err}");
    cli(&config, &["decide", &id, "yes"], "");
    let err = cli_fails(&config, &["decide", &id, "no"]);
    assert!(err.contains("DECISION_NOT_OPEN"), "{err}");
    let thread = json(&cli(
        &config,
        &["thread", "show", "WI-1", "--project", "Talk", "--json"],
        "",
    ));
    assert_eq!(thread[1]["kind"], "system");
    assert!(thread[1]["body"].as_str().expect("body").contains("yes"));
    let waiting = json(&cli(&config, &["decisions", "--json"], ""));
    assert_eq!(waiting, serde_json::json!([]));
}

/// The official MCP Python SDK against a real `anima up`: every tool, a
/// refused read of another work item, and a stopped session's token
/// refused on the very next request.
/// The AI features of `anima up`, served by its own anima-ai on the local
/// model: a thread summary posted as a promotable Akh message and a
/// description draft, each naming the model and tier; the reasoning-tier
/// features refuse clearly because no reasoning model is configured.
#[test]
fn ai_features_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&dir.path().join("data"), None);
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Shop"], "");
    cli(
        &config,
        &["akh", "create", "Scribe", "--description", "Keeps notes"],
        "",
    );
    let plan = json(&cli(
        &config,
        &["plan", "create", "--project", "Shop", "Export", "--json"],
        "",
    ));
    let plan_id = plan["id"].as_str().expect("plan id");
    cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Shop",
            "Stream the CSV export",
            "--description",
            "The export runs out of memory on large projects.",
        ],
        "",
    );
    for body in [
        "The nightly export crashed again at two gigabytes.",
        "Streaming rows from a cursor into the CSV writer keeps memory flat.",
        "Lunch is at noon today.",
        "Agreed: stream the rows, and add a test with a million rows.",
    ] {
        cli(
            &config,
            &["thread", "post", "WI-1", "--project", "Shop", body],
            "",
        );
    }

    let summary = json(&cli(
        &config,
        &[
            "thread",
            "summarize",
            "WI-1",
            "--project",
            "Shop",
            "--akh",
            "Scribe",
            "--json",
        ],
        "",
    ));
    assert_eq!(summary["kind"], "akh");
    assert_eq!(summary["author"], "Scribe (AI)");
    let model = summary["model"].as_str().expect("model");
    assert!(model.starts_with("local:"), "{model}");
    if std::env::var("ANIMA_TEST_REQUIRE_MODEL").as_deref() == Ok("1") {
        assert_eq!(model, "local:all-MiniLM-L6-v2");
    }
    let body = summary["body"].as_str().expect("body");
    assert!(
        body.contains(&format!(
            "— Summary of the last 4 messages by {model} (standard tier)"
        )),
        "{body}"
    );
    assert!(
        !body.contains("Lunch"),
        "the off-topic message is left out: {body}"
    );
    // It is an Akh message like any other: it shows in the thread.
    let thread = cli(
        &config,
        &["thread", "show", "WI-1", "--project", "Shop"],
        "",
    );
    assert!(thread.contains("Scribe (AI)"), "{thread}");

    let draft = json(&cli(
        &config,
        &["workitem", "draft", "WI-1", "--project", "Shop", "--json"],
        "",
    ));
    let text = draft["description"].as_str().expect("draft");
    assert!(
        text.starts_with("## Goal\n\nStream the CSV export"),
        "{text}"
    );
    assert!(
        draft["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("local:"))
    );
    assert!(!draft["sources"].as_array().expect("sources").is_empty());

    for args in [
        vec!["workitem", "propose", "WI-1", "--project", "Shop"],
        vec!["plan", "gap", plan_id],
    ] {
        let err = cli_fails(&config, &args);
        assert!(err.contains("NO_MODEL_FOR_TIER"), "{args:?}: {err}");
    }
    let output = run(
        &config,
        &[
            "workitem",
            "review",
            "WI-1",
            "--project",
            "Shop",
            "--changes",
            "-",
        ],
        "diff --git a/export.rs b/export.rs",
        &[],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NO_MODEL_FOR_TIER"));
}

/// Requests that reach a model are metered per user: past
/// `ANIMA_RATE_LIMITS_AI_CALLS_PER_HOUR` one user is refused with when to retry;
/// another user is not.
#[test]
fn ai_requests_are_limited_per_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start_with_env(
        &dir.path().join("data"),
        None,
        &[("ANIMA_RATE_LIMITS_AI_CALLS_PER_HOUR", "1")],
    );
    let admin = dir.path().join("admin");
    up.login_admin(&admin);
    let grace = dir.path().join("grace");
    up.login_new_user(&admin, "grace", &grace);
    cli(&admin, &["akh", "create", "Scribe"], "");
    for (config, project) in [(&admin, "Shop"), (&grace, "Garden")] {
        cli(config, &["project", "create", project], "");
        cli(
            config,
            &["workitem", "create", "--project", project, "Notes"],
            "",
        );
        cli(
            config,
            &[
                "thread",
                "post",
                "WI-1",
                "--project",
                project,
                "Stream the rows.",
            ],
            "",
        );
    }
    let summarize = |project: &str| {
        vec![
            "thread".to_owned(),
            "summarize".to_owned(),
            "WI-1".to_owned(),
            "--project".to_owned(),
            project.to_owned(),
            "--akh".to_owned(),
            "Scribe".to_owned(),
        ]
    };
    let args = summarize("Shop");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&admin, &args, "");
    let refused = cli_fails(&admin, &args);
    assert!(
        refused.contains("too many AI requests (at most 1 per hour)")
            && refused.contains("RATE_LIMITED"),
        "{refused}"
    );
    let args = summarize("Garden");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&grace, &args, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_with_the_python_sdk() {
    use anima_proto::v1::{self as pb, agent_session_service_client::AgentSessionServiceClient};
    let python = std::env::var("ANIMA_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/anima-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "no Python with the MCP SDK at {python}; run scripts/setup-debian --with-test-clients"
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");

    // Over TLS, as agents outside the host reach it.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path(), "mcp");
    let credentials = dir.path().join("agents");
    let credentials_dir = credentials.display().to_string();
    let up = Up::start_tls(
        &dir.path().join("data"),
        &ca,
        &[
            ("ANIMA_AGENT_PROVIDER", "manual"),
            ("ANIMA_AGENT_CREDENTIALS_DIR", credentials_dir.as_str()),
        ],
    );
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Agents"], "");
    let item = json(&cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Agents",
            "Fix the bug",
            "--description",
            "first draft",
            "--json",
        ],
        "",
    ));
    cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Agents",
            "Someone else's",
        ],
        "",
    );
    let akh = json(&cli(&config, &["akh", "create", "Thoth", "--json"], ""));

    let (channel, token) = up.admin_channel().await;
    let mut sessions = AgentSessionServiceClient::new(channel);
    let mut start = tonic::Request::new(pb::StartSessionRequest {
        work_item_id: item["id"].as_str().expect("id").into(),
        akh_id: akh["id"].as_str().expect("id").into(),
        keep_after_stop: false,
    });
    start.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let session = sessions
        .start_session(start)
        .await
        .expect("start")
        .into_inner();
    let written = std::fs::read_to_string(credentials.join(format!("{}.json", session.id)))
        .expect("the manual provider wrote the credentials");
    let mcp_token = json(&written)["mcp_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let url = format!("{}/mcp", up.address);

    let run = |args: &[&str]| {
        let output = Command::new(&python)
            .arg(script)
            .args(args)
            .env("ANIMA_CA_CERT", &ca.ca)
            .output()
            .expect("run the Python client");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "python {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let out = run(&["tools", &url, &mcp_token, "WI-2"]);
    assert!(out.contains("ok: reading WI-2 is refused"), "{out}");

    let mut stop = tonic::Request::new(pb::StopSessionRequest {
        id: session.id.clone(),
    });
    stop.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    sessions.stop_session(stop).await.expect("stop");
    let out = run(&["refused", &url, &mcp_token, "SESSION_ENDED"]);
    assert!(out.contains("ok: the refusal says SESSION_ENDED"), "{out}");
    let out = run(&["refused", &url, "never-issued", "MCP_TOKEN_UNKNOWN"]);
    assert!(out.contains("ok: the SDK cannot use the token"), "{out}");
}

/// `anima up` with an agent command: each session's agent runs in its own
/// sandbox (anima-agent on the same listener); its exit ends the session,
/// completed or failed with its last output, and the sandbox goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sessions_run_in_sandboxes_and_end_with_their_agent() {
    use anima_proto::v1::{self as pb, agent_session_service_client::AgentSessionServiceClient};
    if !bubblewrap_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let agent = "test -s /run/anima/mcp.json && echo \"$ANIMA_AKH_NAME on $ANIMA_WORK_ITEM_ID\"; \
                 [ \"$ANIMA_AKH_NAME\" = Breaker ] && { echo 'cannot build' >&2; exit 3; }; exit 0";
    let up = Up::start_with_env(&data, None, &[("ANIMA_AGENT_COMMAND", agent)]);
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Sandboxed"], "");
    let item = json(&cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Sandboxed",
            "Build it",
            "--json",
        ],
        "",
    ));
    let item_id = item["id"].as_str().expect("id").to_owned();

    let (channel, token) = up.admin_channel().await;
    let mut sessions = AgentSessionServiceClient::new(channel);
    for (name, wanted) in [
        ("Builder", pb::SessionStatus::Completed),
        ("Breaker", pb::SessionStatus::Failed),
    ] {
        let akh = json(&cli(&config, &["akh", "create", name, "--json"], ""));
        let session = sessions
            .start_session(with_token(
                &token,
                pb::StartSessionRequest {
                    work_item_id: item_id.clone(),
                    akh_id: akh["id"].as_str().expect("id").into(),
                    keep_after_stop: false,
                },
            ))
            .await
            .expect("start")
            .into_inner();
        let ended = session_end(&mut sessions, &token, &session.id, 200)
            .await
            .expect("the agent's end ends the session");
        assert_eq!(ended.status(), wanted, "{name}: {ended:?}");
        if wanted == pb::SessionStatus::Failed {
            assert_eq!(ended.exit_code, 3);
            // Standard output and error are read side by side: their
            // lines may interleave either way.
            let mut lines = ended.last_output_lines.clone();
            lines.sort();
            assert_eq!(
                lines,
                [
                    format!("Breaker on {item_id}"),
                    "cannot build".to_owned(),
                    "the agent exited with 3:".to_owned(),
                ],
                "the failure keeps the agent's exit and last output"
            );
        }
        let sandbox = data.join("sandboxes").join(&session.id);
        for _ in 0..100 {
            if !sandbox.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(!sandbox.exists(), "{name}: the sandbox is destroyed");
    }

    // The same through the CLI.
    let listed = json(&cli(
        &config,
        &["session", "list", "--project", "Sandboxed", "--json"],
        "",
    ));
    let mut statuses: Vec<&str> = listed
        .as_array()
        .expect("sessions")
        .iter()
        .map(|session| session["status"].as_str().expect("status"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["completed", "failed"]);
    let started = json(&cli(
        &config,
        &[
            "session",
            "start",
            "WI-1",
            "--project",
            "Sandboxed",
            "--akh",
            "Builder",
            "--json",
        ],
        "",
    ));
    let id = started["id"].as_str().expect("id").to_owned();
    let mut shown = serde_json::Value::Null;
    for _ in 0..200 {
        shown = json(&cli(&config, &["session", "status", &id, "--json"], ""));
        if shown["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["exit_code"], 0, "{shown}");
}

/// The issue's login case: an admin opens a shell in a running session's
/// sandbox over SSH with one-time credentials (`anima session login`), runs
/// commands there, and finds every byte in the session's audit log; the
/// credentials do not work twice, and a member without agent.login gets
/// none.
/// What the admin types into the login shell: line editing the terminal
/// does (backspaces, ^W), an arrow key's escape sequence, a comment.
const TYPED: &str = "cat marker\necho hallo\x7f\x7f\x7f\x7fello one two\x17three # not run\n\
                     echo x\x1b[Dy\necho sum-$((20+22))\nexit\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_log_into_sandboxes_and_every_command_is_audited() {
    use anima_proto::v1::{self as pb, agent_session_service_client::AgentSessionServiceClient};
    if !bubblewrap_installed() || Command::new("ssh").arg("-V").output().is_err() {
        eprintln!("bubblewrap or ssh not installed (scripts/setup-debian); skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let up = Up::start_with_env(
        &data,
        None,
        &[(
            "ANIMA_AGENT_COMMAND",
            "echo agent-was-here > marker; sleep 600",
        )],
    );
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Debugged"], "");
    cli(
        &config,
        &["workitem", "create", "--project", "Debugged", "Slow build"],
        "",
    );
    cli(&config, &["akh", "create", "Watcher"], "");
    let started = json(&cli(
        &config,
        &[
            "session",
            "start",
            "WI-1",
            "--project",
            "Debugged",
            "--akh",
            "Watcher",
            "--json",
        ],
        "",
    ));
    let id = started["id"].as_str().expect("id").to_owned();
    let marker = data.join("sandboxes").join(&id).join("workspace/marker");
    for _ in 0..100 {
        if marker.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // An interactive shell, by work item key, typed into.
    let shown = cli(
        &config,
        &[
            "session",
            "login",
            "WI-1",
            "--project",
            "Debugged",
            "--reason",
            "why is it slow",
        ],
        TYPED,
    );
    assert!(shown.contains("agent-was-here"), "{shown}");
    assert!(shown.contains("sum-42"), "{shown}");
    assert!(shown.contains("hello one three"), "{shown}");
    // One command, by session id.
    let shown = cli(
        &config,
        &["session", "login", &id, "--", "cat", "/workspace/marker"],
        "",
    );
    assert!(shown.contains("agent-was-here"), "{shown}");

    let mut logins = serde_json::Value::Null;
    for _ in 0..100 {
        logins = json(&cli(&config, &["session", "logins", &id, "--json"], ""));
        let ended = logins
            .as_array()
            .expect("logins")
            .iter()
            .all(|login| login["end_time"] != "");
        if ended {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let logins = logins.as_array().expect("logins");
    assert_eq!(logins.len(), 2, "{logins:?}");
    let admin = json(&cli(&config, &["whoami", "--json"], ""));
    assert_eq!(logins[0]["user_id"], admin["id"]);
    assert_eq!(logins[0]["reason"], "why is it slow");
    assert_eq!(logins[0]["commands"], serde_json::json!([]));
    assert_eq!(logins[0]["exit_status"], 0);
    assert!(logins[0]["bytes_out"].as_i64() > logins[0]["bytes_in"].as_i64());
    assert_eq!(
        logins[1]["commands"],
        serde_json::json!(["cat /workspace/marker"])
    );
    let shown = cli(&config, &["session", "logins", &id], "");
    assert!(shown.contains("$ cat /workspace/marker"), "{shown}");
    // The recording is what crossed the terminal, not lines re-assembled:
    // every byte typed (backspaces, ^W, an arrow key, a comment) and the
    // shell's answer to what really ran.
    let login = logins[0]["id"].as_str().expect("login id");
    let recording = json(&cli(
        &config,
        &["session", "recording", &id, login, "--json"],
        "",
    ));
    let stream = |input: bool| {
        recording
            .as_array()
            .expect("events")
            .iter()
            .filter(|event| event["input"] == input)
            .map(|event| event["data"].as_str().expect("data"))
            .collect::<String>()
    };
    // The client's end of input arrives as the terminal's ^D, recorded
    // too unless the shell had ended first.
    let typed = stream(true);
    assert_eq!(
        typed.strip_suffix('\u{4}').unwrap_or(&typed),
        TYPED,
        "every byte typed, in order"
    );
    let shown = stream(false);
    // (The terminal's echo shows the edits and `^[`; only what ran prints
    // these.)
    assert!(shown.contains("hello one three\r\n"), "{shown:?}");
    assert!(shown.contains("x\u{1b}[Dy\r\n"), "{shown:?}");
    assert!(shown.contains("sum-42"), "{shown:?}");
    let replay = cli(&config, &["session", "recording", &id, login], "");
    assert!(replay.contains(" < cat marker\\n"), "{replay}");
    assert!(
        !replay.contains('\u{1b}'),
        "escapes are shown, not sent: {replay}"
    );
    let cast = cli(
        &config,
        &["session", "recording", &id, login, "--asciicast"],
        "",
    );
    let mut lines = cast.lines();
    assert_eq!(json(lines.next().expect("header"))["version"], 2);
    assert!(lines.all(|line| json(line).as_array().is_some_and(|event| event.len() == 3)));

    // Credentials work once.
    let (channel, token) = up.admin_channel().await;
    let mut sessions = AgentSessionServiceClient::new(channel);
    let credentials = sessions
        .login_session(with_token(
            &token,
            pb::LoginSessionRequest {
                id: id.clone(),
                reason: "twice".into(),
            },
        ))
        .await
        .expect("credentials")
        .into_inner();
    for attempt in 0..2 {
        let keys = tempfile::tempdir().expect("keys");
        let output = anima_client::ssh::openssh_client(
            keys.path(),
            &anima_client::ssh::ClientCredentials {
                host: &credentials.host,
                port: credentials.port,
                username: &credentials.username,
                private_key_pem: &credentials.private_key_pem,
                host_public_key: &credentials.host_public_key,
            },
            &[],
            &["echo in-$((1+1))".to_owned()],
        )
        .expect("client")
        .stdin(Stdio::null())
        .output()
        .expect("ssh");
        let shown = String::from_utf8_lossy(&output.stdout);
        if attempt == 0 {
            assert!(shown.contains("in-2"), "{shown}");
        } else {
            assert_eq!(output.status.code(), Some(255), "reused: {shown}");
        }
    }

    // A member without agent.login gets no credentials.
    let member = dir.path().join("member-config");
    up.login_new_user(&config, "mallory", &member);
    cli(
        &config,
        &[
            "project", "members", "add", "Debugged", "mallory", "--role", "Member",
        ],
        "",
    );
    let refused = cli_fails(&member, &["session", "login", &id]);
    assert!(refused.contains("agent.login"), "{refused}");

    // The shell is as confined as the agent: no remounting the system
    // read-write and writing it, as an earlier version allowed.
    let attack = run(
        &config,
        &[
            "session",
            "login",
            "WI-1",
            "--project",
            "Debugged",
            "--",
            "mount -o remount,bind,rw /usr; touch /usr/x",
        ],
        "",
        &[],
    );
    assert!(!attack.status.success(), "{attack:?}");
    assert!(!std::path::Path::new("/usr/x").exists());

    // Stopping the session ends its sandbox; the audit log stays.
    cli(&config, &["session", "stop", &id], "");
    let kept = json(&cli(&config, &["session", "logins", &id, "--json"], ""));
    assert_eq!(kept.as_array().expect("logins").len(), 4);
}

/// `anima up` killed while a session's agent runs: the agent's processes
/// die with it (nothing is orphaned), and the restarted server fails the
/// session, whose sandbox is gone, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_no_agent_behind_and_fails_the_session() {
    if !bubblewrap_installed() {
        return;
    }
    let marker = format!("orphan-check-{}", std::process::id());
    let agent = format!("sleep 600; echo {marker}");
    let running = || {
        Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .is_ok_and(|output| output.status.success())
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let up = Up::start_with_env(&data, None, &[("ANIMA_AGENT_COMMAND", agent.as_str())]);
    let password = up.admin_password.clone();
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Doomed"], "");
    cli(
        &config,
        &["workitem", "create", "--project", "Doomed", "Long job"],
        "",
    );
    cli(&config, &["akh", "create", "Sisyphus"], "");
    let started = json(&cli(
        &config,
        &[
            "session",
            "start",
            "WI-1",
            "--project",
            "Doomed",
            "--akh",
            "Sisyphus",
            "--json",
        ],
        "",
    ));
    let id = started["id"].as_str().expect("id").to_owned();
    for _ in 0..100 {
        if running() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(running(), "the agent runs");

    drop(up); // SIGKILL: no chance to clean up.
    for _ in 0..100 {
        if !running() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!running(), "the agent's processes died with the server");

    let mut again = Command::new(ANIMA)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("ANIMA_AGENT_COMMAND", &agent)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start again");
    let mut first_line = String::new();
    BufReader::new(again.stdout.take().expect("stdout"))
        .read_line(&mut first_line)
        .expect("line");
    let address = first_line
        .strip_prefix("anima is up at ")
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address")
        .to_owned();
    cli(
        &config,
        &[
            "login",
            "--server",
            &address,
            "-u",
            "admin",
            "--password-stdin",
        ],
        &password,
    );
    let mut shown = serde_json::Value::Null;
    for _ in 0..100 {
        shown = json(&cli(&config, &["session", "status", &id, "--json"], ""));
        if shown["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = again.kill();
    let _ = again.wait();
    assert_eq!(shown["status"], "failed", "{shown}");
    assert!(
        shown["last_output_lines"][0]
            .as_str()
            .is_some_and(|line| line.contains("sandbox is gone")),
        "{shown}"
    );
}

/// Skills: published as versioned bundles, declared by a workflow's
/// phases, in the sandbox before the agent starts, and replaced when the
/// work item moves to the next phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_their_phase_skills_and_follow_phase_changes() {
    if !bubblewrap_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let up = Up::start_with_env(
        &data,
        None,
        &[(
            "ANIMA_AGENT_COMMAND",
            "cat .anima/skills/triage-notes/SKILL.md > started-with; sleep 600",
        )],
    );
    let config = dir.path().join("config");
    up.login_admin(&config);

    let bundle = |name: &str, version: &str, text: &str| {
        let skill = dir.path().join(format!("{name}-{version}"));
        std::fs::create_dir_all(skill.join("tools")).expect("dir");
        std::fs::write(
            skill.join("manifest.json"),
            format!(r#"{{"name": "{name}", "version": "{version}", "description": "{text}"}}"#),
        )
        .expect("manifest");
        std::fs::write(skill.join("SKILL.md"), text).expect("skill");
        std::fs::write(skill.join("tools/run.sh"), "echo run").expect("tool");
        skill
    };
    let published = json(&cli(
        &config,
        &[
            "skill",
            "publish",
            bundle("triage-notes", "1.0.0", "Read the logs first.")
                .to_str()
                .expect("path"),
            "--json",
        ],
        "",
    ));
    assert_eq!(published["file_count"], 2);
    cli(
        &config,
        &[
            "skill",
            "publish",
            bundle("fixing", "2.1.0", "Write the test first.")
                .to_str()
                .expect("path"),
        ],
        "",
    );
    let refused = cli_fails(
        &config,
        &[
            "skill",
            "publish",
            bundle("fixing", "2.1.0", "Changed.")
                .to_str()
                .expect("path"),
        ],
    );
    assert!(refused.contains("published already"), "{refused}");
    let fetched = dir.path().join("fetched");
    cli(
        &config,
        &[
            "skill",
            "get",
            "fixing",
            "--output",
            fetched.to_str().expect("path"),
        ],
        "",
    );
    assert_eq!(
        std::fs::read_to_string(fetched.join("SKILL.md")).expect("fetched"),
        "Write the test first."
    );
    assert!(cli(&config, &["skill", "list"], "").contains("triage-notes"));

    cli(
        &config,
        &[
            "workflow",
            "create",
            "Skilled",
            "--phase",
            "Triage:triage-notes",
            "--phase",
            "Fix:fixing",
        ],
        "",
    );
    cli(&config, &["project", "create", "Skills"], "");
    cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Skills",
            "--workflow",
            "Skilled",
            "Crash on start",
        ],
        "",
    );
    cli(&config, &["akh", "create", "Learner"], "");
    let started = json(&cli(
        &config,
        &[
            "session",
            "start",
            "WI-1",
            "--project",
            "Skills",
            "--akh",
            "Learner",
            "--json",
        ],
        "",
    ));
    let id = started["id"].as_str().expect("id").to_owned();
    let workspace = data.join("sandboxes").join(&id).join("workspace");
    let started_with = workspace.join("started-with");
    for _ in 0..100 {
        if std::fs::read(&started_with).is_ok_and(|bytes| !bytes.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&started_with).expect("the agent read its skill"),
        "Read the logs first."
    );

    cli(
        &config,
        &["workitem", "move", "WI-1", "--project", "Skills", "fix"],
        "",
    );
    // The server's supervisor follows the phase change from the outbox:
    // the session records the phase once its skills are in place.
    let mut shown = serde_json::Value::Null;
    for _ in 0..100 {
        shown = json(&cli(&config, &["session", "status", &id, "--json"], ""));
        if shown["phase_id"] == "fix" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(shown["phase_id"], "fix");
    assert_eq!(shown["skills"], serde_json::json!(["fixing"]));
    // Kept beside the workspace, in the provider's own read-only mount.
    let skills = data.join("sandboxes").join(&id).join("anima/skills");
    assert_eq!(
        std::fs::read_to_string(skills.join("fixing/SKILL.md")).expect("the next phase's skill"),
        "Write the test first."
    );
    assert!(skills.join("fixing/tools/run.sh").is_file());
    assert!(skills.join("fixing/manifest.json").is_file());
    assert!(
        !skills.join("triage-notes").exists(),
        "the last phase's skills are gone"
    );

    // A phase pinned to a version nobody published refuses to start, and
    // records nothing.
    cli(
        &config,
        &[
            "workflow",
            "create",
            "Pinned",
            "--phase",
            "Only:fixing@9.9.9",
        ],
        "",
    );
    cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Skills",
            "--workflow",
            "Pinned",
            "Pinned work",
        ],
        "",
    );
    let refused = cli_fails(
        &config,
        &[
            "session",
            "start",
            "WI-2",
            "--project",
            "Skills",
            "--akh",
            "Learner",
        ],
    );
    assert!(
        refused.contains("SKILL_NOT_FOUND") || refused.contains("not published"),
        "{refused}"
    );
    let listed = json(&cli(
        &config,
        &[
            "session",
            "list",
            "--project",
            "Skills",
            "--work-item",
            "WI-2",
            "--json",
        ],
        "",
    ));
    assert_eq!(listed, serde_json::json!([]));
}

/// The issue's end-to-end case: an agent in a sandbox without network
/// uses the official MCP SDK with its session's token to read its work
/// item, create a task, post as its Akh and complete the task; the thread
/// and the task list show it, the session completes, its token is dead.
/// An agent in a sandbox works on its item through MCP, and finds and
/// reads its project's documents there (and no other project's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_agent_works_through_mcp() {
    use anima_proto::v1::{
        self as pb, agent_session_service_client::AgentSessionServiceClient,
        thread_service_client::ThreadServiceClient,
    };
    if !bubblewrap_installed() {
        return;
    }
    let venv = std::env::var("ANIMA_TEST_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/anima-venv",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&venv).join("bin/python").exists(),
        "no Python with the MCP SDK in {venv}; run scripts/setup-debian --with-test-clients"
    );
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The sandbox user reads the agent's script from a directory of its
    // own: the checkout may be somewhere it cannot reach.
    let scripts = tempfile::tempdir().expect("scripts");
    std::fs::copy(
        format!("{tests}/sandbox_agent.py"),
        scripts.path().join("sandbox_agent.py"),
    )
    .expect("the agent's script");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(scripts.path(), std::fs::Permissions::from_mode(0o755))
            .expect("readable");
    }
    let scripts_dir = scripts.path().display().to_string();
    // The agent keeps a copy of its MCP configuration in the workspace,
    // which outlives the session (the given files, token included, do not).
    let agent = format!(
        "cp /run/anima/mcp.json given-mcp.json && \
         {venv}/bin/python {scripts_dir}/sandbox_agent.py"
    );
    // The environment's interpreter may live outside /usr (pyenv): the
    // sandbox needs its installation too, named by pyvenv.cfg's `home`.
    let pyvenv = std::fs::read_to_string(format!("{venv}/pyvenv.cfg")).expect("pyvenv.cfg");
    let interpreter = pyvenv
        .lines()
        .find_map(|line| line.strip_prefix("home = "))
        .and_then(|home| std::path::Path::new(home.trim()).parent())
        .expect("the interpreter's installation")
        .display()
        .to_string();
    let read_only = format!("{venv},{scripts_dir},{interpreter}");
    // Over TLS: the sandbox still reaches /mcp, through the loopback port
    // `anima up` keeps for what it hosts.
    let ca = TestCa::new(dir.path(), "sandbox");
    let up = Up::start_tls(
        &data,
        &ca,
        &[
            ("ANIMA_AGENT_COMMAND", agent.as_str()),
            ("ANIMA_AGENT_READ_ONLY", read_only.as_str()),
        ],
    );
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Sandboxed"], "");
    let item = json(&cli(
        &config,
        &[
            "workitem",
            "create",
            "--project",
            "Sandboxed",
            "Ship it",
            "--json",
        ],
        "",
    ));
    let item_id = item["id"].as_str().expect("id").to_owned();
    let akh = json(&cli(&config, &["akh", "create", "Thoth", "--json"], ""));

    // The library: a spec and, on the work item, a patch; another
    // project holds a document the agent must not reach.
    let files = dir.path().join("files");
    std::fs::create_dir(&files).expect("files");
    let write = |name: &str, text: &str| {
        let path = files.join(name);
        std::fs::write(&path, text).expect("a file to upload");
        path.display().to_string()
    };
    let spec = write(
        "retry-spec.md",
        "# Exporter retries\n\nWhen the upstream connection drops with ERR_CONN_RESET, \
         the exporter waits with exponential backoff and tries again, at most five times.\n",
    );
    let patch = write(
        "cache.patch",
        "--- a/src/cache.rs\n+++ b/src/cache.rs\n@@ -1,3 +1,3 @@\n\
         -fn evict_oldest(entries: &mut Vec<Entry>) {\n\
         +fn evict_oldest(entries: &mut VecDeque<Entry>) {\n",
    );
    let vault = write(
        "vault.md",
        "# Signing keys\n\nThe release signing key rotates every quarter; VAULT_ROTATE_7 \
         tracks the next rotation.\n",
    );
    cli(
        &config,
        &["doc", "upload", "--project", "Sandboxed", &spec],
        "",
    );
    cli(
        &config,
        &[
            "doc",
            "upload",
            "--project",
            "Sandboxed",
            "--work-item",
            &item_id,
            &patch,
        ],
        "",
    );
    cli(&config, &["project", "create", "Vault"], "");
    let foreign = json(&cli(
        &config,
        &["doc", "upload", "--project", "Vault", &vault, "--json"],
        "",
    ));
    // Each is found by an identifier in it and by a paraphrase.
    let paraphrase = "what happens if the network link fails";
    found_first(&config, "Sandboxed", paraphrase, "retry-spec.md");
    found_first(&config, "Sandboxed", "ERR_CONN_RESET", "retry-spec.md");
    found_first(&config, "Sandboxed", "evict_oldest", "cache.patch");
    found_first(
        &config,
        "Sandboxed",
        "a code change to how the oldest items are dropped",
        "cache.patch",
    );
    found_first(&config, "Vault", "when is the key replaced", "vault.md");
    assert!(found_titles(&config, "Sandboxed", "VAULT_ROTATE_7").is_empty());
    // What the agent looks for, beside its script.
    std::fs::write(
        scripts.path().join("library.json"),
        serde_json::json!({
            "paraphrase": paraphrase,
            "title": "retry-spec.md",
            "identifier": "ERR_CONN_RESET",
            "foreign_identifier": "VAULT_ROTATE_7",
            "foreign_id": foreign["id"],
        })
        .to_string(),
    )
    .expect("library.json");

    let (channel, token) = up.admin_channel().await;
    // A human watching the thread sees the agent's post arrive.
    let mut live = ThreadServiceClient::new(channel.clone())
        .stream_thread(with_token(
            &token,
            pb::StreamThreadRequest {
                work_item_id: item_id.clone(),
                after_event_id: 0,
            },
        ))
        .await
        .expect("stream")
        .into_inner();
    let mut sessions = AgentSessionServiceClient::new(channel.clone());
    let session = sessions
        .start_session(with_token(
            &token,
            pb::StartSessionRequest {
                work_item_id: item_id.clone(),
                akh_id: akh["id"].as_str().expect("id").into(),
                // Kept, so the test can try the token the agent was given.
                keep_after_stop: true,
            },
        ))
        .await
        .expect("start")
        .into_inner();
    let streamed = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(item) = live.next().await {
            if let Some(pb::thread_event::Kind::Message(message)) = item.expect("stream item").kind
                && message.body == "Thoth is on WI-1"
            {
                return message;
            }
        }
        panic!("the thread stream ended");
    })
    .await
    .expect("the agent's post arrives on the live thread");
    assert_eq!(streamed.kind(), pb::MessageKind::Akh);
    let ended = session_end(&mut sessions, &token, &session.id, 300)
        .await
        .expect("the agent finished");
    assert_eq!(ended.status(), pb::SessionStatus::Completed, "{ended:?}");

    let thread = ThreadServiceClient::new(channel)
        .get_thread(with_token(
            &token,
            pb::GetThreadRequest {
                work_item_id: item_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("thread")
        .into_inner();
    let posted = thread
        .messages
        .iter()
        .find(|message| message.body == "Thoth is on WI-1")
        .expect("the agent's post is in the thread");
    assert_eq!(posted.kind(), pb::MessageKind::Akh);
    assert!(
        thread
            .messages
            .iter()
            .any(|message| message.body == "Thoth read retry-spec.md"),
        "the agent read the document it found"
    );
    let tasks = sessions
        .list_tasks(with_token(
            &token,
            pb::ListTasksRequest {
                session_id: session.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("tasks")
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].title, "Work on WI-1");
    assert_eq!(tasks[0].status(), pb::TaskStatus::Done);
    // The session's end killed the token the agent was given.
    // The kept workspace is an image (unmounted); debugfs reads it.
    let kept = Command::new("debugfs")
        .arg("-R")
        .arg("cat /given-mcp.json")
        .arg(
            data.join("sandboxes")
                .join(&session.id)
                .join("workspace.img"),
        )
        .output()
        .expect("debugfs (e2fsprogs)");
    let given: serde_json::Value =
        serde_json::from_slice(&kept.stdout).expect("the kept sandbox's MCP configuration");
    let refused = std::process::Command::new(format!("{venv}/bin/python"))
        .arg(format!("{tests}/mcp_client.py"))
        .args([
            "refused",
            &format!("{}/mcp", up.address),
            given["token"].as_str().expect("token"),
            "SESSION_ENDED",
        ])
        .env("ANIMA_CA_CERT", &ca.ca)
        .output()
        .expect("run the Python client");
    assert!(
        refused.status.success(),
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// Whether the sandbox tool is here; says so when it is not.
fn bubblewrap_installed() -> bool {
    let installed = std::path::Path::new("/usr/bin/bwrap").exists();
    if !installed {
        eprintln!("bubblewrap not installed (scripts/setup-debian); skipped");
    }
    installed
}

/// The session once it is no longer running, asked every 100 ms up to
/// `tries` times (a bound, not a speed requirement); `None` if it still runs.
async fn session_end(
    sessions: &mut anima_proto::v1::agent_session_service_client::AgentSessionServiceClient<
        tonic::transport::Channel,
    >,
    token: &str,
    id: &str,
    tries: usize,
) -> Option<anima_proto::v1::AgentSession> {
    for _ in 0..tries {
        let current = sessions
            .get_session(with_token(
                token,
                anima_proto::v1::GetSessionRequest { id: id.into() },
            ))
            .await
            .expect("get")
            .into_inner();
        if current.status() != anima_proto::v1::SessionStatus::Running {
            return Some(current);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// A request with the bearer token of a login.
fn with_token<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

#[test]
fn planning_cli_on_sqlite() {
    planning_through_the_cli(None);
}

#[tokio::test]
async fn planning_cli_on_postgres() {
    let db = TempDatabase::postgres().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || planning_through_the_cli(Some(&url)))
        .await
        .expect("planning through the CLI");
}

/// `anima up` on SQLite: a thread stream replays and follows 1,000 messages
/// posted by several clients; a subscriber whose connection dies resumes
/// from its last event id with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thread_stream_replays_across_a_reconnect_on_sqlite() {
    use anima_proto::v1::{
        self as pb, auth_service_client::AuthServiceClient,
        project_service_client::ProjectServiceClient, thread_service_client::ThreadServiceClient,
        work_item_service_client::WorkItemServiceClient,
    };
    use tonic::{Request, transport::Channel};

    const MESSAGES: usize = 1_000;
    const WRITERS: usize = 4;
    fn authed<T>(token: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        request
    }
    async fn channel(address: &str) -> Channel {
        Channel::from_shared(address.to_owned())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }
    async fn take(stream: &mut tonic::Streaming<pb::ThreadEvent>, count: usize) -> (Vec<i64>, i64) {
        let mut sequences = Vec::new();
        let mut last = 0;
        while sequences.len() < count {
            let item = tokio::time::timeout(std::time::Duration::from_secs(60), stream.next())
                .await
                .expect("delivering")
                .expect("open")
                .expect("ok");
            if let Some(pb::thread_event::Kind::Message(message)) = item.kind {
                last = item.event_id;
                sequences.push(message.sequence);
            }
        }
        (sequences, last)
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&dir.path().join("data"), None);
    let token = AuthServiceClient::new(channel(&up.address).await)
        .login(pb::LoginRequest {
            username: "admin".into(),
            password: up.admin_password.clone(),
        })
        .await
        .expect("login")
        .into_inner()
        .token;
    let project = ProjectServiceClient::new(channel(&up.address).await)
        .create_project(authed(
            &token,
            pb::CreateProjectRequest {
                name: "Replay".into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner();
    let item = WorkItemServiceClient::new(channel(&up.address).await)
        .create_work_item(authed(
            &token,
            pb::CreateWorkItemRequest {
                project_id: project.id,
                title: "Busy".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("item")
        .into_inner();
    // The newest event so far: the work item's creation.
    let cursor = ThreadServiceClient::new(channel(&up.address).await)
        .stream_thread(authed(
            &token,
            pb::StreamThreadRequest {
                work_item_id: item.id.clone(),
                after_event_id: 0,
            },
        ))
        .await
        .expect("stream")
        .into_inner()
        .next()
        .await
        .expect("an event")
        .expect("ok")
        .event_id;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let channel = channel(&up.address).await;
        let token = token.clone();
        let work_item_id = item.id.clone();
        writers.push(tokio::spawn(async move {
            let mut threads = ThreadServiceClient::new(channel);
            for n in 0..MESSAGES / WRITERS {
                threads
                    .post_message(authed(
                        &token,
                        pb::PostMessageRequest {
                            work_item_id: work_item_id.clone(),
                            kind: pb::MessageKind::Human as i32,
                            body: format!("{writer}/{n}"),
                            ..Default::default()
                        },
                    ))
                    .await
                    .expect("post");
            }
        }));
    }
    let subscribe = |after_event_id: i64| {
        let address = up.address.clone();
        let token = token.clone();
        let work_item_id = item.id.clone();
        async move {
            ThreadServiceClient::new(channel(&address).await)
                .stream_thread(authed(
                    &token,
                    pb::StreamThreadRequest {
                        work_item_id,
                        after_event_id,
                    },
                ))
                .await
                .expect("stream")
                .into_inner()
        }
    };
    let mut flaky = subscribe(cursor).await;
    let (first, resume_after) = take(&mut flaky, 300).await;
    drop(flaky);
    for writer in writers {
        writer.await.expect("writer");
    }
    let mut resumed = subscribe(resume_after).await;
    let (rest, _) = take(&mut resumed, MESSAGES - first.len()).await;
    let union: Vec<i64> = first.into_iter().chain(rest).collect();
    assert_eq!(union, (1..=MESSAGES as i64).collect::<Vec<_>>());
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
    // Issue 21: the embedded database (password and token hashes, every
    // project) was readable by every local user.
    use std::os::unix::fs::PermissionsExt;
    for file in ["anima.db", "anima.db-wal", "anima.db-shm"] {
        let path = data.join(file);
        if let Ok(metadata) = std::fs::metadata(&path) {
            assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{file}");
        }
    }
    assert!(data.join("anima.db").exists());
}

/// `anima session status ID --json` once the session has ended, asked at
/// most `polls` times 50 ms apart (a bound, not a speed requirement).
async fn session_status_at_end(
    config: &std::path::Path,
    id: &str,
    polls: usize,
) -> serde_json::Value {
    for _ in 0..polls {
        let status = json(&cli(config, &["session", "status", id, "--json"], ""));
        if status["status"] != "running" && status["status"] != "provisioning" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("session {id} never ended");
}

/// A signed-in user who owns a project attacks the host through what a
/// project owner may do: secret references to the server's environment,
/// `/proc`, the database, the SSH host key, `/dev/zero`, a FIFO and a store
/// nobody configured are refused (when granted, or when the session
/// starts); an agent and a login shell try to remount and write the
/// system, make namespaces and become root, and all fail; the agent's
/// recorded output never shows a secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_owner_cannot_reach_the_host_through_an_agent_session() {
    if !bubblewrap_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The store an administrator configured, with what a hostile owner
    // would like it to point at planted in it.
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).expect("secrets");
    std::fs::write(secrets.join("deploy"), "deploy-secret-value\n").expect("secret");
    for (name, target) in [
        ("zero", std::path::PathBuf::from("/dev/zero")),
        ("environ", "/proc/self/environ".into()),
        ("database", data.join("anima.db")),
        ("hostkey", data.join("sandboxes/ssh_host_ed25519_key")),
    ] {
        std::os::unix::fs::symlink(target, secrets.join(name)).expect("link");
    }
    let made = Command::new("mkfifo")
        .arg(secrets.join("fifo"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let stores = format!(
        "files=dir:{},agents=env:ANIMA_AGENT_SECRET_",
        secrets.display()
    );
    let agent = "cat /run/anima/secrets/deploy /run/anima/secrets/api; echo; \
        for attempt in 'mount -o remount,rw /usr' 'touch /usr/x' 'touch /etc/x' \
                       'unshare -U true' 'unshare -m true' 'mount -t tmpfs none /tmp' \
                       'ls /root' 'grep -qa ANIMA_ /proc/1/environ'; do \
          sh -c \"$attempt\" >/dev/null 2>&1 && echo \"ESCAPED: $attempt\"; \
        done; grep -E 'CapEff|NoNewPrivs' /proc/self/status; id -u; exit 7";
    let up = Up::start_with_env(
        &data,
        None,
        &[
            ("ANIMA_AGENT_COMMAND", agent),
            ("ANIMA_SECRET_STORES", stores.as_str()),
            ("ANIMA_AGENT_SECRET_API", "env-secret-value"),
        ],
    );
    let admin = dir.path().join("admin");
    up.login_admin(&admin);
    cli(&admin, &["akh", "create", "Thoth"], "");
    let owner = dir.path().join("owner");
    up.login_new_user(&admin, "mallory", &owner);
    cli(&owner, &["project", "create", "Mine"], "");
    cli(
        &owner,
        &["workitem", "create", "--project", "Mine", "Leak it"],
        "",
    );
    let grant = |reference: &str| {
        vec![
            "workitem".to_owned(),
            "capabilities".into(),
            "WI-1".into(),
            "--project".into(),
            "Mine".into(),
            "--clear".into(),
            "--secret".into(),
            format!("s={reference}"),
        ]
    };
    fn args(owned: &[String]) -> Vec<&str> {
        owned.iter().map(String::as_str).collect()
    }
    for (reference, code) in [
        ("env://ANIMA_SERVICE_TOKENS", "SECRET_STORE_UNKNOWN"),
        ("vault://token", "SECRET_STORE_UNKNOWN"),
        ("file:///proc/self/environ", "INVALID_CAPABILITY"),
        ("files://../data/anima.db", "INVALID_CAPABILITY"),
        ("file:///dev/zero", "INVALID_CAPABILITY"),
        (
            &*format!("file://{}", secrets.join("fifo").display()),
            "INVALID_CAPABILITY",
        ),
        (
            &*format!("file://{}", data.join("anima.db").display()),
            "INVALID_CAPABILITY",
        ),
        (
            &*format!(
                "file://{}",
                data.join("sandboxes/ssh_host_ed25519_key").display()
            ),
            "INVALID_CAPABILITY",
        ),
    ] {
        let err = cli_fails(&owner, &args(&grant(reference)));
        assert!(err.contains(code), "{reference}: {err}");
    }
    let start = [
        "session",
        "start",
        "WI-1",
        "--project",
        "Mine",
        "--akh",
        "Thoth",
        "--json",
    ];
    for reference in [
        "files://zero",
        "files://environ",
        "files://database",
        "files://hostkey",
        "files://fifo",
        "files://missing",
        "agents://NOT_SET",
    ] {
        cli(&owner, &args(&grant(reference)), "");
        let err = cli_fails(&owner, &start);
        assert!(err.contains("SECRET_NOT_FOUND"), "{reference}: {err}");
        assert!(
            !err.contains(&*secrets.to_string_lossy()) && !err.contains("No such file"),
            "the refusal tells nothing of the host: {err}"
        );
    }
    let listed = json(&cli(
        &owner,
        &[
            "session",
            "list",
            "--work-item",
            "WI-1",
            "--project",
            "Mine",
            "--json",
        ],
        "",
    ));
    assert_eq!(
        listed,
        serde_json::json!([]),
        "refused starts recorded nothing"
    );

    cli(
        &owner,
        &[
            "workitem",
            "capabilities",
            "WI-1",
            "--project",
            "Mine",
            "--clear",
            "--secret",
            "deploy=files://deploy",
            "--secret",
            "api=agents://API",
        ],
        "",
    );
    let started = json(&cli(&owner, &start, ""));
    let id = started["id"].as_str().expect("id").to_owned();
    let ended = session_status_at_end(&owner, &id, 200).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["exit_code"], 7, "{ended}");
    let shown = ended["last_output_lines"].to_string();
    assert!(
        !shown.contains("deploy-secret-value") && !shown.contains("env-secret-value"),
        "no secret in the recorded output: {shown}"
    );
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains("ESCAPED"), "{shown}");
    assert!(shown.contains("CapEff:\\t0000000000000000"), "{shown}");
    assert!(shown.contains("NoNewPrivs:\\t1"), "{shown}");
    assert!(!shown.contains("\"0\""), "not root: {shown}");
    assert!(!std::path::Path::new("/usr/x").exists());
    assert!(!std::path::Path::new("/etc/x").exists());
}

/// A network zone an administrator defined, granted to a work item: its
/// agent reaches the zone's host (a local server the zone names
/// example.test) through the egress proxy, and nothing else: not
/// PostgreSQL, not this server's own port (gRPC, anima-ai), not cloud
/// metadata, not another local port. Without the zone, not even that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_zone_reaches_its_hosts_and_nothing_else() {
    if !bubblewrap_installed() {
        return;
    }
    let example = std::net::TcpListener::bind("127.0.0.1:0").expect("example.test");
    let example_port = example.local_addr().expect("address").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in example.incoming().map_while(Result::ok) {
            let mut request = [0; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nexample-ok\n");
        }
    });
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("other");
    let other_port = other.local_addr().expect("address").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join("anima.toml");
    std::fs::write(
        &config_file,
        format!(
            "[server.network_zones.test]\nallow = [\"example.test:443\"]\n\
             connect_to = {{ \"example.test:443\" = \"127.0.0.1:{example_port}\" }}\n"
        ),
    )
    .expect("config");
    // The agent asks the proxy for each destination; ANIMA_PORT is the
    // server's own port, filled in below.
    let script = r#"
import http.client, os, sys
host, port = os.environ["HTTPS_PROXY"].removeprefix("http://").split(":")
for target in sys.argv[1:]:
    name, number = target.split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.set_tunnel(name, int(number))
        c.request("GET", "/")
        r = c.getresponse()
        print(target, r.status, r.read().decode().strip())
    except OSError as e:
        print(target, "refused", "403" if "403" in str(e) else str(e))
"#;
    let quoted = format!("'{}'", script.replace('\'', r"'\''"));
    let agent = format!(
        "python3 -c {quoted} example.test:443 127.0.0.1:5432 127.0.0.1:$ANIMA_PORT \
         169.254.169.254:80 127.0.0.1:{other_port} localhost:$ANIMA_PORT; exit 9"
    );
    // The listener's port is only known once `anima up` runs: pick one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let agent = agent.replace("$ANIMA_PORT", &port.to_string());
    let data = dir.path().join("data");
    let up = Up::launch(
        &data,
        None,
        &[
            ("ANIMA_AGENT_COMMAND", agent.as_str()),
            ("ANIMA_CONFIG", &*config_file.to_string_lossy()),
        ],
        &format!("127.0.0.1:{port}"),
        None,
    );
    // The administrator defines the Akh; a user who is no admin owns the
    // project and grants the zone.
    let admin = dir.path().join("admin");
    up.login_admin(&admin);
    cli(&admin, &["akh", "create", "Thoth"], "");
    let config = dir.path().join("config");
    up.login_new_user(&admin, "olivia", &config);
    cli(&config, &["project", "create", "Zoned"], "");
    for title in ["With the zone", "Without"] {
        cli(
            &config,
            &["workitem", "create", "--project", "Zoned", title],
            "",
        );
    }
    cli(
        &config,
        &[
            "workitem",
            "capabilities",
            "WI-1",
            "--project",
            "Zoned",
            "--network",
            "test",
        ],
        "",
    );
    let mut outputs = Vec::new();
    for item in ["WI-1", "WI-2"] {
        let started = json(&cli(
            &config,
            &[
                "session",
                "start",
                item,
                "--project",
                "Zoned",
                "--akh",
                "Thoth",
                "--json",
            ],
            "",
        ));
        let id = started["id"].as_str().expect("id").to_owned();
        let ended = session_status_at_end(&config, &id, 400).await;
        assert_eq!(ended["exit_code"], 9, "{ended}");
        outputs.push(
            ended["last_output_lines"]
                .as_array()
                .expect("lines")
                .iter()
                .filter_map(|line| line.as_str().map(str::to_owned))
                .filter(|line| !line.starts_with("the agent exited"))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        outputs[0],
        [
            "example.test:443 200 example-ok".to_owned(),
            "127.0.0.1:5432 refused 403".into(),
            format!("127.0.0.1:{port} refused 403"),
            "169.254.169.254:80 refused 403".into(),
            format!("127.0.0.1:{other_port} refused 403"),
            format!("localhost:{port} refused 403"),
        ]
    );
    assert!(
        outputs[1].iter().all(|line| line.contains("refused 403")),
        "without the zone nothing: {:?}",
        outputs[1]
    );
    drop(other);
}

/// A 100 MiB document goes through `anima up` (the CLI, the server, the
/// hosted library) and back byte for byte without the server ever holding
/// it whole; one byte past 100 MiB is refused and nothing is kept.
#[test]
fn documents_of_100_mib_stream_through_anima_up() {
    use std::io::Write;

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let up = Up::start(&data, None);
    let config = dir.path().join("config");
    up.login_admin(&config);
    let project = json(&cli(&config, &["project", "create", "Big", "--json"], ""));
    let project_id = project["id"].as_str().expect("project id");

    const MIB: usize = 1024 * 1024;
    let write_file = |name: &str, len: usize| {
        let path = dir.path().join(name);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let block: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
        for n in 0..len / MIB {
            let mut block = block.clone();
            block[0] = n as u8;
            file.write_all(&block).expect("write");
        }
        file.write_all(&block[..len % MIB]).expect("write");
        file.flush().expect("flush");
        path
    };
    let big = write_file("big.bin", 100 * MIB);
    // A search embeds its query, which loads the sentence model (about
    // 190 MiB, once): loaded before the baseline, it is not counted
    // against the upload, which the document's title chunk would
    // otherwise have it load while the upload is measured.
    cli(
        &config,
        &["doc", "search", "--project", project_id, "warm up"],
        "",
    );
    let before = up.peak_memory_kib();
    let document = json(&cli(
        &config,
        &[
            "doc",
            "upload",
            big.to_str().expect("path"),
            "--project",
            project_id,
            "--json",
        ],
        "",
    ));
    assert_eq!(document["size_bytes"], 100 * MIB);
    let back = dir.path().join("back.bin");
    cli(
        &config,
        &[
            "doc",
            "get",
            document["id"].as_str().expect("id"),
            "--output",
            back.to_str().expect("path"),
        ],
        "",
    );
    assert!(
        std::fs::read(&back).expect("downloaded") == std::fs::read(&big).expect("uploaded"),
        "the download is the upload, byte for byte"
    );
    let grown_mib = (up.peak_memory_kib() - before) / 1024;
    assert!(
        grown_mib < 50,
        "the server's peak memory grew by {grown_mib} MiB for a 100 MiB document"
    );

    let too_big = write_file("too-big.bin", 100 * MIB + 1);
    let refused = cli_fails(
        &config,
        &[
            "doc",
            "upload",
            too_big.to_str().expect("path"),
            "--project",
            project_id,
        ],
    );
    assert!(refused.contains("DOCUMENT_TOO_LARGE"), "{refused}");
    let listed = json(&cli(
        &config,
        &["doc", "list", "--project", project_id, "--json"],
        "",
    ));
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let blobs: Vec<_> = walk(&data.join("library").join("blobs"));
    assert_eq!(blobs.len(), 1, "only the first upload's bytes: {blobs:?}");
}

/// Files under `dir`, at any depth.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .flat_map(|entry| match entry.path() {
                    path if path.is_dir() => walk(&path),
                    path => vec![path],
                })
                .collect()
        })
        .unwrap_or_default()
}
