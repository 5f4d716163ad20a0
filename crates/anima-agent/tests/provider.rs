//! The local provider through its gRPC trait: a session's sandbox gets its
//! MCP configuration, Akh identity and secrets; its status, exit and last
//! output come back; skills land in its workspace; bad requests are
//! refused with a reason and start nothing.

use std::{path::Path, sync::Arc, time::Duration};

use anima_agent::{
    provider::{LocalProvider, Running},
    sandbox::{Limits, LocalSandboxes},
};
use anima_proto::v1::{
    self as pb, agent_provider_service_server::AgentProviderService, capability::Kind,
};
use tonic::Request;
use tonic_types::StatusExt;

fn provider() -> Option<(Arc<LocalProvider>, tempfile::TempDir)> {
    if !LocalSandboxes::available() {
        eprintln!("bubblewrap not installed (scripts/setup-debian); skipped");
        return None;
    }
    let root = tempfile::tempdir().expect("root");
    Some((
        Arc::new(LocalProvider::new(
            LocalSandboxes::new(root.path()),
            Limits::default(),
            Vec::new(),
            Running::default(),
            None,
        )),
        root,
    ))
}

fn provision(
    session: &str,
    command: &str,
    capabilities: Vec<pb::Capability>,
) -> pb::ProvisionVmRequest {
    pb::ProvisionVmRequest {
        session_id: session.into(),
        work_item_id: "wi-1".into(),
        capabilities,
        akh_id: "akh-1".into(),
        akh_name: "Thoth".into(),
        mcp_endpoint: "http://127.0.0.1:7433/mcp".into(),
        mcp_token: "token-of-the-session".into(),
        agent_command: command.into(),
        skills: Vec::new(),
    }
}

fn secret(reference: &str) -> pb::Capability {
    pb::Capability {
        id: String::new(),
        kind: Some(Kind::Secret(pb::SecretRef {
            name: "deploy key".into(),
            reference: reference.into(),
            mount_as: "deploy_key".into(),
        })),
    }
}

/// Provisions a sandbox that must start; its VM id.
async fn provisioned(provider: &Arc<LocalProvider>, request: pb::ProvisionVmRequest) -> String {
    provider
        .provision_vm(Request::new(request))
        .await
        .expect("provision")
        .into_inner()
        .vm_id
}

async fn status(provider: &Arc<LocalProvider>, vm_id: &str) -> Result<pb::VmStatus, tonic::Status> {
    provider
        .get_vm_status(Request::new(pb::GetVmStatusRequest {
            vm_id: vm_id.into(),
        }))
        .await
        .map(tonic::Response::into_inner)
}

/// Polls until the sandbox has ended (a bound, not a speed requirement).
async fn ended(provider: &Arc<LocalProvider>, vm_id: &str) -> pb::VmStatus {
    for _ in 0..200 {
        let status = status(provider, vm_id).await.expect("status");
        if status.state() != pb::VmState::Running {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{vm_id} still runs");
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn an_agent_finds_its_endpoint_identity_and_secrets() {
    let Some((provider, root)) = provider() else {
        return;
    };
    let key = tempfile::NamedTempFile::new().expect("key file");
    std::fs::write(key.path(), "ssh-ed25519 AAAA").expect("key");
    let command = "cp \"$ANIMA_MCP_CONFIG\" mcp.json && cp /run/anima/secrets/deploy_key key \
                   && echo \"I am $ANIMA_AKH_NAME on $ANIMA_WORK_ITEM_ID\"";
    let vm_id = provisioned(
        &provider,
        provision(
            "s1",
            command,
            vec![secret(&format!("file://{}", key.path().display()))],
        ),
    )
    .await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(done.state(), pb::VmState::Exited, "{done:?}");
    assert_eq!(done.last_output_lines, ["I am Thoth on wi-1"]);
    let workspace = root.path().join("s1/workspace");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.join("mcp.json")).expect("config"))
            .expect("json");
    assert_eq!(config["token"], "token-of-the-session");
    assert_eq!(config["endpoint"], "http://127.0.0.1:7433/mcp");
    assert_eq!(config["akh"]["name"], "Thoth");
    assert_eq!(
        std::fs::read_to_string(workspace.join("key")).expect("key"),
        "ssh-ed25519 AAAA"
    );

    provider
        .destroy_vm(Request::new(pb::DestroyVmRequest {
            vm_id: vm_id.clone(),
            keep: false,
        }))
        .await
        .expect("destroy");
    assert!(!Path::new(&root.path().join("s1")).exists(), "removed");
    let gone = status(&provider, &vm_id).await.expect_err("destroyed");
    assert_eq!(reason(&gone), "VM_NOT_FOUND");
}

#[tokio::test]
async fn a_killed_agent_is_failed_with_its_last_output() {
    let Some((provider, _root)) = provider() else {
        return;
    };
    let vm_id = provisioned(
        &provider,
        provision("s-killed", "echo started; kill -9 $$", Vec::new()),
    )
    .await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(done.state(), pb::VmState::Failed, "{done:?}");
    assert_ne!(done.exit_code, 0, "{done:?}");
    assert_eq!(done.last_output_lines, ["started"]);
}

#[tokio::test]
async fn a_failing_agent_is_failed_with_its_last_output() {
    let Some((provider, _root)) = provider() else {
        return;
    };
    let vm_id = provisioned(
        &provider,
        provision(
            "s2",
            "echo compiling; echo 'error: no such file' >&2; exit 4",
            Vec::new(),
        ),
    )
    .await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(
        (done.state(), done.exit_code),
        (pb::VmState::Failed, 4),
        "{done:?}"
    );
    let mut lines = done.last_output_lines.clone();
    lines.sort();
    assert_eq!(lines, ["compiling", "error: no such file"]);
}

#[tokio::test]
async fn skills_are_deployed_into_the_workspace_and_replaced_on_a_phase_change() {
    let Some((provider, root)) = provider() else {
        return;
    };
    let bundle = |name: &str, file: &str| pb::SkillBundle {
        r#ref: Some(pb::SkillRef {
            name: name.into(),
            version: "1".into(),
        }),
        files: [(file.to_owned(), b"# how to".to_vec())].into(),
        manifest_json: format!("{{\"name\": \"{name}\"}}"),
    };
    // The first phase's skills are there when the agent starts.
    let vm_id = provisioned(
        &provider,
        pb::ProvisionVmRequest {
            skills: vec![bundle("triage", "SKILL.md")],
            ..provision(
                "s3",
                "cat .anima/skills/triage/SKILL.md > seen-at-start; sleep 30",
                Vec::new(),
            )
        },
    )
    .await;
    let seen = root.path().join("s3/workspace/seen-at-start");
    for _ in 0..100 {
        if std::fs::read(&seen).is_ok_and(|bytes| !bytes.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read(&seen).expect("seen"), b"# how to");
    let deploy = |skills: Vec<pb::SkillBundle>| {
        let provider = provider.clone();
        let vm_id = vm_id.clone();
        async move {
            provider
                .deploy_skills(Request::new(pb::DeploySkillsRequest { vm_id, skills }))
                .await
        }
    };
    deploy(vec![bundle("review", "docs/SKILL.md")])
        .await
        .expect("deploy");
    let skills = root.path().join("s3/workspace/.anima/skills");
    assert!(skills.join("review/docs/SKILL.md").is_file());
    assert!(skills.join("review/manifest.json").is_file());
    deploy(vec![bundle("release", "SKILL.md")])
        .await
        .expect("next phase");
    assert!(
        !skills.join("review").exists(),
        "the last phase's skills are gone"
    );
    assert!(skills.join("release/SKILL.md").is_file());
    let refused = deploy(vec![bundle("sneaky", "../../outside")])
        .await
        .expect_err("escape");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(!root.path().join("s3/outside").exists());
    assert_eq!(
        status(&provider, &vm_id).await.expect("status").state(),
        pb::VmState::Running
    );
    provider
        .destroy_vm(Request::new(pb::DestroyVmRequest { vm_id, keep: false }))
        .await
        .expect("destroy");
}

#[tokio::test]
async fn bad_requests_are_refused_and_start_nothing() {
    let Some((provider, root)) = provider() else {
        return;
    };
    let missing = provider
        .provision_vm(Request::new(provision(
            "s4",
            "true",
            vec![secret("file:///nonexistent/anima-secret")],
        )))
        .await
        .expect_err("missing secret");
    assert_eq!(missing.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&missing), "SECRET_NOT_FOUND");
    let unknown = provider
        .provision_vm(Request::new(provision(
            "s5",
            "true",
            vec![secret("vault://kv/ci/token")],
        )))
        .await
        .expect_err("unknown scheme");
    assert_eq!(reason(&unknown), "SECRET_NOT_FOUND");
    let empty = provider
        .provision_vm(Request::new(provision("s6", " ", Vec::new())))
        .await
        .expect_err("no command");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let mut elsewhere = provision("s8", "true", Vec::new());
    elsewhere.mcp_endpoint = "ftp://127.0.0.1/mcp".into();
    let elsewhere = provider
        .provision_vm(Request::new(elsewhere))
        .await
        .expect_err("not http");
    assert_eq!(elsewhere.code(), tonic::Code::InvalidArgument);
    assert_eq!(std::fs::read_dir(root.path()).expect("root").count(), 0);
}

#[tokio::test]
async fn without_network_the_endpoint_is_reached_through_the_socket_and_nothing_else() {
    let Some((provider, _root)) = provider() else {
        return;
    };
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("endpoint");
    let port = endpoint.local_addr().expect("address").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = endpoint.accept().await {
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nmcp-here\n").await;
        }
    });
    let script = format!(
        "import json, socket\n\
         config = json.load(open('/run/anima/mcp.json'))\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.connect(config['socket'])\n\
         s.sendall(b'GET /mcp HTTP/1.0\\r\\n\\r\\n')\n\
         print(s.recv(1024).decode().splitlines()[-1])\n\
         try:\n\
         \x20   socket.create_connection(('127.0.0.1', {port}), timeout=5)\n\
         \x20   print('DIRECT OPEN')\n\
         except OSError:\n\
         \x20   print('DIRECT REFUSED')\n"
    );
    let mut request = provision(
        "s7",
        &format!("python3 -c {}", shell_quote(&script)),
        Vec::new(),
    );
    request.mcp_endpoint = format!("http://127.0.0.1:{port}/mcp");
    let vm_id = provisioned(&provider, request).await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(
        done.last_output_lines,
        ["mcp-here", "DIRECT REFUSED"],
        "{done:?}"
    );
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
