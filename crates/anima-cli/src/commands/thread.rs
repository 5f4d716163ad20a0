//! `anima thread …`, `anima ask`, `anima decisions`, `anima decide` and
//! `anima dashboard`: discussion, human decisions and the morning view.

use std::collections::HashMap;

use anima_proto::v1::{self as pb};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic_types::StatusExt;

use super::{ItemRef, Tier, actor_name, answered_by, project_id, time, usernames};

use anima_client::{Services, Session};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

/// `anima thread …`
#[derive(Subcommand)]
pub enum ThreadCommand {
    /// Show a work item's thread, oldest first.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
    },
    /// Post a message as yourself; with --email-to it is sent as email.
    Post {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// The message.
        body: String,
        /// Send it as email to these addresses (repeatable).
        #[arg(long = "email-to")]
        email_to: Vec<String>,
        /// Subject of the email [default: the work item's key and title].
        #[arg(long)]
        subject: Option<String>,
    },
    /// Print new messages as they arrive, until interrupted.
    Follow {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// Start after this event id instead of now (0 replays everything).
        #[arg(long)]
        after: Option<i64>,
    },
    /// Make an Akh message (e.g. a summary) the work item's description, as
    /// a new revision. Refused if the description changed since you looked.
    Promote {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// The message's number in the thread (`#N` in `thread show`).
        sequence: i64,
    },
    /// Have anima-ai summarise the latest messages; the summary is posted
    /// as an Akh message that can be promoted into the description.
    Summarize {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(flatten)]
        item: ItemRef,
        /// The Akh (name or id) the summary speaks as.
        #[arg(long)]
        akh: String,
        /// How many of the latest messages to read [default: 50, at most 200].
        #[arg(long)]
        messages: Option<i32>,
        /// Model tier [default: standard].
        #[arg(long, value_enum)]
        tier: Option<Tier>,
    },
}

/// `anima ask …`: a human decision.
#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    item: ItemRef,
    /// What is asked.
    question: String,
    /// The single input needed, e.g. "Release date".
    #[arg(long)]
    input: String,
    /// An allowed answer (repeatable); without any the answer is free text.
    #[arg(long = "choice")]
    choices: Vec<String>,
    /// User (id or username) expected to answer.
    #[arg(long)]
    assignee: Option<String>,
}

/// `anima decisions`: what needs a human.
#[derive(Args)]
pub struct DecisionsArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Only this project's (id or name).
    #[arg(long, short, env = "ANIMA_PROJECT")]
    project: Option<String>,
    /// Include resolved and cancelled decisions.
    #[arg(long)]
    all: bool,
}

/// `anima decide ID ANSWER`
#[derive(Args)]
pub struct DecideArgs {
    #[command(flatten)]
    global: GlobalArgs,
    /// Decision id.
    id: String,
    /// The answer (one of the choices, if it has any).
    #[arg(required_unless_present = "cancel")]
    answer: Option<String>,
    /// Withdraw the decision instead; the answer is the reason, if given.
    #[arg(long)]
    cancel: bool,
}

/// Names of authors: users by username, Akhs by name.
pub(super) struct Names {
    users: HashMap<String, String>,
    akhs: HashMap<String, String>,
}

impl Names {
    pub(super) async fn load(session: &Session) -> anyhow::Result<Self> {
        let akhs = session.list(pb::ListAkhsRequest::default()).await?;
        Ok(Self {
            users: usernames(session).await?,
            akhs: akhs.into_iter().map(|akh| (akh.id, akh.name)).collect(),
        })
    }

    /// The id of the Akh named by id or name.
    pub(super) fn akh_id(&self, akh: &str) -> anyhow::Result<String> {
        self.akhs
            .iter()
            .find(|(id, name)| *id == akh || *name == akh)
            .map(|(id, _)| id.clone())
            .with_context(|| format!("no Akh named {akh:?} (see `anima akh list`)"))
    }

    fn author(&self, author: &Option<pb::Actor>) -> String {
        match author.as_ref().and_then(|actor| actor.kind.as_ref()) {
            Some(pb::actor::Kind::Akh(akh)) => format!(
                "{} (AI)",
                self.akhs
                    .get(&akh.akh_id)
                    .cloned()
                    .unwrap_or_else(|| akh.akh_id.clone())
            ),
            _ => actor_name(author, &self.users),
        }
    }
}

fn kind_name(raw: i32) -> &'static str {
    match pb::MessageKind::try_from(raw) {
        Ok(pb::MessageKind::Human) => "human",
        Ok(pb::MessageKind::Akh) => "akh",
        Ok(pb::MessageKind::InboundEmail) => "email in",
        Ok(pb::MessageKind::OutboundEmail) => "email out",
        Ok(pb::MessageKind::System) => "system",
        _ => "?",
    }
}

fn message_json(message: &pb::Message, names: &Names) -> Value {
    json!({
        "id": message.id,
        "sequence": message.sequence,
        "kind": kind_name(message.kind),
        "author": names.author(&message.author),
        "body": message.body,
        "time": time(&message.create_time),
        "email": message.email.as_ref().map(|email| json!({
            "from": email.from,
            "to": email.to,
            "cc": email.cc,
            "subject": email.subject,
            "message_id": email.message_id,
        })),
    })
}

fn print_message(message: &pb::Message, names: &Names, as_json: bool) {
    if as_json {
        // One JSON object per line, so `follow --json` can be piped.
        println!("{}", message_json(message, names));
        return;
    }
    println!(
        "#{}  {}  {} ({})",
        message.sequence,
        time(&message.create_time),
        output::safe(&names.author(&message.author)),
        kind_name(message.kind)
    );
    if let Some(email) = &message.email {
        println!("subject: {}", output::safe(&email.subject));
    }
    println!("{}\n", output::safe(&message.body));
}

/// `anima thread …`
pub async fn thread(command: ThreadCommand) -> anyhow::Result<()> {
    match command {
        ThreadCommand::Show { global, item } => {
            let session = session_for(&global).await?;
            let item = item.fetch(&session).await?;
            let names = Names::load(&session).await?;
            let messages = session
                .list(pb::GetThreadRequest {
                    work_item_id: item.id.clone(),
                    reverse: false,
                    ..Default::default()
                })
                .await?;
            if global.json {
                output::json(&Value::Array(
                    messages.iter().map(|m| message_json(m, &names)).collect(),
                ));
            } else {
                println!("{} {}\n", item.key, output::safe(&item.title));
                for message in &messages {
                    print_message(message, &names, false);
                }
            }
        }
        ThreadCommand::Post {
            global,
            item,
            body,
            email_to,
            subject,
        } => {
            let session = session_for(&global).await?;
            let item = item.fetch(&session).await?;
            let (kind, email) = if email_to.is_empty() {
                (pb::MessageKind::Human, None)
            } else {
                (
                    pb::MessageKind::OutboundEmail,
                    Some(pb::EmailHeaders {
                        to: email_to,
                        subject: subject.unwrap_or_else(|| format!("{} {}", item.key, item.title)),
                        ..Default::default()
                    }),
                )
            };
            let message = session
                .call(pb::PostMessageRequest {
                    work_item_id: item.id,
                    kind: kind as i32,
                    body,
                    email,
                    ..Default::default()
                })
                .await?;
            let names = Names::load(&session).await?;
            print_message(&message, &names, global.json);
        }
        ThreadCommand::Promote {
            global,
            item,
            sequence,
        } => {
            let session = session_for(&global).await?;
            let item = item.fetch(&session).await?;
            // The thread is read newest first: a promoted message is usually recent.
            let mut page_token = String::new();
            let message = loop {
                let page = session
                    .call(pb::GetThreadRequest {
                        work_item_id: item.id.clone(),
                        page_size: 200,
                        page_token,
                        reverse: true,
                    })
                    .await?;
                if let Some(found) = page.messages.into_iter().find(|m| m.sequence == sequence) {
                    break found;
                }
                anyhow::ensure!(
                    !page.next_page_token.is_empty(),
                    "{} has no message #{sequence}",
                    item.key
                );
                page_token = page.next_page_token;
            };
            let promoted = session
                .call(pb::PromoteMessageRequest {
                    message_id: message.id,
                    base_revision_id: item.description_revision_id,
                })
                .await?;
            if global.json {
                output::json(&json!({
                    "work_item_id": promoted.work_item_id,
                    "revision_id": promoted.revision_id,
                }));
            } else {
                println!(
                    "message #{sequence} is now the description of {} (revision {})",
                    item.key, promoted.revision_id
                );
            }
        }
        ThreadCommand::Summarize {
            global,
            item,
            akh,
            messages,
            tier,
        } => {
            let session = session_for(&global).await?;
            let item = item.fetch(&session).await?;
            let names = Names::load(&session).await?;
            let akh_id = names.akh_id(&akh)?;
            let reply = session
                .call(pb::SummarizeThreadRequest {
                    work_item_id: item.id,
                    akh_id,
                    max_messages: messages.unwrap_or_default(),
                    tier: tier.map_or(0, Tier::wire),
                })
                .await?;
            let message = reply.message.context("the server returned no message")?;
            if global.json {
                let mut value = message_json(&message, &names);
                value["model"] = json!(reply.model);
                value["tier"] = json!(reply.tier);
                output::json(&value);
            } else {
                print_message(&message, &names, false);
                println!("(summarised {})", answered_by(&reply.model, reply.tier));
            }
        }
        ThreadCommand::Follow {
            global,
            item,
            after,
        } => {
            let session = session_for(&global).await?;
            let item = item.fetch(&session).await?;
            let names = Names::load(&session).await?;
            let mut cursor = match after {
                Some(after) => after,
                None => {
                    session
                        .call(pb::GetDashboardRequest {})
                        .await?
                        .as_of_event_id
                }
            };
            if !global.json {
                eprintln!(
                    "following {} {} (Ctrl-C stops)",
                    item.key,
                    output::safe(&item.title)
                );
            }
            loop {
                let mut stream = session
                    .threads()
                    .stream_thread(session.request(pb::StreamThreadRequest {
                        work_item_id: item.id.clone(),
                        after_event_id: cursor,
                    }))
                    .await?
                    .into_inner();
                let ended = loop {
                    match stream.next().await {
                        Some(Ok(event)) => {
                            cursor = event.event_id;
                            if let Some(pb::thread_event::Kind::Message(message)) = event.kind {
                                print_message(&message, &names, global.json);
                            }
                        }
                        Some(Err(status)) => break status,
                        None => anyhow::bail!("the server closed the stream"),
                    }
                };
                // Fell behind: pick up where we were. Anything else is fatal.
                let slow = ended
                    .get_error_details()
                    .error_info()
                    .is_some_and(|info| info.reason == "SLOW_CONSUMER");
                if !slow {
                    return Err(ended.into());
                }
            }
        }
    }
    Ok(())
}

fn decision_state_name(raw: i32) -> &'static str {
    match pb::DecisionState::try_from(raw) {
        Ok(pb::DecisionState::Open) => "open",
        Ok(pb::DecisionState::Resolved) => "resolved",
        Ok(pb::DecisionState::Cancelled) => "cancelled",
        _ => "?",
    }
}

fn decision_json(decision: &pb::Decision, key: &str) -> Value {
    json!({
        "id": decision.id,
        "work_item": key,
        "work_item_id": decision.work_item_id,
        "project_id": decision.project_id,
        "question": decision.question,
        "input": decision.input_label,
        "choices": decision.choices,
        "state": decision_state_name(decision.state),
        "answer": decision.answer,
        "asked": time(&decision.create_time),
    })
}

fn decision_row(decision: &pb::Decision, key: &str) -> Vec<String> {
    vec![
        decision.id.clone(),
        key.to_owned(),
        decision_state_name(decision.state).into(),
        decision.question.lines().next().unwrap_or_default().into(),
        decision.input_label.clone(),
        if decision.choices.is_empty() {
            "(free text)".into()
        } else {
            decision.choices.join(" | ")
        },
    ]
}

const DECISION_HEADER: &[&str] = &["ID", "ITEM", "STATE", "QUESTION", "INPUT", "CHOICES"];

/// Work item keys by id, fetched once each.
async fn keys(
    session: &Session,
    decisions: &[pb::Decision],
) -> anyhow::Result<HashMap<String, String>> {
    let mut keys = HashMap::new();
    for decision in decisions {
        if keys.contains_key(&decision.work_item_id) {
            continue;
        }
        let item = session
            .call(pb::GetWorkItemRequest {
                id: decision.work_item_id.clone(),
                ..Default::default()
            })
            .await?;
        keys.insert(decision.work_item_id.clone(), item.key);
    }
    Ok(keys)
}

fn print_decisions(decisions: &[pb::Decision], keys: &HashMap<String, String>, as_json: bool) {
    let key = |decision: &pb::Decision| {
        keys.get(&decision.work_item_id)
            .cloned()
            .unwrap_or_default()
    };
    if as_json {
        output::json(&Value::Array(
            decisions
                .iter()
                .map(|d| decision_json(d, &key(d)))
                .collect(),
        ));
    } else {
        output::table(
            DECISION_HEADER,
            &decisions
                .iter()
                .map(|d| decision_row(d, &key(d)))
                .collect::<Vec<_>>(),
        );
    }
}

/// `anima ask`
pub async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let session = session_for(&args.global).await?;
    let item = args.item.fetch(&session).await?;
    let assignee_user_id = match args.assignee {
        Some(user) => super::user_id(&session, &user).await?,
        None => String::new(),
    };
    let decision = session
        .call(pb::RequestDecisionRequest {
            work_item_id: item.id.clone(),
            question: args.question,
            input_label: args.input,
            choices: args.choices,
            assignee_user_id,
        })
        .await?;
    let keys = HashMap::from([(item.id, item.key)]);
    print_decisions(&[decision], &keys, args.global.json);
    Ok(())
}

/// `anima decisions`
pub async fn decisions(args: DecisionsArgs) -> anyhow::Result<()> {
    let session = session_for(&args.global).await?;
    let project_id = match &args.project {
        Some(project) => project_id(&session, project).await?,
        None => String::new(),
    };
    let state = if args.all {
        pb::DecisionState::Unspecified
    } else {
        pb::DecisionState::Open
    } as i32;
    let decisions = session
        .list(pb::ListDecisionsRequest {
            project_id: project_id.clone(),
            user_id: String::new(),
            state,
            ..Default::default()
        })
        .await?;
    let keys = keys(&session, &decisions).await?;
    print_decisions(&decisions, &keys, args.global.json);
    Ok(())
}

/// `anima decide`
pub async fn decide(args: DecideArgs) -> anyhow::Result<()> {
    let session = session_for(&args.global).await?;
    let decision = if args.cancel {
        session
            .threads()
            .cancel_decision(session.request(pb::CancelDecisionRequest {
                id: args.id,
                reason: args.answer.unwrap_or_default(),
            }))
            .await?
    } else {
        session
            .threads()
            .resolve_decision(session.request(pb::ResolveDecisionRequest {
                id: args.id,
                answer: args.answer.context("give the answer")?,
            }))
            .await?
    }
    .into_inner();
    let keys = keys(&session, std::slice::from_ref(&decision)).await?;
    print_decisions(&[decision], &keys, args.global.json);
    Ok(())
}

/// `anima dashboard`
pub async fn dashboard(global: GlobalArgs) -> anyhow::Result<()> {
    let session = session_for(&global).await?;
    let dashboard = session.call(pb::GetDashboardRequest {}).await?;
    let project_names: HashMap<&str, &str> = dashboard
        .projects
        .iter()
        .map(|p| (p.project_id.as_str(), p.name.as_str()))
        .collect();
    let keys = keys(&session, &dashboard.open_decisions).await?;
    if global.json {
        output::json(&json!({
            "as_of_event_id": dashboard.as_of_event_id,
            "projects": dashboard.projects.iter().map(|p| json!({
                "id": p.project_id,
                "name": p.name,
                "open": p.open_work_items,
                "in_progress": p.in_progress_work_items,
                "blocked": p.blocked_work_items,
                "done": p.done_work_items,
                "open_decisions": p.open_decisions,
                "active_sessions": p.active_sessions,
                "plans": p.plans.iter().map(|plan| json!({
                    "id": plan.id,
                    "title": plan.title,
                    "share_done": plan.progress.as_ref().map_or(0.0, |p| p.share_done),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "open_decisions": dashboard.open_decisions.iter().map(|d| {
                decision_json(d, keys.get(&d.work_item_id).map_or("", String::as_str))
            }).collect::<Vec<_>>(),
            "recent_activity": dashboard.recent_activity.iter().map(|e| json!({
                "id": e.id,
                "kind": e.kind,
                "project": project_names.get(e.project_id.as_str()),
                "time": time(&e.time),
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    output::table(
        &[
            "PROJECT",
            "OPEN",
            "IN PROGRESS",
            "BLOCKED",
            "DONE",
            "DECISIONS",
            "SESSIONS",
        ],
        &dashboard
            .projects
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.open_work_items.to_string(),
                    p.in_progress_work_items.to_string(),
                    p.blocked_work_items.to_string(),
                    p.done_work_items.to_string(),
                    p.open_decisions.to_string(),
                    p.active_sessions.to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    if !dashboard.open_decisions.is_empty() {
        println!("\nWaiting for you (oldest first):");
        print_decisions(&dashboard.open_decisions, &keys, false);
    }
    if !dashboard.recent_activity.is_empty() {
        println!("\nRecent activity:");
        output::table(
            &["TIME", "PROJECT", "WHAT"],
            &dashboard
                .recent_activity
                .iter()
                .take(10)
                .map(|event| {
                    vec![
                        time(&event.time),
                        project_names
                            .get(event.project_id.as_str())
                            .map_or_else(String::new, |name| (*name).to_owned()),
                        event.kind.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    Ok(())
}
