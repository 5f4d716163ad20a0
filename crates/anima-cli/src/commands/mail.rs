//! `anima mailbox …` (mailboxes and their projects) and `anima mail …`
//! (fetched mail that waits for a human: triage and held).

use anima_proto::v1::{self as pb};
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Changes, project_id, time, work_item};

use anima_client::Session;

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

/// `anima mailbox …`
#[derive(Subcommand)]
pub enum MailboxCommand {
    /// List a project's mailboxes.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long)]
        project: String,
    },
    /// Show one mailbox.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
    },
    /// Create a mailbox serving one or more projects (several make a
    /// gather mailbox, which routes only by plus-address or reply).
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Its address, e.g. support@shop.example.
        address: String,
        /// Projects it serves (id or name; repeat for a gather mailbox).
        #[arg(long = "project", required = true)]
        projects: Vec<String>,
        /// Display name on outbound mail [default: the local part].
        #[arg(long, default_value = "")]
        name: String,
        /// Senders or domains always held (repeatable).
        #[arg(long)]
        deny: Vec<String>,
        /// When given, only these senders or domains are accepted (repeatable).
        #[arg(long)]
        allow: Vec<String>,
        /// Trust the Authentication-Results of the receiving mail server
        /// with this authserv-id (e.g. mx.shop.example): mail whose sender
        /// it did not authenticate (SPF, DKIM or DMARC) is held.
        #[arg(long, default_value = "")]
        trust_auth_results: String,
        /// Largest mail accepted, in bytes; bigger mail is held [default: 25 MiB].
        #[arg(long, default_value_t = 0)]
        max_size: i64,
        /// Also fetch the mail the account already holds (by default a
        /// mailbox follows mail from its creation on).
        #[arg(long)]
        history: bool,
        /// Server admins: take over an account that already exists on the
        /// mail server for this address (else it is refused).
        #[arg(long)]
        adopt: bool,
    },
    /// Change a mailbox's display name, screening rules or size limit.
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
        #[arg(long)]
        name: Option<String>,
        /// Replace the rules with these denied senders/domains (with --allow).
        #[arg(long, num_args = 0..)]
        deny: Option<Vec<String>>,
        /// Replace the rules with these allowed senders/domains (with --deny).
        #[arg(long, num_args = 0..)]
        allow: Option<Vec<String>>,
        /// Trust this receiving server's Authentication-Results (empty:
        /// trust none); the other rules stay.
        #[arg(long)]
        trust_auth_results: Option<String>,
        #[arg(long)]
        max_size: Option<i64>,
    },
    /// Delete a mailbox: anima-mail removes its account, then it is gone.
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
    },
    /// Server admins: take over the existing mail account of a refused
    /// mailbox (Anima sets its password and follows it; deleting the
    /// mailbox later keeps the account).
    Adopt {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
    },
    /// Replace a compromised address: a new mailbox takes over the
    /// projects, rules and waiting mail; the old one is dropped.
    Rotate {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
        /// The new address.
        new_address: String,
    },
    /// Let a mailbox serve more projects.
    Link {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
        /// Projects (id or name).
        #[arg(long = "project", required = true)]
        projects: Vec<String>,
    },
    /// Stop a mailbox serving projects (it keeps at least one).
    Unlink {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
        /// Projects (id or name).
        #[arg(long = "project", required = true)]
        projects: Vec<String>,
    },
}

/// `anima mail …`
#[derive(Subcommand)]
pub enum MailCommand {
    /// Mail no route could place, waiting to be assigned.
    Triage {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
    },
    /// Mail held for review (unknown sender, screened, too large, a loop).
    Held {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
    },
    /// Every fetched mail of a mailbox and where it went.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Mailbox id.
        mailbox: String,
    },
    /// Post a triaged or held mail into a work item's thread.
    Assign {
        #[command(flatten)]
        global: GlobalArgs,
        /// The fetched mail's id (from `anima mail triage`).
        mail: String,
        /// Work item id, or key (WI-12) with --project.
        work_item: String,
        #[arg(long)]
        project: Option<String>,
    },
    /// Post a held mail into the thread it was meant for.
    Release {
        #[command(flatten)]
        global: GlobalArgs,
        /// The fetched mail's id (from `anima mail held`).
        mail: String,
    },
    /// Set a triaged or held mail aside without posting it.
    Dismiss {
        #[command(flatten)]
        global: GlobalArgs,
        /// The fetched mail's id.
        mail: String,
    },
}

fn state_name(state: i32) -> &'static str {
    match pb::MailboxState::try_from(state) {
        Ok(pb::MailboxState::Active) => "active",
        Ok(pb::MailboxState::Dropping) => "dropping",
        Ok(pb::MailboxState::Refused) => "refused",
        _ => "unknown",
    }
}

fn mailbox_json(mailbox: &pb::Mailbox) -> Value {
    let rules = mailbox.rules.clone().unwrap_or_default();
    json!({
        "id": mailbox.id,
        "address": mailbox.address,
        "display_name": mailbox.display_name,
        "project_ids": mailbox.project_ids,
        "gather": mailbox.gather,
        "rules": {
            "deny": rules.deny,
            "allow": rules.allow,
            "trusted_authserv_id": rules.trusted_authserv_id,
        },
        "max_size_bytes": mailbox.max_size_bytes,
        "state": state_name(mailbox.state),
        "problem": mailbox.problem,
        "adopted": mailbox.adopted,
        "import_history": mailbox.import_history,
        "create_time": time(&mailbox.create_time),
    })
}

const MAILBOX_HEADER: &[&str] = &["ID", "ADDRESS", "STATE", "PROJECTS", "MAX SIZE", "PROBLEM"];

output::impl_row!(pb::Mailbox, MAILBOX_HEADER, mailbox_json, mailbox_row);

fn mailbox_row(mailbox: &pb::Mailbox) -> Vec<String> {
    vec![
        mailbox.id.clone(),
        mailbox.address.clone(),
        state_name(mailbox.state).into(),
        mailbox.project_ids.len().to_string(),
        mailbox.max_size_bytes.to_string(),
        mailbox.problem.clone(),
    ]
}

fn print_mailbox(mailbox: &pb::Mailbox, json: bool) {
    output::one(json, mailbox);
}

async fn project_ids(session: &Session, projects: &[String]) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(projects.len());
    for project in projects {
        ids.push(project_id(session, project).await?);
    }
    Ok(ids)
}

/// `anima mailbox …`
pub async fn mailbox(command: MailboxCommand) -> anyhow::Result<()> {
    match command {
        MailboxCommand::List { global, project } => {
            let session = session_for(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let mailboxes = session
                .list(pb::ListMailboxesRequest {
                    project_id: project_id.clone(),
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &mailboxes);
        }
        MailboxCommand::Show { global, mailbox } => {
            let session = session_for(&global).await?;
            let mailbox = session.call(pb::GetMailboxRequest { id: mailbox }).await?;
            print_mailbox(&mailbox, global.json);
        }
        MailboxCommand::Create {
            global,
            address,
            projects,
            name,
            deny,
            allow,
            trust_auth_results,
            max_size,
            history,
            adopt,
        } => {
            let session = session_for(&global).await?;
            let project_ids = project_ids(&session, &projects).await?;
            let mailbox = session
                .call(pb::CreateMailboxRequest {
                    address,
                    display_name: name,
                    project_ids,
                    rules: Some(pb::ScreeningRules {
                        deny,
                        allow,
                        trusted_authserv_id: trust_auth_results,
                    }),
                    max_size_bytes: max_size,
                    import_history: history,
                    adopt_existing: adopt,
                })
                .await?;
            print_mailbox(&mailbox, global.json);
        }
        MailboxCommand::Update {
            global,
            mailbox,
            name,
            deny,
            allow,
            trust_auth_results,
            max_size,
        } => {
            let session = session_for(&global).await?;
            let mut wanted = pb::Mailbox::default();
            let mut changes = Changes::default();
            changes.set("display_name", &mut wanted.display_name, name);
            changes.set("max_size_bytes", &mut wanted.max_size_bytes, max_size);
            // The rules are replaced whole: what is not given stays as it is.
            if deny.is_some() || allow.is_some() || trust_auth_results.is_some() {
                changes.name("rules");
                let mut rules = session
                    .call(pb::GetMailboxRequest {
                        id: mailbox.clone(),
                    })
                    .await?
                    .rules
                    .unwrap_or_default();
                if deny.is_some() || allow.is_some() {
                    rules.deny = deny.unwrap_or_default();
                    rules.allow = allow.unwrap_or_default();
                }
                if let Some(trusted) = trust_auth_results {
                    rules.trusted_authserv_id = trusted;
                }
                wanted.rules = Some(rules);
            }
            let update_mask =
                changes.mask("--name, --deny/--allow, --trust-auth-results or --max-size")?;
            let updated = session
                .call(pb::UpdateMailboxRequest {
                    id: mailbox,
                    mailbox: Some(wanted),
                    update_mask,
                })
                .await?;
            print_mailbox(&updated, global.json);
        }
        MailboxCommand::Delete { global, mailbox } => {
            let session = session_for(&global).await?;
            let dropping = session
                .call(pb::DeleteMailboxRequest { id: mailbox })
                .await?;
            print_mailbox(&dropping, global.json);
        }
        MailboxCommand::Adopt { global, mailbox } => {
            let session = session_for(&global).await?;
            let adopted = session
                .call(pb::AdoptMailboxRequest { id: mailbox })
                .await?;
            print_mailbox(&adopted, global.json);
        }
        MailboxCommand::Rotate {
            global,
            mailbox,
            new_address,
        } => {
            let session = session_for(&global).await?;
            let rotated = session
                .call(pb::RotateMailboxRequest {
                    id: mailbox,
                    new_address,
                })
                .await?;
            print_mailbox(&rotated, global.json);
        }
        MailboxCommand::Link {
            global,
            mailbox,
            projects,
        } => {
            let session = session_for(&global).await?;
            let project_ids = project_ids(&session, &projects).await?;
            let linked = session
                .call(pb::LinkProjectsRequest {
                    mailbox_id: mailbox,
                    project_ids,
                })
                .await?;
            print_mailbox(&linked, global.json);
        }
        MailboxCommand::Unlink {
            global,
            mailbox,
            projects,
        } => {
            let session = session_for(&global).await?;
            let project_ids = project_ids(&session, &projects).await?;
            let unlinked = session
                .call(pb::UnlinkProjectsRequest {
                    mailbox_id: mailbox,
                    project_ids,
                })
                .await?;
            print_mailbox(&unlinked, global.json);
        }
    }
    Ok(())
}

fn inbound_state_name(state: i32) -> &'static str {
    match pb::InboundMailState::try_from(state) {
        Ok(pb::InboundMailState::Posted) => "posted",
        Ok(pb::InboundMailState::Held) => "held",
        Ok(pb::InboundMailState::Triage) => "triage",
        Ok(pb::InboundMailState::Dismissed) => "dismissed",
        _ => "unknown",
    }
}

fn inbound_json(mail: &pb::InboundMail) -> Value {
    let email = mail.email.clone().unwrap_or_default();
    json!({
        "id": mail.id,
        "mailbox_id": mail.mailbox_id,
        "state": inbound_state_name(mail.state),
        "reason": mail.reason,
        "work_item_id": mail.work_item_id,
        "from": email.from,
        "to": email.to,
        "subject": email.subject,
        "message_id": email.message_id,
        "body": mail.body,
        "suggested_work_item_id": mail.suggested_work_item_id,
        "confidence": mail.confidence,
        "posted_message_id": mail.posted_message_id,
        "receive_time": time(&mail.receive_time),
    })
}

const INBOUND_HEADER: &[&str] = &["ID", "STATE", "FROM", "SUBJECT", "WHY"];

output::impl_row!(pb::InboundMail, INBOUND_HEADER, inbound_json, inbound_row);

fn inbound_row(mail: &pb::InboundMail) -> Vec<String> {
    let email = mail.email.clone().unwrap_or_default();
    vec![
        mail.id.clone(),
        inbound_state_name(mail.state).into(),
        email.from,
        email.subject,
        mail.reason.clone(),
    ]
}

fn print_inbound(mail: &pb::InboundMail, json: bool) {
    output::one(json, mail);
}

async fn list_inbound(
    global: &GlobalArgs,
    mailbox: String,
    state: pb::InboundMailState,
) -> anyhow::Result<()> {
    let session = session_for(global).await?;
    let mails = session
        .list(pb::ListInboundMailRequest {
            mailbox_id: mailbox.clone(),
            state: state as i32,
            ..Default::default()
        })
        .await?;
    output::list(global.json, &mails);
    Ok(())
}

/// Posts a held or triaged mail into `work_item_id`'s thread (empty: the
/// one it was meant for) and prints it.
async fn assign(
    session: &Session,
    global: &GlobalArgs,
    mail: String,
    work_item_id: String,
) -> anyhow::Result<()> {
    let posted = session
        .call(pb::AssignInboundMailRequest {
            id: mail,
            work_item_id,
        })
        .await?;
    print_inbound(&posted, global.json);
    Ok(())
}

/// `anima mail …`
pub async fn mail(command: MailCommand) -> anyhow::Result<()> {
    match command {
        MailCommand::Triage { global, mailbox } => {
            list_inbound(&global, mailbox, pb::InboundMailState::Triage).await
        }
        MailCommand::Held { global, mailbox } => {
            list_inbound(&global, mailbox, pb::InboundMailState::Held).await
        }
        MailCommand::List { global, mailbox } => {
            list_inbound(&global, mailbox, pb::InboundMailState::Unspecified).await
        }
        MailCommand::Assign {
            global,
            mail,
            work_item: reference,
            project,
        } => {
            let session = session_for(&global).await?;
            let item = work_item(&session, &reference, project.as_deref()).await?;
            assign(&session, &global, mail, item.id).await
        }
        // Releasing is assigning to the work item the mail was meant for.
        MailCommand::Release { global, mail } => {
            let session = session_for(&global).await?;
            assign(&session, &global, mail, String::new()).await
        }
        MailCommand::Dismiss { global, mail } => {
            let session = session_for(&global).await?;
            let dismissed = session
                .call(pb::DismissInboundMailRequest { id: mail })
                .await?;
            print_inbound(&dismissed, global.json);
            Ok(())
        }
    }
}
