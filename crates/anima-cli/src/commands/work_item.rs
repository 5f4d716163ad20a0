//! `anima workitem …`: work items, `$EDITOR` editing, history and revert.

use std::{collections::HashMap, io::Write, process::Command, str::FromStr};

use anima_core::planning::{Priority, WorkItemStatus};
use anima_proto::v1 as pb;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use anima_client::Session;

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{
    Changes, ItemRef, Tier, actor_name, answered_by, is_id, mask, priority_name, project_id,
    status_name, time, usernames, workflow_id,
};

/// `anima workitem …`
#[derive(Subcommand)]
pub enum WorkItemCommand {
    /// List the work items of a project in key order.
    List(ListArgs),
    /// Create a work item; it gets the project's next key.
    Create(CreateArgs),
    /// Show a work item with its description.
    Show(ShowArgs),
    /// Change a work item, or edit its description in $EDITOR.
    ///
    /// Without any option, opens the description in $VISUAL or $EDITOR
    /// like `git commit` does; saving it unchanged changes nothing. If
    /// someone else changed the description meanwhile, the edit is refused
    /// with STALE_REVISION instead of overwriting theirs.
    Edit(EditArgs),
    /// Move a work item to another phase of its workflow.
    Move(MoveArgs),
    /// List the description revisions, oldest first.
    Revisions(RevisionsArgs),
    /// Have anima-ai draft a description from the title, the current
    /// description and the thread. Prints the draft; saves nothing (save it
    /// with `edit`).
    Draft(DraftArgs),
    /// List what the item's agent sessions may use, or change it:
    /// `--network` and `--secret` grant, `--remove` and `--clear` take away.
    /// Sessions started afterwards get the new set.
    Capabilities(CapabilitiesArgs),
    /// Have anima-ai propose the capabilities an agent needs for the item
    /// (reasoning tier). Prints them; --accept adds them to the item's.
    Propose(ProposeArgs),
    /// Ask anima-ai whether changes need a human review (reasoning tier).
    Review(ReviewArgs),
    /// Restore an earlier description as a new revision.
    Revert(RevertArgs),
    /// Delete a work item and its history.
    Delete(DeleteArgs),
}

/// Options of `anima workitem list`.
#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Project id or name.
    #[arg(long, short, env = "ANIMA_PROJECT")]
    project: String,
    /// Only items of this plan (id).
    #[arg(long)]
    plan: Option<String>,
    /// Only items in this status: open, in_progress, blocked, done, cancelled.
    #[arg(long, value_parser = WorkItemStatus::from_str)]
    status: Option<WorkItemStatus>,
}

/// Options of `anima workitem create`.
#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Project id or name.
    #[arg(long, short, env = "ANIMA_PROJECT")]
    project: String,
    /// Title.
    title: String,
    /// First description.
    #[arg(long, default_value = "")]
    description: String,
    /// Plan id.
    #[arg(long)]
    plan: Option<String>,
    /// low, medium, high or urgent [default: medium].
    #[arg(long, value_parser = Priority::from_str)]
    priority: Option<Priority>,
    /// Workflow id or name [default: the plan's, else Standard].
    #[arg(long)]
    workflow: Option<String>,
}

/// Options of `anima workitem show`.
#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
}

/// Options of `anima workitem edit`.
#[derive(Args)]
pub struct EditArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// New description, instead of opening an editor.
    #[arg(long)]
    description: Option<String>,
    /// New title.
    #[arg(long)]
    title: Option<String>,
    /// open, in_progress, blocked, done or cancelled.
    #[arg(long, value_parser = WorkItemStatus::from_str)]
    status: Option<WorkItemStatus>,
    /// low, medium, high or urgent.
    #[arg(long, value_parser = Priority::from_str)]
    priority: Option<Priority>,
}

/// Options of `anima workitem move`.
#[derive(Args)]
pub struct MoveArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// Phase id, e.g. implementation.
    phase: String,
}

/// Options of `anima workitem revisions`.
#[derive(Args)]
pub struct RevisionsArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
}

/// Options of `anima workitem draft`.
#[derive(Args)]
pub struct DraftArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// Model tier [default: standard].
    #[arg(long, value_enum)]
    tier: Option<Tier>,
}

/// Options of `anima workitem capabilities`.
#[derive(Args)]
pub struct CapabilitiesArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// Grant a network zone by name (repeatable): one the server's
    /// administrators defined (`network_zones`), with the hosts they
    /// allow. Sandboxes reach its hosts through the egress proxy
    /// (`HTTPS_PROXY`), and nothing else.
    #[arg(long, value_name = "ZONE")]
    network: Vec<String>,
    /// Grant a secret by reference, NAME=STORE://KEY (repeatable): a
    /// secret store the server's administrators configured
    /// (`secret_stores`) and a key in it. Sandboxes see it as
    /// /run/anima/secrets/NAME; Anima never stores the value.
    #[arg(long, value_name = "NAME=REFERENCE")]
    secret: Vec<String>,
    /// Take away the capability with this id (repeatable; ids are in
    /// the listing).
    #[arg(long, value_name = "ID")]
    remove: Vec<String>,
    /// Take away every current capability first.
    #[arg(long)]
    clear: bool,
}

/// Options of `anima workitem propose`.
#[derive(Args)]
pub struct ProposeArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// Add the proposed capabilities to the item's current ones.
    #[arg(long)]
    accept: bool,
}

/// Options of `anima workitem review`.
#[derive(Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// File with the changes, e.g. a diff; `-` reads standard input.
    #[arg(long)]
    changes: std::path::PathBuf,
}

/// Options of `anima workitem revert`.
#[derive(Args)]
pub struct RevertArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// Revision number (as `revisions` lists it) or id.
    revision: String,
}

/// Options of `anima workitem delete`.
#[derive(Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
}

fn work_item_json(item: &pb::WorkItem) -> Value {
    json!({
        "id": item.id,
        "key": item.key,
        "project_id": item.project_id,
        "plan_id": item.plan_id,
        "title": item.title,
        "status": status_name(item.status),
        "priority": priority_name(item.priority),
        "workflow_id": item.workflow_id,
        "phase": item.phase_id,
        "phase_changed_by": actor_name(&item.phase_changed_by, &HashMap::new()),
        "phase_changed": time(&item.phase_change_time),
        "description": item.description,
        "description_revision_id": item.description_revision_id,
        "capabilities": item.capabilities.len(),
        "created": time(&item.create_time),
        "updated": time(&item.update_time),
    })
}

fn work_item_row(item: &pb::WorkItem) -> Vec<String> {
    vec![
        item.key.clone(),
        item.title.clone(),
        status_name(item.status).into(),
        priority_name(item.priority).into(),
        item.phase_id.clone(),
    ]
}

const WORK_ITEM_HEADER: &[&str] = &["KEY", "TITLE", "STATUS", "PRIORITY", "PHASE"];

output::impl_row!(
    pb::WorkItem,
    WORK_ITEM_HEADER,
    work_item_json,
    work_item_row
);

fn print_work_item(item: &pb::WorkItem, json: bool) {
    if json {
        output::json(&work_item_json(item));
        return;
    }
    output::table(WORK_ITEM_HEADER, &[work_item_row(item)]);
    println!("\nid: {}", item.id);
    if !item.description.is_empty() {
        println!("\n{}", output::safe(&item.description));
    }
}

/// Opens `text` in the user's editor and returns what they saved. The
/// editor runs through `sh` like git runs it, so `EDITOR="code --wait"`
/// works.
fn edit_in_editor(text: &str) -> anyhow::Result<String> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut file = tempfile::Builder::new()
        .prefix("anima-description-")
        .suffix(".md")
        .tempfile()
        .context("creating a file for the editor")?;
    file.write_all(text.as_bytes())?;
    file.flush()?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .with_context(|| format!("running the editor {editor:?}"))?;
    anyhow::ensure!(
        status.success(),
        "the editor {editor:?} failed ({status}); nothing changed"
    );
    let mut edited = std::fs::read_to_string(file.path()).context("reading the edited file")?;
    // Editors end files with a newline; that alone is not an edit.
    if !text.ends_with('\n') && edited.ends_with('\n') {
        edited.pop();
    }
    Ok(edited)
}

/// `anima workitem …`
pub async fn work_item_command(command: WorkItemCommand) -> anyhow::Result<()> {
    match command {
        WorkItemCommand::List(args) => args.run().await,
        WorkItemCommand::Create(args) => args.run().await,
        WorkItemCommand::Show(args) => args.run().await,
        WorkItemCommand::Edit(args) => args.run().await,
        WorkItemCommand::Move(args) => args.run().await,
        WorkItemCommand::Revisions(args) => args.run().await,
        WorkItemCommand::Draft(args) => args.run().await,
        WorkItemCommand::Capabilities(args) => args.run().await,
        WorkItemCommand::Propose(args) => args.run().await,
        WorkItemCommand::Review(args) => args.run().await,
        WorkItemCommand::Revert(args) => args.run().await,
        WorkItemCommand::Delete(args) => args.run().await,
    }
}

impl ListArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            project,
            plan,
            status,
        } = self;
        let session = session_for(&global).await?;
        let project_id = project_id(&session, &project).await?;
        let status = status.map_or(0, |s| pb::WorkItemStatus::from(s) as i32);
        let items = session
            .list(pb::ListWorkItemsRequest {
                project_id: project_id.clone(),
                plan_id: plan.clone().unwrap_or_default(),
                status,
                ..Default::default()
            })
            .await?;
        output::list(global.json, &items);
        Ok(())
    }
}

impl CreateArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            project,
            title,
            description,
            plan,
            priority,
            workflow,
        } = self;
        let session = session_for(&global).await?;
        let workflow_id = match workflow {
            Some(workflow) => workflow_id(&session, &workflow).await?,
            None => String::new(),
        };
        let item = session
            .call(pb::CreateWorkItemRequest {
                project_id: project_id(&session, &project).await?,
                plan_id: plan.unwrap_or_default(),
                title,
                description,
                priority: priority.map_or(0, |p| pb::Priority::from(p) as i32),
                workflow_id,
            })
            .await?;
        print_work_item(&item, global.json);
        Ok(())
    }
}

impl ShowArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self { global, item } = self;
        let session = session_for(&global).await?;
        let item = item.fetch(&session).await?;
        print_work_item(&item, global.json);
        Ok(())
    }
}

impl EditArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            item,
            description,
            title,
            status,
            priority,
        } = self;
        let session = session_for(&global).await?;
        let current = item.fetch(&session).await?;
        let use_editor =
            description.is_none() && title.is_none() && status.is_none() && priority.is_none();
        let description = if use_editor {
            let edited = edit_in_editor(&current.description)?;
            if edited == current.description {
                println!("{}: description unchanged", current.key);
                return Ok(());
            }
            Some(edited)
        } else {
            description
        };
        let mut wanted = pb::WorkItem {
            id: current.id.clone(),
            ..Default::default()
        };
        let mut changes = Changes::default();
        changes.set("description", &mut wanted.description, description);
        changes.set("title", &mut wanted.title, title);
        let status = status.map(|status| pb::WorkItemStatus::from(status) as i32);
        changes.set("status", &mut wanted.status, status);
        let priority = priority.map(|priority| pb::Priority::from(priority) as i32);
        changes.set("priority", &mut wanted.priority, priority);
        let item = session
            .call(pb::UpdateWorkItemRequest {
                work_item: Some(wanted),
                update_mask: changes.mask("--title, --description, --status or --priority")?,
                // The revision shown to the editor: if someone saved
                // meanwhile, the server refuses with STALE_REVISION.
                base_revision_id: current.description_revision_id,
            })
            .await?;
        print_work_item(&item, global.json);
        Ok(())
    }
}

impl MoveArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            item,
            phase,
        } = self;
        let session = session_for(&global).await?;
        let current = item.fetch(&session).await?;
        let item = session
            .call(pb::UpdateWorkItemRequest {
                work_item: Some(pb::WorkItem {
                    id: current.id,
                    phase_id: phase,
                    ..Default::default()
                }),
                update_mask: mask(vec!["phase_id"]),
                base_revision_id: String::new(),
            })
            .await?;
        print_work_item(&item, global.json);
        Ok(())
    }
}

impl RevisionsArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self { global, item } = self;
        let session = session_for(&global).await?;
        let current = item.fetch(&session).await?;
        let revisions = all_revisions(&session, &current.id).await?;
        let usernames = usernames(&session).await?;
        if global.json {
            output::json(&Value::Array(
                revisions
                    .iter()
                    .map(|revision| {
                        json!({
                            "id": revision.id,
                            "number": revision.number,
                            "cause": cause_name(revision.cause),
                            "author": actor_name(&revision.author, &usernames),
                            "created": time(&revision.create_time),
                            "reverted_from": revision.reverted_from_revision_id,
                            "current": revision.id == current.description_revision_id,
                            "text": revision.text,
                        })
                    })
                    .collect(),
            ));
        } else {
            let rows: Vec<Vec<String>> = revisions
                .iter()
                .map(|revision| {
                    let first_line = revision.text.lines().next().unwrap_or_default();
                    vec![
                        if revision.id == current.description_revision_id {
                            format!("*{}", revision.number)
                        } else {
                            revision.number.to_string()
                        },
                        cause_name(revision.cause).into(),
                        actor_name(&revision.author, &usernames),
                        time(&revision.create_time),
                        first_line.chars().take(60).collect(),
                    ]
                })
                .collect();
            output::table(&["REV", "CAUSE", "AUTHOR", "TIME", "TEXT"], &rows);
        }
        Ok(())
    }
}

impl DraftArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self { global, item, tier } = self;
        let session = session_for(&global).await?;
        let item = item.fetch(&session).await?;
        let draft = session
            .call(pb::DraftDescriptionRequest {
                work_item_id: item.id,
                tier: tier.map_or(0, Tier::wire),
            })
            .await?;
        if global.json {
            output::json(&json!({
                "description": draft.description,
                "sources": draft.source_ids,
                "model": draft.model,
                "tier": draft.tier,
            }));
        } else {
            println!("{}", output::safe(draft.description.trim_end()));
            println!(
                "\n(draft {}, from {}; not saved: use `anima workitem edit {}`)",
                answered_by(&draft.model, draft.tier),
                draft.source_ids.join(", "),
                item.key
            );
        }
        Ok(())
    }
}

impl CapabilitiesArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            item,
            network,
            secret,
            remove,
            clear,
        } = self;
        let granted = granted_capabilities(&network, &secret)?;
        let session = session_for(&global).await?;
        let item = item.fetch(&session).await?;
        let mut capabilities = capabilities_of(&session, &item.id).await?;
        if let Some(unknown) = remove
            .iter()
            .find(|id| !capabilities.iter().any(|capability| &capability.id == *id))
        {
            anyhow::bail!("{} has no capability {unknown}", item.key);
        }
        if clear || !remove.is_empty() || !granted.is_empty() {
            if clear {
                capabilities.clear();
            }
            capabilities.retain(|capability| !remove.contains(&capability.id));
            capabilities.extend(granted);
            capabilities = set_capabilities(&session, item.id, capabilities).await?;
        }
        if global.json {
            output::json(&json!({
                "capabilities": capabilities
                    .iter()
                    .map(|capability| json!({"id": capability.id, "what": capability_line(capability)}))
                    .collect::<Vec<_>>(),
            }));
        } else if capabilities.is_empty() {
            println!(
                "{} has no capabilities: its agents get no network and no secrets",
                item.key
            );
        } else {
            for capability in &capabilities {
                println!("{}  {}", capability.id, capability_line(capability));
            }
        }
        Ok(())
    }
}

impl ProposeArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            item,
            accept,
        } = self;
        let session = session_for(&global).await?;
        let item = item.fetch(&session).await?;
        let proposal = session
            .call(pb::ProposeCapabilitiesRequest {
                work_item_id: item.id.clone(),
            })
            .await?;
        if accept {
            let mut capabilities = capabilities_of(&session, &item.id).await?;
            capabilities.extend(proposal.capabilities.iter().cloned());
            set_capabilities(&session, item.id, capabilities).await?;
        }
        if global.json {
            output::json(&json!({
                "capabilities": proposal.capabilities.iter().map(capability_line).collect::<Vec<_>>(),
                "accepted": accept,
                "model": proposal.model,
                "tier": proposal.tier,
            }));
        } else {
            for capability in &proposal.capabilities {
                println!("{}", capability_line(capability));
            }
            println!(
                "(proposed {}; {})",
                answered_by(&proposal.model, proposal.tier),
                if accept {
                    "added to the work item".to_owned()
                } else {
                    format!(
                        "not saved: `anima workitem propose {} --accept` adds them",
                        item.key
                    )
                }
            );
        }
        Ok(())
    }
}

impl ReviewArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            item,
            changes,
        } = self;
        let changes = if changes.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading the changes from stdin")?
        } else {
            std::fs::read_to_string(&changes)
                .with_context(|| format!("reading {}", changes.display()))?
        };
        let session = session_for(&global).await?;
        let item = item.fetch(&session).await?;
        let decision = session
            .call(pb::DecideReviewRequest {
                work_item_id: item.id,
                changes,
            })
            .await?;
        if global.json {
            output::json(&json!({
                "review": decision.review,
                "reason": decision.reason,
                "model": decision.model,
                "tier": decision.tier,
            }));
        } else {
            println!(
                "{}: {}\n(decided {})",
                if decision.review {
                    "review needed"
                } else {
                    "no review needed"
                },
                decision.reason,
                answered_by(&decision.model, decision.tier)
            );
        }
        Ok(())
    }
}

impl RevertArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            global,
            item,
            revision,
        } = self;
        let session = session_for(&global).await?;
        let current = item.fetch(&session).await?;
        let revision_id = if is_id(&revision) {
            revision
        } else {
            let number: i64 = revision
                .parse()
                .with_context(|| format!("{revision:?} is neither a revision number nor an id"))?;
            all_revisions(&session, &current.id)
                .await?
                .into_iter()
                .find(|candidate| candidate.number == number)
                .map(|found| found.id)
                .with_context(|| format!("{} has no revision {number}", current.key))?
        };
        let item = session
            .call(pb::RevertDescriptionRequest {
                work_item_id: current.id,
                revision_id,
                base_revision_id: current.description_revision_id,
            })
            .await?;
        print_work_item(&item, global.json);
        Ok(())
    }
}

impl DeleteArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self { global, item } = self;
        let session = session_for(&global).await?;
        let current = item.fetch(&session).await?;
        session
            .call(pb::DeleteWorkItemRequest {
                id: current.id.clone(),
            })
            .await?;
        println!("deleted {} ({})", current.key, current.id);
        Ok(())
    }
}

fn cause_name(raw: i32) -> &'static str {
    match pb::RevisionCause::try_from(raw) {
        Ok(pb::RevisionCause::Create) => "create",
        Ok(pb::RevisionCause::Edit) => "edit",
        Ok(pb::RevisionCause::Revert) => "revert",
        Ok(pb::RevisionCause::AiPromotion) => "ai_promotion",
        _ => "?",
    }
}

/// The capabilities a work item grants its agent sessions now.
async fn capabilities_of(
    session: &Session,
    work_item_id: &str,
) -> anyhow::Result<Vec<pb::Capability>> {
    Ok(session
        .call(pb::ListCapabilitiesRequest {
            work_item_id: work_item_id.to_owned(),
        })
        .await?
        .capabilities)
}

/// Replaces a work item's capabilities; returns them as the server keeps them.
async fn set_capabilities(
    session: &Session,
    work_item_id: String,
    capabilities: Vec<pb::Capability>,
) -> anyhow::Result<Vec<pb::Capability>> {
    Ok(session
        .call(pb::UpdateCapabilitiesRequest {
            work_item_id,
            capabilities,
        })
        .await?
        .capabilities)
}

async fn all_revisions(
    session: &Session,
    work_item_id: &str,
) -> anyhow::Result<Vec<pb::DescriptionRevision>> {
    session
        .list(pb::GetDescriptionRevisionsRequest {
            work_item_id: work_item_id.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(anyhow::Error::from)
}

/// The capabilities `--network NAME` and `--secret NAME=REFERENCE` grant;
/// the server checks them further (zone names, references).
fn granted_capabilities(
    networks: &[String],
    secrets: &[String],
) -> anyhow::Result<Vec<pb::Capability>> {
    use pb::capability::Kind;
    let split = |flag: &str, value: &str| {
        value
            .split_once('=')
            .filter(|(name, rest)| !name.trim().is_empty() && !rest.trim().is_empty())
            .map(|(name, rest)| (name.trim().to_owned(), rest.trim().to_owned()))
            .ok_or_else(|| anyhow::anyhow!("--{flag} takes NAME=VALUE, not {value:?}"))
    };
    let mut granted = Vec::new();
    for network in networks {
        let name = network.trim();
        anyhow::ensure!(
            !name.is_empty() && !name.contains(['=', ',', ':']),
            "--network takes the name of a zone the server's administrators defined \
             (its hosts are theirs to say), not {network:?}"
        );
        granted.push(Kind::NetworkZone(pb::NetworkZone {
            name: name.to_owned(),
            hosts: Vec::new(),
        }));
    }
    for secret in secrets {
        let (name, reference) = split("secret", secret)?;
        granted.push(Kind::Secret(pb::SecretRef {
            mount_as: name.clone(),
            name,
            reference,
        }));
    }
    Ok(granted
        .into_iter()
        .map(|kind| pb::Capability {
            id: String::new(),
            kind: Some(kind),
        })
        .collect())
}

/// One capability on one line, e.g. `network_zone stripe: api.stripe.com:443`.
fn capability_line(capability: &pb::Capability) -> String {
    use pb::capability::Kind;
    match &capability.kind {
        Some(Kind::RepoAccess(repo)) => format!(
            "repo_access {}{}",
            repo.repository_id,
            if repo.write { " (write)" } else { "" }
        ),
        Some(Kind::Secret(secret)) => format!(
            "secret {}: {} as {}",
            secret.name, secret.reference, secret.mount_as
        ),
        Some(Kind::NetworkZone(zone)) => {
            format!("network_zone {}: {}", zone.name, zone.hosts.join(", "))
        }
        Some(Kind::Custom(custom)) => format!(
            "custom {}: {}",
            custom.r#type,
            custom
                .attributes
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "(empty)".into(),
    }
}
