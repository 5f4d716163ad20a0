//! Logins into sandboxes over SSH, with the system OpenSSH client: one-time
//! credentials open a PTY shell inside the session's sandbox, every command
//! line lands in the audit log, and the credentials do not work twice, for
//! another sandbox, or without the audit log taking the login.

use std::{
    path::Path,
    process::{Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anima_agent::{
    AgentOptions, audit::AuditSink, login::LoginOptions, provider::LocalProvider,
    sandbox::DEFAULT_USER,
};
use anima_client::ssh::{ClientCredentials, openssh_client};
use anima_proto::v1::{self as pb, agent_provider_service_server::AgentProviderService};
use async_trait::async_trait;
use tonic::Request;

mod common;

/// The audit log as the server would keep it: every report.
#[derive(Default)]
struct Recorded {
    reports: Mutex<Vec<pb::LoginReport>>,
    /// Refuses every report.
    refuse: bool,
    /// Takes a login's opening, then refuses the rest.
    refuse_after_opening: bool,
}

#[async_trait]
impl AuditSink for Recorded {
    async fn report(&self, report: pb::LoginReport) -> anyhow::Result<()> {
        let opening = report.events.is_empty() && report.end_time.is_none();
        anyhow::ensure!(
            !self.refuse && (opening || !self.refuse_after_opening),
            "the audit log is down"
        );
        self.reports.lock().expect("lock").push(report);
        Ok(())
    }
}

impl Recorded {
    /// The bytes of one stream of a login, each event once, in order.
    fn stream(&self, login_id: &str, stream: pb::TerminalStream) -> Vec<u8> {
        let mut next = 0;
        let mut bytes = Vec::new();
        for report in self.reports.lock().expect("lock").iter() {
            if report.login_id != login_id {
                continue;
            }
            for (seq, event) in (report.first_event_seq..).zip(&report.events) {
                if seq < next {
                    continue;
                }
                assert_eq!(seq, next, "no gap");
                next += 1;
                if event.stream == stream as i32 {
                    bytes.extend_from_slice(&event.data);
                }
            }
        }
        bytes
    }

    fn last(&self, login_id: &str) -> Option<pb::LoginReport> {
        self.reports
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|report| report.login_id == login_id)
            .cloned()
    }
}

async fn provider(audit: Arc<Recorded>) -> Option<(LocalProvider, tempfile::TempDir)> {
    let root = tempfile::tempdir().expect("root");
    if !common::sandboxes_ready(root.path()) {
        return None;
    }
    let ssh = std::process::Command::new("ssh").arg("-V").output();
    assert!(
        ssh.is_ok(),
        "no ssh client (scripts/setup-debian installs it)"
    );
    let service = anima_agent::local_provider(AgentOptions {
        sandboxes: root.path().join("sandboxes"),
        read_only: Vec::new(),
        sandbox_user: DEFAULT_USER.into(),
        login: Some((
            LoginOptions {
                listen: "127.0.0.1:0".parse().expect("address"),
                host: None,
            },
            audit as Arc<dyn AuditSink>,
        )),
    })
    .await
    .expect("service");
    Some((service, root))
}

async fn provision(provider: &impl AgentProviderService, session: &str, command: &str) -> String {
    provider
        .provision_vm(Request::new(pb::ProvisionVmRequest {
            session_id: session.into(),
            work_item_id: "wi-1".into(),
            akh_id: "akh-1".into(),
            akh_name: "Thoth".into(),
            mcp_endpoint: "http://127.0.0.1:9/mcp".into(),
            mcp_token: "token".into(),
            agent_command: command.into(),
            ..Default::default()
        }))
        .await
        .expect("provision")
        .into_inner()
        .vm_id
}

async fn credentials(
    provider: &impl AgentProviderService,
    vm_id: &str,
) -> Result<pb::LoginCredentials, tonic::Status> {
    provider
        .get_login_credentials(Request::new(pb::GetLoginCredentialsRequest {
            vm_id: vm_id.into(),
            requested_by_user_id: "admin".into(),
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// Logs in with `key_of`'s key under `credentials`' username, types
/// `input` into a terminal, and returns what came back.
async fn login(
    dir: &Path,
    credentials: &pb::LoginCredentials,
    key_of: &pb::LoginCredentials,
    input: &str,
) -> Output {
    let attempt = tempfile::tempdir_in(dir).expect("attempt dir");
    let mut command = openssh_client(
        attempt.path(),
        &ClientCredentials {
            host: &credentials.host,
            port: credentials.port,
            username: &credentials.username,
            private_key_pem: &key_of.private_key_pem,
            host_public_key: &credentials.host_public_key,
        },
        &["-tt"],
        &[],
    )
    .expect("client");
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = tokio::process::Command::from(command).spawn().expect("ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        // Typed line by line, as a person would.
        for line in input.split_inclusive('\n') {
            let _ = stdin.write_all(line.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("ssh ended")
        .expect("ssh output")
}

/// The report of a login once it has ended.
async fn ended(audit: &Recorded, login_id: &str) -> pb::LoginReport {
    for _ in 0..100 {
        if let Some(report) = audit
            .last(login_id)
            .filter(|report| report.end_time.is_some())
        {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "login {login_id} never reported its end: {:?}",
        audit.last(login_id)
    );
}

#[tokio::test]
async fn a_login_runs_commands_in_the_sandbox_and_every_line_is_audited() {
    let audit = Arc::new(Recorded::default());
    let Some((provider, root)) = provider(audit.clone()).await else {
        return;
    };
    let vm = provision(
        &provider,
        "session-a",
        "echo from-the-agent > marker; sleep 120",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let issued = credentials(&provider, &vm).await.expect("credentials");
    assert!(issued.username.starts_with("login-"));
    assert!(issued.expire_time.is_some());

    let output = login(
        root.path(),
        &issued,
        &issued,
        "cat /workspace/marker\necho sum-$((6*7))\nls /root 2>&1; grep -qh sleep /proc/[0-9]*/comm && echo agent-$((1+1))-seen\nexit 3\n",
    )
    .await;
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{shown}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shown.contains("from-the-agent"), "{shown}");
    assert!(shown.contains("sum-42"), "{shown}");
    // The host's /root is not there; the agent's processes are.
    assert!(shown.contains("No such file"), "{shown}");
    assert!(shown.contains("agent-2-seen"), "{shown}");

    let report = ended(&audit, &issued.username).await;
    let typed = audit.stream(&issued.username, pb::TerminalStream::Input);
    assert_eq!(
        String::from_utf8_lossy(&typed),
        "cat /workspace/marker\necho sum-$((6*7))\n\
         ls /root 2>&1; grep -qh sleep /proc/[0-9]*/comm && echo agent-$((1+1))-seen\nexit 3\n",
        "every byte typed"
    );
    let recorded = audit.stream(&issued.username, pb::TerminalStream::Output);
    assert!(
        String::from_utf8_lossy(&recorded).contains("sum-42"),
        "what the shell showed"
    );
    assert_eq!(report.exit_status, Some(3));
    assert!(
        report.bytes_in > 60 && report.bytes_out > report.bytes_in,
        "{report:?}"
    );
    assert!(report.peer.starts_with("127.0.0.1:"), "{}", report.peer);

    // Used once, never again.
    let again = login(root.path(), &issued, &issued, "echo again\nexit\n").await;
    assert_eq!(again.status.code(), Some(255));
    assert!(!String::from_utf8_lossy(&again.stdout).contains("again"));
}

#[tokio::test]
async fn a_login_shell_is_as_confined_as_the_agent() {
    let audit = Arc::new(Recorded::default());
    let Some((provider, root)) = provider(audit.clone()).await else {
        return;
    };
    let vm = provision(&provider, "session-escapes", "sleep 120").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let workspace = root.path().join("sandboxes/session-escapes/workspace");
    std::fs::write(
        workspace.join("escapes.sh"),
        common::escapes(std::process::id()),
    )
    .expect("script");
    let issued = credentials(&provider, &vm).await.expect("credentials");
    let output = login(
        root.path(),
        &issued,
        &issued,
        "sh escapes.sh > escapes.out 2>&1; exit\n",
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let seen = std::fs::read_to_string(workspace.join("escapes.out")).expect("output");
    let lines: Vec<String> = seen.lines().map(str::to_owned).collect();
    common::assert_held(&lines);
    assert!(!Path::new("/usr/x").exists() && !Path::new("/etc/x").exists());
}

#[tokio::test]
async fn credentials_open_only_their_own_sandbox() {
    let audit = Arc::new(Recorded::default());
    let Some((provider, root)) = provider(audit.clone()).await else {
        return;
    };
    let first = provision(&provider, "session-b1", "sleep 120").await;
    let second = provision(&provider, "session-b2", "sleep 120").await;
    let for_first = credentials(&provider, &first).await.expect("first");
    let for_second = credentials(&provider, &second).await.expect("second");
    // The second login's name with the first login's key.
    let crossed = login(root.path(), &for_second, &for_first, "echo crossed\nexit\n").await;
    assert_eq!(crossed.status.code(), Some(255));
    assert!(audit.last(&for_second.username).is_none());

    let err = credentials(&provider, "local:no-such-session")
        .await
        .expect_err("unknown sandbox");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Destroying the sandbox voids its unused credentials.
    provider
        .destroy_vm(Request::new(pb::DestroyVmRequest {
            vm_id: first.clone(),
            keep: false,
        }))
        .await
        .expect("destroy");
    let late = login(root.path(), &for_first, &for_first, "echo late\nexit\n").await;
    assert_eq!(late.status.code(), Some(255));
}

#[tokio::test]
async fn after_the_agent_ended_a_login_gets_its_workspace() {
    let audit = Arc::new(Recorded::default());
    let Some((provider, root)) = provider(audit.clone()).await else {
        return;
    };
    let vm = provision(&provider, "session-c", "echo left-behind > notes").await;
    for _ in 0..100 {
        let status = provider
            .get_vm_status(Request::new(pb::GetVmStatusRequest { vm_id: vm.clone() }))
            .await
            .expect("status")
            .into_inner();
        if status.state() != pb::VmState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let issued = credentials(&provider, &vm).await.expect("credentials");
    let output = login(root.path(), &issued, &issued, "cat notes\nexit\n").await;
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{shown:?}");
    assert!(shown.contains("left-behind"), "{shown}");
    ended(&audit, &issued.username).await;
    assert_eq!(
        audit.stream(&issued.username, pb::TerminalStream::Input),
        b"cat notes\nexit\n"
    );
}

#[tokio::test]
async fn a_shell_whose_record_cannot_be_kept_ends() {
    let audit = Arc::new(Recorded {
        refuse_after_opening: true,
        ..Recorded::default()
    });
    let Some((provider, root)) = provider(audit).await else {
        return;
    };
    let vm = provision(&provider, "session-f", "sleep 120").await;
    let issued = credentials(&provider, &vm).await.expect("credentials");
    // Typed slowly: the shell ends once the record is given up, and no
    // later line runs.
    let output = login(
        root.path(),
        &issued,
        &issued,
        "echo first\nsleep 10\necho never-$((1+1))\nexit\n",
    )
    .await;
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("the audit log cannot be written"), "{shown}");
    assert!(!shown.contains("never-2"), "{shown}");
}

#[tokio::test]
async fn a_login_the_audit_log_does_not_take_is_refused() {
    let audit = Arc::new(Recorded {
        refuse: true,
        ..Recorded::default()
    });
    let Some((provider, root)) = provider(audit).await else {
        return;
    };
    let vm = provision(&provider, "session-d", "sleep 120").await;
    let issued = credentials(&provider, &vm).await.expect("credentials");
    let output = login(root.path(), &issued, &issued, "echo unaudited\nexit\n").await;
    assert_eq!(output.status.code(), Some(255));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("unaudited"));
}

#[tokio::test]
async fn without_an_ssh_server_logins_are_refused_with_a_reason() {
    let root = tempfile::tempdir().expect("root");
    if !common::sandboxes_ready(root.path()) {
        return;
    }
    let provider = anima_agent::local_provider(AgentOptions {
        sandboxes: root.path().to_owned(),
        read_only: Vec::new(),
        sandbox_user: DEFAULT_USER.into(),
        login: None,
    })
    .await
    .expect("service");
    let vm = provision(&provider, "session-e", "sleep 120").await;
    let err = credentials(&provider, &vm).await.expect_err("no SSH");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("SSH"), "{}", err.message());
}
