//! The local provider through its gRPC trait: a session's sandbox gets its
//! MCP configuration, Akh identity and secrets; its status, exit and last
//! output come back; skills land in its workspace; bad requests are
//! refused with a reason and start nothing.

use std::{path::Path, sync::Arc, time::Duration};

use anima_agent::{
    provider::LocalProvider,
    sandbox::{DEFAULT_USER, Limits, LocalSandboxes, Running},
};
use anima_proto::v1::{self as pb, agent_provider_service_server::AgentProviderService};
use tonic::Request;
use tonic_types::StatusExt;

mod common;

fn provider() -> Option<(Arc<LocalProvider>, tempfile::TempDir)> {
    let root = tempfile::tempdir().expect("root");
    if !common::sandboxes_ready(root.path()) {
        return None;
    }
    Some((
        Arc::new(LocalProvider::new(
            LocalSandboxes::new(root.path(), DEFAULT_USER),
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
        secrets: Vec::new(),
        zones: Vec::new(),
    }
}

fn secret(mount_as: &str, value: &[u8]) -> pb::SecretValue {
    pb::SecretValue {
        name: "deploy key".into(),
        mount_as: mount_as.into(),
        value: value.to_vec(),
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
    // Shown by the agent, kept out of what is recorded of it.
    let command = "cp \"$ANIMA_MCP_CONFIG\" mcp.json && cp /run/anima/secrets/deploy_key key \
                   && echo \"I am $ANIMA_AKH_NAME on $ANIMA_WORK_ITEM_ID\" \
                   && echo \"key: $(cat /run/anima/secrets/deploy_key) token: $(cat mcp.json)\" \
                   && stat -c '%a %u' /run/anima/secrets/deploy_key /run/anima/secrets \
                      /run/anima/mcp.json | sort -u | tr '\\n' ' '";
    let vm_id = provisioned(
        &provider,
        pb::ProvisionVmRequest {
            // As secret files usually are: with a newline at the end.
            secrets: vec![secret("deploy_key", b"ssh-ed25519 AAAA\n")],
            ..provision("s1", command, Vec::new())
        },
    )
    .await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(done.state(), pb::VmState::Exited, "{done:?}");
    assert_eq!(done.last_output_lines[0], "I am Thoth on wi-1");
    let shown = done.last_output_lines.join("\n");
    assert!(
        !shown.contains("ssh-ed25519 AAAA") && !shown.contains("token-of-the-session"),
        "the secret and the token are not recorded: {shown}"
    );
    assert!(shown.contains("key: [redacted]"), "{shown}");
    // The files are the sandbox user's own, 0600 in a 0700 directory.
    let owner = std::fs::metadata(root.path().join("s1/workspace"))
        .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta))
        .expect("workspace");
    assert_ne!(owner, 0, "the workspace belongs to the sandbox user");
    assert_eq!(
        done.last_output_lines[2].trim(),
        format!("600 {owner} 700 {owner}"),
        "{done:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        mode(root.path()),
        0o711,
        "the sandboxes' root: nothing listed"
    );
    assert_eq!(mode(&root.path().join("s1")), 0o700);
    let workspace = root.path().join("s1/workspace");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workspace.join("mcp.json")).expect("config"))
            .expect("json");
    assert_eq!(config["token"], "token-of-the-session");
    assert_eq!(config["endpoint"], "http://127.0.0.1:7433/mcp");
    assert_eq!(config["akh"]["name"], "Thoth");
    assert_eq!(
        std::fs::read_to_string(workspace.join("key")).expect("key"),
        "ssh-ed25519 AAAA\n"
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
async fn keeping_a_sandbox_stops_its_agent_and_keeps_only_the_workspace() {
    let Some((provider, root)) = provider() else {
        return;
    };
    let vm_id = provisioned(
        &provider,
        pb::ProvisionVmRequest {
            secrets: vec![secret("token", b"kept-out")],
            // A duration no other test sleeps: tests run side by side, and
            // the check below looks at every process of the host.
            ..provision("s-kept", "echo work > result; sleep 317", Vec::new())
        },
    )
    .await;
    let result = root.path().join("s-kept/workspace/result");
    for _ in 0..100 {
        if result.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    provider
        .destroy_vm(Request::new(pb::DestroyVmRequest {
            vm_id: vm_id.clone(),
            keep: true,
        }))
        .await
        .expect("destroy");
    let image = root.path().join("s-kept/workspace.img");
    assert_eq!(common::read_from_image(&image, "result"), b"work\n");
    assert!(
        !root.path().join("s-kept/files").exists(),
        "the secrets are not kept"
    );
    assert!(!result.exists(), "the workspace is unmounted");
    let sleeping = std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(Result::ok)
        .any(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmdline| cmdline.starts_with(b"sleep\x00317"))
        });
    assert!(!sleeping, "the agent stopped");
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
                // Then it tries to point the skills elsewhere.
                "cat .anima/skills/triage/SKILL.md > seen-at-start; \
                 (rm -rf .anima; ln -s /etc .anima; ln -sfn /etc .anima/skills) 2>/dev/null; \
                 while ! cat .anima/skills/review/docs/SKILL.md > seen-later 2>/dev/null; \
                 do sleep 0.05; done; sleep 30",
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
    let skills = root.path().join("s3/anima/skills");
    assert!(skills.join("review/docs/SKILL.md").is_file());
    assert!(skills.join("review/manifest.json").is_file());
    assert!(
        !Path::new("/etc/review").exists(),
        "nothing outside the sandbox is written"
    );
    let seen_later = root.path().join("s3/workspace/seen-later");
    for _ in 0..100 {
        if std::fs::read(&seen_later).is_ok_and(|bytes| !bytes.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read(&seen_later).expect("the agent sees the new skills"),
        b"# how to"
    );
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
    let escaping = provider
        .provision_vm(Request::new(pb::ProvisionVmRequest {
            secrets: vec![secret("../../outside", b"x")],
            ..provision("s4", "true", Vec::new())
        }))
        .await
        .expect_err("secret outside its directory");
    assert_eq!(escaping.code(), tonic::Code::InvalidArgument);
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
async fn the_socket_reaches_mcp_and_nothing_else_and_there_is_no_other_network() {
    let Some((provider, _root)) = provider() else {
        return;
    };
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("endpoint");
    let port = endpoint.local_addr().expect("address").port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_by_endpoint = seen.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = endpoint.accept().await {
            let mut request = [0; 1024];
            let n = stream.read(&mut request).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]).into_owned();
            seen_by_endpoint
                .lock()
                .expect("lock")
                .push(head.lines().next().unwrap_or_default().to_owned());
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nmcp-here\n")
                .await;
        }
    });
    // Over the socket: /mcp answers; gRPC's login and reflection do not.
    let script = format!(
        "import json, socket\n\
         config = json.load(open('/run/anima/mcp.json'))\n\
         def ask(method, path):\n\
         \x20   s = socket.socket(socket.AF_UNIX)\n\
         \x20   s.connect(config['socket'])\n\
         \x20   s.sendall(f'{{method}} {{path}} HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n'.encode())\n\
         \x20   reply = b''\n\
         \x20   while chunk := s.recv(4096):\n\
         \x20       reply += chunk\n\
         \x20   lines = reply.decode().splitlines()\n\
         \x20   print(lines[0].split(' ')[1], lines[-1])\n\
         ask('POST', '/mcp')\n\
         ask('POST', '/anima.v1.AuthService/Login')\n\
         ask('POST', '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo')\n\
         ask('PUT', '/mcp')\n\
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
        [
            "200 mcp-here",
            "403 only /mcp is reachable from a sandbox",
            "403 only /mcp is reachable from a sandbox",
            "405 MCP uses GET, POST and DELETE",
            "DIRECT REFUSED"
        ],
        "{done:?}"
    );
    assert_eq!(
        *seen.lock().expect("lock"),
        ["POST /mcp HTTP/1.1"],
        "only /mcp reached the endpoint"
    );
}

/// Asks the sandbox's egress proxy for each destination, by CONNECT and
/// (for the first) by a plain absolute-form request; a line per try.
const THROUGH_THE_PROXY: &str = r#"
import http.client, os, sys
proxy = os.environ["HTTPS_PROXY"].removeprefix("http://").split(":")
def ask(host, port, tunnel=True):
    c = http.client.HTTPConnection(proxy[0], int(proxy[1]), timeout=10)
    try:
        if tunnel:
            c.set_tunnel(host, port)
            c.request("GET", "/")
        else:
            c.request("GET", f"http://{host}:{port}/")
        r = c.getresponse()
        print(host, port, r.status, r.read().decode().strip())
    except OSError as e:
        print(host, port, "refused", "403" if "403" in str(e) else str(e))
for line in sys.argv[1:]:
    host, port, how = line.split(",")
    ask(host, int(port), how == "connect")
"#;

#[tokio::test]
async fn network_zones_are_reached_through_the_proxy_and_nothing_else() {
    let Some((provider, _root)) = provider() else {
        return;
    };
    // A local server the zone gives the name example.test, and another
    // local port nobody named.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("server");
    let port = server.local_addr().expect("address").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = server.accept().await {
            let mut request = [0; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nexample-ok\n")
                .await;
        }
    });
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("other");
    let other_port = other.local_addr().expect("address").port();
    let tries = [
        "example.test,443,connect".to_owned(),
        "example.test,443,plain".into(),
        "127.0.0.1,5432,connect".into(),
        format!("127.0.0.1,{other_port},connect"),
        format!("localhost,{port},connect"),
        "169.254.169.254,80,plain".into(),
        "example.test,80,connect".into(),
    ];
    let command = format!(
        "python3 -c {} {}",
        shell_quote(THROUGH_THE_PROXY),
        tries.join(" ")
    );
    let zone = pb::EgressZone {
        name: "test".into(),
        allow: vec!["example.test:443".into()],
        connect_to: [("example.test:443".to_owned(), format!("127.0.0.1:{port}"))].into(),
    };
    let vm_id = provisioned(
        &provider,
        pb::ProvisionVmRequest {
            zones: vec![zone],
            ..provision("s-zone", &command, Vec::new())
        },
    )
    .await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(
        done.last_output_lines,
        [
            "example.test 443 200 example-ok".to_owned(),
            "example.test 443 200 example-ok".into(),
            "127.0.0.1 5432 refused 403".into(),
            format!("127.0.0.1 {other_port} refused 403"),
            format!("localhost {port} refused 403"),
            "169.254.169.254 80 403 no network zone of this session allows 169.254.169.254:80"
                .into(),
            "example.test 80 refused 403".into(),
        ],
        "{done:?}"
    );

    // Without a zone, nothing.
    let vm_id = provisioned(&provider, provision("s-no-zone", &command, Vec::new())).await;
    let done = ended(&provider, &vm_id).await;
    assert_eq!(
        done.last_output_lines[0], "example.test 443 refused 403",
        "{done:?}"
    );
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
