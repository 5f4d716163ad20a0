//! `anima session …`: agent sessions on work items.

use anima_proto::v1::{self as pb};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use anima_client::{Services, Session};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{ItemRef, scope, thread::Names, time};

/// `anima session …`
#[derive(Subcommand)]
pub enum SessionCommand {
    /// Start an agent session on a work item: the server's agent provider
    /// runs the agent, which works through MCP as the Akh.
    Start {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// The Akh it writes as (id or name).
        #[arg(long)]
        akh: String,
        /// Keep the sandbox after the session ends (for a look inside).
        #[arg(long)]
        keep: bool,
    },
    /// Stop a session; its MCP token stops working at once.
    Stop {
        #[command(flatten)]
        global: GlobalArgs,
        /// Session id.
        id: String,
    },
    /// List a project's sessions, or one work item's.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: Option<String>,
        /// Only this work item's (id, or key such as WI-12 with --project).
        #[arg(long)]
        work_item: Option<String>,
    },
    /// Show a session: where it stands, its sandbox, why it failed.
    Status {
        #[command(flatten)]
        global: GlobalArgs,
        /// Session id.
        id: String,
    },
    /// Open a shell inside a session's sandbox (needs agent.login), with
    /// one-time credentials and the system `ssh`. Everything typed is kept
    /// in the session's audit log (`anima session logins`).
    Login {
        #[command(flatten)]
        global: GlobalArgs,
        /// Session id, or a work item (id, or key such as WI-12 with
        /// --project): its newest session with a sandbox.
        target: String,
        /// Project id or name, for work item keys.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: Option<String>,
        /// Why you log in, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Run this command instead of an interactive shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// The audit log of logins into a session: who, when, why, the
    /// command asked for, bytes both ways, exit.
    Logins {
        #[command(flatten)]
        global: GlobalArgs,
        /// Session id.
        id: String,
    },
    /// What crossed a login's terminal, byte for byte: each piece typed
    /// (`<`) or shown (`>`) with its time since the shell opened, control
    /// characters escaped so nothing recorded acts on your terminal.
    Recording {
        #[command(flatten)]
        global: GlobalArgs,
        /// Session id.
        session: String,
        /// Login id (the LOGIN column of `anima session logins`).
        login: String,
        /// Print it as an asciicast v2 recording instead, for
        /// `asciinema play` (80x24; the terminal size is not recorded).
        #[arg(long)]
        asciicast: bool,
    },
}

/// The session a login names: a session id, or a work item's newest
/// session that has a sandbox.
async fn login_target(
    session: &Session,
    target: &str,
    project: Option<&str>,
) -> anyhow::Result<pb::AgentSession> {
    if super::is_id(target) {
        match session
            .sessions()
            .get_session(session.request(pb::GetSessionRequest {
                id: target.to_owned(),
            }))
            .await
        {
            Ok(found) => return Ok(found.into_inner()),
            Err(status) if status.code() == tonic::Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
    }
    let item = super::work_item(session, target, project).await?;
    let sessions = session
        .list(pb::ListSessionsRequest {
            work_item_id: item.id.clone(),
            ..Default::default()
        })
        .await?;
    // Sessions are listed in start order: the newest is last.
    sessions
        .into_iter()
        .rev()
        .find(|found| !found.vm_id.is_empty())
        .with_context(|| format!("{target} has no session with a sandbox to log into"))
}

/// Logs in with the system `ssh`; its exit code.
async fn open_login(
    credentials: &pb::LoginSessionResponse,
    command: &[String],
) -> anyhow::Result<i32> {
    let dir = tempfile::tempdir().context("making a private directory for the key")?;
    let ssh = anima_client::ssh::openssh_client(
        dir.path(),
        &anima_client::ssh::ClientCredentials {
            host: &credentials.host,
            port: credentials.port,
            username: &credentials.username,
            private_key_pem: &credentials.private_key_pem,
            host_public_key: &credentials.host_public_key,
        },
        &["-t"],
        command,
    )?;
    let status = tokio::process::Command::from(ssh)
        .status()
        .await
        .context("running ssh (install openssh-client)")?;
    Ok(status.code().unwrap_or(255))
}

fn is_input(event: &pb::TerminalEvent) -> bool {
    event.stream() == pb::TerminalStream::Input
}

#[allow(clippy::cast_precision_loss)] // microseconds as seconds, for humans
fn seconds(event: &pb::TerminalEvent) -> f64 {
    event.offset_micros as f64 / 1e6
}

/// One asciicast v2 event line: `[seconds, "i"|"o", text]`.
fn asciicast_event(event: &pb::TerminalEvent) -> Value {
    json!([
        seconds(event),
        if is_input(event) { "i" } else { "o" },
        String::from_utf8_lossy(&event.data)
    ])
}

fn login_json(login: &pb::SessionLogin) -> Value {
    json!({
        "id": login.id,
        "session_id": login.session_id,
        "user_id": login.user_id,
        "reason": login.reason,
        "create_time": time(&login.create_time),
        "expire_time": time(&login.expire_time),
        "start_time": time(&login.start_time),
        "end_time": time(&login.end_time),
        "commands": login.commands,
        "bytes_in": login.bytes_in,
        "bytes_out": login.bytes_out,
        "exit_status": login.exit_status,
        "peer": login.peer,
    })
}

fn status_name(raw: i32) -> &'static str {
    match pb::SessionStatus::try_from(raw) {
        Ok(pb::SessionStatus::Provisioning) => "provisioning",
        Ok(pb::SessionStatus::Running) => "running",
        Ok(pb::SessionStatus::Paused) => "paused",
        Ok(pb::SessionStatus::Completed) => "completed",
        Ok(pb::SessionStatus::Failed) => "failed",
        _ => "unknown",
    }
}

fn session_json(session: &pb::AgentSession) -> Value {
    json!({
        "id": session.id,
        "work_item_id": session.work_item_id,
        "project_id": session.project_id,
        "akh_id": session.akh_id,
        "status": status_name(session.status),
        "vm_id": session.vm_id,
        "phase_id": session.phase_id,
        "skills": session.skills.iter().map(|skill| &skill.name).collect::<Vec<_>>(),
        "exit_code": session.exit_code,
        "keep_after_stop": session.keep_after_stop,
        "last_output_lines": session.last_output_lines,
        "create_time": time(&session.create_time),
        "update_time": time(&session.update_time),
    })
}

fn session_row(session: &pb::AgentSession) -> Vec<String> {
    vec![
        session.id.clone(),
        status_name(session.status).into(),
        session.work_item_id.clone(),
        session.vm_id.clone(),
        time(&session.update_time),
    ]
}

const SESSION_HEADER: &[&str] = &["ID", "STATUS", "WORK ITEM", "SANDBOX", "UPDATED"];

output::impl_row!(pb::AgentSession, SESSION_HEADER, session_json, session_row);

fn print_session(session: &pb::AgentSession, json: bool) {
    output::one(json, session);
    if !json {
        for line in &session.last_output_lines {
            println!("  {}", output::safe(line));
        }
    }
}

/// `anima session …`
pub async fn session(command: SessionCommand) -> anyhow::Result<()> {
    match command {
        SessionCommand::Start {
            global,
            item,
            akh,
            keep,
        } => {
            let session = session_for(&global).await?;
            let item = item.fetch(&session).await?;
            let akh_id = Names::load(&session).await?.akh_id(&akh)?;
            let started = session
                .call(pb::StartSessionRequest {
                    work_item_id: item.id,
                    akh_id,
                    keep_after_stop: keep,
                })
                .await?;
            print_session(&started, global.json);
        }
        SessionCommand::Stop { global, id } => {
            let session = session_for(&global).await?;
            let stopped = session.call(pb::StopSessionRequest { id }).await?;
            print_session(&stopped, global.json);
        }
        SessionCommand::List {
            global,
            project,
            work_item: work_item_ref,
        } => {
            let session = session_for(&global).await?;
            let (project_id, work_item_id) =
                scope(&session, project.as_deref(), work_item_ref.as_deref()).await?;
            let sessions = session
                .list(pb::ListSessionsRequest {
                    work_item_id: work_item_id.clone(),
                    project_id: project_id.clone(),
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &sessions);
        }
        SessionCommand::Status { global, id } => {
            let session = session_for(&global).await?;
            let found = session.call(pb::GetSessionRequest { id }).await?;
            print_session(&found, global.json);
        }
        SessionCommand::Login {
            global,
            target,
            project,
            reason,
            command,
        } => {
            let session = session_for(&global).await?;
            let found = login_target(&session, &target, project.as_deref()).await?;
            let credentials = session
                .call(pb::LoginSessionRequest {
                    id: found.id.clone(),
                    reason,
                })
                .await?;
            eprintln!(
                "logging into session {} as {} (audited)",
                found.id, credentials.username
            );
            let code = open_login(&credentials, &command).await?;
            if code != 0 {
                std::process::exit(code);
            }
        }
        SessionCommand::Recording {
            global,
            session: session_id,
            login,
            asciicast,
        } => {
            let session = session_for(&global).await?;
            let events = session
                .list(pb::GetLoginRecordingRequest {
                    session_id: session_id.clone(),
                    login_id: login.clone(),
                    ..Default::default()
                })
                .await?;
            if asciicast {
                println!(
                    "{}",
                    json!({"version": 2, "width": 80, "height": 24, "title": login})
                );
                for event in &events {
                    println!("{}", asciicast_event(event));
                }
            } else if global.json {
                output::json(&Value::Array(
                    events
                        .iter()
                        .map(|event| {
                            json!({
                                "offset_micros": event.offset_micros,
                                "input": is_input(event),
                                "data": String::from_utf8_lossy(&event.data),
                            })
                        })
                        .collect(),
                ));
            } else {
                for event in &events {
                    println!(
                        "{:>10.3} {} {}",
                        seconds(event),
                        if is_input(event) { '<' } else { '>' },
                        event.data.escape_ascii()
                    );
                }
            }
        }
        SessionCommand::Logins { global, id } => {
            let session = session_for(&global).await?;
            let logins = session
                .list(pb::ListSessionLoginsRequest {
                    session_id: id.clone(),
                    ..Default::default()
                })
                .await?;
            if global.json {
                output::json(&Value::Array(logins.iter().map(login_json).collect()));
            } else {
                let rows: Vec<Vec<String>> = logins
                    .iter()
                    .map(|login| {
                        vec![
                            login.id.clone(),
                            login.user_id.clone(),
                            time(&login.start_time),
                            time(&login.end_time),
                            login
                                .exit_status
                                .map(|code| code.to_string())
                                .unwrap_or_default(),
                            format!("{}/{}", login.bytes_in, login.bytes_out),
                            login.reason.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "LOGIN",
                        "USER",
                        "STARTED",
                        "ENDED",
                        "EXIT",
                        "BYTES IN/OUT",
                        "REASON",
                    ],
                    &rows,
                );
                for login in &logins {
                    println!("{}:", login.id);
                    for line in &login.commands {
                        println!("  $ {}", output::safe(line));
                    }
                }
            }
        }
    }
    Ok(())
}
