//! `anima plan …`: plans and their progress.

use anima_proto::v1 as pb;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{Changes, project_id, time, workflow_id};

/// `anima plan …`
#[derive(Subcommand)]
pub enum PlanCommand {
    /// List the plans of a project with their progress.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
    },
    /// Create a plan.
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Project id or name.
        #[arg(long, short, env = "ANIMA_PROJECT")]
        project: String,
        /// Plan title.
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Workflow id or name whose phases break down the progress
        /// [default: Standard].
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Show a plan and its progress per phase.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
    },
    /// Have anima-ai compare the plan with its work items (reasoning tier).
    Gap {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
    },
    /// Change a plan.
    Update {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Workflow id or name.
        #[arg(long)]
        workflow: Option<String>,
    },
    /// Delete a plan; its work items stay, without a plan.
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Plan id.
        plan: String,
    },
}

fn plan_json(plan: &pb::Plan) -> Value {
    let progress = plan.progress.clone().unwrap_or_default();
    json!({
        "id": plan.id,
        "project_id": plan.project_id,
        "title": plan.title,
        "description": plan.description,
        "workflow_id": plan.workflow_id,
        "total": progress.total,
        "done": progress.done,
        "share_done": progress.share_done,
        "phases": progress.phases.iter().map(|phase| json!({
            "id": phase.phase_id,
            "name": phase.phase_name,
            "total": phase.total,
            "done": phase.done,
        })).collect::<Vec<_>>(),
        "created": time(&plan.create_time),
    })
}

fn plan_row(plan: &pb::Plan) -> Vec<String> {
    let progress = plan.progress.clone().unwrap_or_default();
    vec![
        plan.id.clone(),
        plan.title.clone(),
        format!("{}/{}", progress.done, progress.total),
        format!("{:.0}%", progress.share_done * 100.0),
    ]
}

const PLAN_HEADER: &[&str] = &["ID", "TITLE", "DONE", "SHARE"];

output::impl_row!(pb::Plan, PLAN_HEADER, plan_json, plan_row);

fn print_plan(plan: &pb::Plan, json: bool) {
    if json {
        output::json(&plan_json(plan));
        return;
    }
    output::table(PLAN_HEADER, &[plan_row(plan)]);
    let phases = plan.progress.clone().unwrap_or_default().phases;
    if !phases.is_empty() {
        println!();
        output::table(
            &["PHASE", "DONE", "ITEMS"],
            &phases
                .iter()
                .map(|phase| {
                    vec![
                        phase.phase_name.clone(),
                        phase.done.to_string(),
                        phase.total.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        );
    }
    if !plan.description.is_empty() {
        println!("\n{}", output::safe(&plan.description));
    }
}

/// `anima plan …`
pub async fn plan(command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::List { global, project } => {
            let session = session_for(&global).await?;
            let project_id = project_id(&session, &project).await?;
            let plans = session
                .list(pb::ListPlansRequest {
                    project_id: project_id.clone(),
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &plans);
        }
        PlanCommand::Create {
            global,
            project,
            title,
            description,
            workflow,
        } => {
            let session = session_for(&global).await?;
            let workflow_id = match workflow {
                Some(workflow) => workflow_id(&session, &workflow).await?,
                None => String::new(),
            };
            let plan = session
                .call(pb::CreatePlanRequest {
                    project_id: project_id(&session, &project).await?,
                    title,
                    description,
                    workflow_id,
                })
                .await?;
            print_plan(&plan, global.json);
        }
        PlanCommand::Show { global, plan } => {
            let session = session_for(&global).await?;
            let plan = session.call(pb::GetPlanRequest { id: plan }).await?;
            print_plan(&plan, global.json);
        }
        PlanCommand::Gap { global, plan } => {
            let session = session_for(&global).await?;
            let report = session
                .call(pb::AnalyzePlanGapRequest { plan_id: plan })
                .await?;
            if global.json {
                output::json(&serde_json::json!({
                    "gap_report": report.gap_report,
                    "model": report.model,
                    "tier": report.tier,
                }));
            } else {
                println!("{}", output::safe(report.gap_report.trim_end()));
                println!(
                    "\n(analysed {})",
                    super::answered_by(&report.model, report.tier)
                );
            }
        }
        PlanCommand::Update {
            global,
            plan,
            title,
            description,
            workflow,
        } => {
            let session = session_for(&global).await?;
            let mut wanted = pb::Plan {
                id: plan,
                ..Default::default()
            };
            let workflow = match workflow {
                Some(workflow) => Some(workflow_id(&session, &workflow).await?),
                None => None,
            };
            let mut changes = Changes::default();
            changes.set("title", &mut wanted.title, title);
            changes.set("description", &mut wanted.description, description);
            changes.set("workflow_id", &mut wanted.workflow_id, workflow);
            let update_mask = changes.mask("--title, --description or --workflow")?;
            let plan = session
                .call(pb::UpdatePlanRequest {
                    plan: Some(wanted),
                    update_mask,
                })
                .await?;
            print_plan(&plan, global.json);
        }
        PlanCommand::Delete { global, plan } => {
            let session = session_for(&global).await?;
            session
                .call(pb::DeletePlanRequest { id: plan.clone() })
                .await?;
            println!("deleted plan {plan}");
        }
    }
    Ok(())
}
