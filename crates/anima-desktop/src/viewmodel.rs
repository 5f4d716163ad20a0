//! View models: the server's records (live or cached) turned into the
//! rows the Slint screens show. Pure functions, testable without a window.

use std::collections::HashMap;

use anima_proto::v1 as pb;
use prost_types::Timestamp;
use slint::{ModelRc, SharedString, VecModel};

use crate::ui::{DecisionRow, MessageRow, ProjectRow, SessionRow, WorkItemRow};

/// Names the UI shows for ids it knows (users, Akhs, projects).
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// User id → display name.
    pub users: HashMap<String, String>,
    /// Akh id → name.
    pub akhs: HashMap<String, String>,
}

fn model<T: Clone + 'static>(rows: Vec<T>) -> ModelRc<T> {
    ModelRc::new(VecModel::from(rows))
}

fn count(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The project rows: the dashboard's per-project counts where it has
/// them, else the project's own stats; by name.
pub fn project_rows(
    projects: &[pb::Project],
    dashboard: Option<&pb::Dashboard>,
) -> Vec<ProjectRow> {
    let summaries: HashMap<&str, &pb::ProjectSummary> = dashboard
        .map(|dashboard| {
            dashboard
                .projects
                .iter()
                .map(|summary| (summary.project_id.as_str(), summary))
                .collect()
        })
        .unwrap_or_default();
    let mut rows: Vec<ProjectRow> = projects
        .iter()
        .map(|project| {
            let stats = project.stats.unwrap_or_default();
            let summary = summaries.get(project.id.as_str());
            ProjectRow {
                id: project.id.as_str().into(),
                name: project.name.as_str().into(),
                status: match pb::ProjectStatus::try_from(project.status) {
                    Ok(pb::ProjectStatus::Archived) => "archived",
                    _ => "active",
                }
                .into(),
                open: count(summary.map_or(stats.open_work_items, |s| s.open_work_items)),
                in_progress: count(summary.map_or(0, |s| s.in_progress_work_items)),
                blocked: count(summary.map_or(0, |s| s.blocked_work_items)),
                done: count(summary.map_or(0, |s| s.done_work_items)),
                sessions: count(summary.map_or(stats.active_sessions, |s| s.active_sessions)),
                decisions: count(summary.map_or(stats.open_decisions, |s| s.open_decisions)),
            }
        })
        .collect();
    rows.sort_by_key(|row| row.name.to_lowercase());
    rows
}

/// The open decisions, oldest first, each with the one input it needs.
pub fn decision_rows(dashboard: &pb::Dashboard) -> Vec<DecisionRow> {
    let projects: HashMap<&str, &str> = dashboard
        .projects
        .iter()
        .map(|summary| (summary.project_id.as_str(), summary.name.as_str()))
        .collect();
    dashboard
        .open_decisions
        .iter()
        .map(|decision| DecisionRow {
            id: decision.id.as_str().into(),
            question: decision.question.as_str().into(),
            input_label: if decision.input_label.is_empty() {
                "Your answer"
            } else {
                decision.input_label.as_str()
            }
            .into(),
            choices: model(
                decision
                    .choices
                    .iter()
                    .map(|choice| SharedString::from(choice.as_str()))
                    .collect(),
            ),
            project: projects
                .get(decision.project_id.as_str())
                .copied()
                .unwrap_or_default()
                .into(),
        })
        .collect()
}

/// The agent sessions at work.
pub fn session_rows(dashboard: &pb::Dashboard, names: &Names) -> Vec<SessionRow> {
    dashboard
        .active_sessions
        .iter()
        .map(|session| SessionRow {
            id: session.id.as_str().into(),
            work_item_id: session.work_item_id.as_str().into(),
            status: session_status(session.status).into(),
            akh: names
                .akhs
                .get(&session.akh_id)
                .cloned()
                .unwrap_or_else(|| "an Akh".to_owned())
                .into(),
        })
        .collect()
}

fn session_status(raw: i32) -> &'static str {
    match pb::SessionStatus::try_from(raw) {
        Ok(pb::SessionStatus::Provisioning) => "provisioning",
        Ok(pb::SessionStatus::Running) => "running",
        Ok(pb::SessionStatus::Paused) => "paused",
        Ok(pb::SessionStatus::Completed) => "completed",
        Ok(pb::SessionStatus::Failed) => "failed",
        _ => "unknown",
    }
}

/// A work item status as shown.
pub fn work_item_status(raw: i32) -> &'static str {
    match pb::WorkItemStatus::try_from(raw) {
        Ok(pb::WorkItemStatus::Open) => "open",
        Ok(pb::WorkItemStatus::InProgress) => "in progress",
        Ok(pb::WorkItemStatus::Blocked) => "blocked",
        Ok(pb::WorkItemStatus::Done) => "done",
        Ok(pb::WorkItemStatus::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

/// The number in a `WI-<n>` key, for ordering.
fn key_number(key: &str) -> u64 {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A project's work items, by key.
pub fn work_item_rows(items: &[pb::WorkItem]) -> Vec<WorkItemRow> {
    let mut sorted: Vec<&pb::WorkItem> = items.iter().collect();
    sorted.sort_by_key(|item| key_number(&item.key));
    sorted
        .into_iter()
        .map(|item| WorkItemRow {
            id: item.id.as_str().into(),
            key: item.key.as_str().into(),
            title: item.title.as_str().into(),
            status: work_item_status(item.status).into(),
            phase: item.phase_id.as_str().into(),
        })
        .collect()
}

/// Who wrote a message, as shown.
fn author(actor: Option<&pb::Actor>, names: &Names) -> String {
    use pb::actor::Kind;
    match actor.and_then(|actor| actor.kind.as_ref()) {
        Some(Kind::UserId(id)) => names
            .users
            .get(id)
            .cloned()
            .unwrap_or_else(|| "someone".into()),
        Some(Kind::Akh(akh)) => names
            .akhs
            .get(&akh.akh_id)
            .cloned()
            .unwrap_or_else(|| "an Akh".into()),
        Some(Kind::Service(name)) => name.clone(),
        Some(Kind::Email(address)) => address.clone(),
        None => "Anima".into(),
    }
}

fn message_kind(raw: i32) -> &'static str {
    match pb::MessageKind::try_from(raw) {
        Ok(pb::MessageKind::Akh) => "akh",
        Ok(pb::MessageKind::InboundEmail | pb::MessageKind::OutboundEmail) => "email",
        Ok(pb::MessageKind::System) => "system",
        _ => "human",
    }
}

/// A thread's messages in sequence order.
pub fn message_rows(messages: &[pb::Message], names: &Names) -> Vec<MessageRow> {
    let mut sorted: Vec<&pb::Message> = messages.iter().collect();
    sorted.sort_by_key(|message| message.sequence);
    sorted
        .into_iter()
        .map(|message| MessageRow {
            author: author(message.author.as_ref(), names).into(),
            kind: message_kind(message.kind).into(),
            body: message.body.as_str().into(),
            time: message
                .create_time
                .as_ref()
                .map(short_time)
                .unwrap_or_default()
                .into(),
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn short_time(timestamp: &Timestamp) -> String {
    let days = timestamp.seconds.div_euclid(86_400);
    let seconds = timestamp.seconds.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        seconds / 3_600,
        seconds % 3_600 / 60
    )
}

/// Rows as a Slint model.
pub fn rows<T: Clone + 'static>(rows: Vec<T>) -> ModelRc<T> {
    model(rows)
}

#[cfg(test)]
mod tests {
    use slint::Model;

    use super::*;

    fn project(id: &str, name: &str, open: i64) -> pb::Project {
        pb::Project {
            id: id.into(),
            name: name.into(),
            status: pb::ProjectStatus::Active as i32,
            stats: Some(pb::ProjectStats {
                open_work_items: open,
                ..pb::ProjectStats::default()
            }),
            ..pb::Project::default()
        }
    }

    #[test]
    fn projects_take_the_dashboards_counts_and_sort_by_name() {
        let dashboard = pb::Dashboard {
            projects: vec![pb::ProjectSummary {
                project_id: "b".into(),
                name: "beta".into(),
                open_work_items: 7,
                blocked_work_items: 2,
                active_sessions: 1,
                open_decisions: 3,
                ..pb::ProjectSummary::default()
            }],
            ..pb::Dashboard::default()
        };
        let rows = project_rows(
            &[project("b", "beta", 1), project("a", "Alpha", 4)],
            Some(&dashboard),
        );
        let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "beta"]);
        assert_eq!(
            (rows[0].open, rows[0].sessions),
            (4, 0),
            "stats without a summary"
        );
        assert_eq!(
            (
                rows[1].open,
                rows[1].blocked,
                rows[1].sessions,
                rows[1].decisions
            ),
            (7, 2, 1, 3)
        );
    }

    #[test]
    fn decisions_carry_their_one_input() {
        let dashboard = pb::Dashboard {
            open_decisions: vec![
                pb::Decision {
                    id: "d1".into(),
                    project_id: "p".into(),
                    question: "Ship on Friday?".into(),
                    choices: vec!["yes".into(), "no".into()],
                    ..pb::Decision::default()
                },
                pb::Decision {
                    id: "d2".into(),
                    question: "Which budget?".into(),
                    ..pb::Decision::default()
                },
            ],
            projects: vec![pb::ProjectSummary {
                project_id: "p".into(),
                name: "Shop".into(),
                ..pb::ProjectSummary::default()
            }],
            ..pb::Dashboard::default()
        };
        let rows = decision_rows(&dashboard);
        assert_eq!(rows[0].project, "Shop");
        assert_eq!(rows[0].choices.row_count(), 2);
        assert_eq!(rows[1].choices.row_count(), 0);
        assert_eq!(rows[1].input_label, "Your answer");
    }

    #[test]
    fn messages_show_who_wrote_them_in_sequence() {
        let names = Names {
            users: [("u1".to_owned(), "Ada".to_owned())].into(),
            akhs: [("k1".to_owned(), "Thoth".to_owned())].into(),
        };
        let message = |sequence, kind: pb::MessageKind, author| pb::Message {
            sequence,
            kind: kind as i32,
            author: Some(pb::Actor { kind: Some(author) }),
            body: format!("#{sequence}"),
            create_time: Some(Timestamp {
                seconds: 1_764_028_800 + 3_661,
                nanos: 0,
            }),
            ..pb::Message::default()
        };
        let rows = message_rows(
            &[
                message(
                    2,
                    pb::MessageKind::Akh,
                    pb::actor::Kind::Akh(pb::AkhActor {
                        akh_id: "k1".into(),
                        ..pb::AkhActor::default()
                    }),
                ),
                message(
                    1,
                    pb::MessageKind::Human,
                    pb::actor::Kind::UserId("u1".into()),
                ),
                message(
                    3,
                    pb::MessageKind::InboundEmail,
                    pb::actor::Kind::Email("c@example.org".into()),
                ),
            ],
            &names,
        );
        let shown: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|row| (row.body.as_str(), row.author.as_str(), row.kind.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("#1", "Ada", "human"),
                ("#2", "Thoth", "akh"),
                ("#3", "c@example.org", "email")
            ]
        );
        assert_eq!(rows[0].time, "2025-11-25 01:01");
    }

    #[test]
    fn work_items_sort_by_key_number() {
        let item = |key: &str| pb::WorkItem {
            key: key.into(),
            phase_id: "analysis".into(),
            status: pb::WorkItemStatus::InProgress as i32,
            ..pb::WorkItem::default()
        };
        let rows = work_item_rows(&[item("WI-10"), item("WI-2"), item("WI-1")]);
        let keys: Vec<&str> = rows.iter().map(|row| row.key.as_str()).collect();
        assert_eq!(keys, ["WI-1", "WI-2", "WI-10"]);
        assert_eq!(rows[0].status, "in progress");
    }
}
