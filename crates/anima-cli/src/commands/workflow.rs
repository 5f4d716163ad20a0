//! `anima workflow …`: workflow templates.

use anima_client::Services;
use anima_proto::v1 as pb;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::{all_workflows, workflow_id};

/// `anima workflow …`
#[derive(Subcommand)]
pub enum WorkflowCommand {
    /// List the built-in and custom workflows.
    List {
        #[command(flatten)]
        global: GlobalArgs,
    },
    /// Show a workflow's phases and the skills each requires.
    Show {
        #[command(flatten)]
        global: GlobalArgs,
        /// Workflow id or name.
        workflow: String,
    },
    /// Create a custom workflow (server administrators).
    Create {
        #[command(flatten)]
        global: GlobalArgs,
        /// Its name.
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A phase as `Name` or `Name:skill,skill@version`; repeat in
        /// order. A skill without a version gets its newest one.
        #[arg(long = "phase")]
        phases: Vec<String>,
        /// Copy the phases of this workflow (id or name) instead.
        #[arg(long, conflicts_with = "phases")]
        copy_from: Option<String>,
    },
    /// Delete a custom workflow nothing uses (server administrators).
    Delete {
        #[command(flatten)]
        global: GlobalArgs,
        /// Workflow id or name.
        workflow: String,
    },
}

fn workflow_json(workflow: &pb::Workflow) -> Value {
    json!({
        "id": workflow.id,
        "name": workflow.name,
        "description": workflow.description,
        "builtin": workflow.builtin,
        "phases": workflow.phases.iter().map(|phase| json!({
            "id": phase.id,
            "name": phase.name,
            "required_skills": phase.required_skills.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn phases_line(workflow: &pb::Workflow) -> String {
    workflow
        .phases
        .iter()
        .map(|phase| phase.name.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

fn print_workflow(workflow: &pb::Workflow, json: bool) {
    if json {
        output::json(&workflow_json(workflow));
        return;
    }
    println!(
        "{} ({}){}",
        workflow.name,
        workflow.id,
        if workflow.builtin { ", built-in" } else { "" }
    );
    if !workflow.description.is_empty() {
        println!("{}", workflow.description);
    }
    println!();
    output::table(
        &["PHASE ID", "NAME", "REQUIRED SKILLS"],
        &workflow
            .phases
            .iter()
            .map(|phase| {
                vec![
                    phase.id.clone(),
                    phase.name.clone(),
                    phase
                        .required_skills
                        .iter()
                        .map(|skill| skill.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect::<Vec<_>>(),
    );
}

/// `anima workflow …`
pub async fn workflow(command: WorkflowCommand) -> anyhow::Result<()> {
    match command {
        WorkflowCommand::List { global } => {
            let session = session_for(&global).await?;
            let workflows = all_workflows(&session).await?;
            if global.json {
                output::json(&Value::Array(workflows.iter().map(workflow_json).collect()));
            } else {
                output::table(
                    &["ID", "NAME", "BUILTIN", "PHASES"],
                    &workflows
                        .iter()
                        .map(|workflow| {
                            vec![
                                workflow.id.clone(),
                                workflow.name.clone(),
                                if workflow.builtin { "yes" } else { "" }.into(),
                                phases_line(workflow),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        WorkflowCommand::Show { global, workflow } => {
            let session = session_for(&global).await?;
            let id = workflow_id(&session, &workflow).await?;
            let workflow = session.call(pb::GetWorkflowRequest { id }).await?;
            print_workflow(&workflow, global.json);
        }
        WorkflowCommand::Create {
            global,
            name,
            description,
            phases,
            copy_from,
        } => {
            let session = session_for(&global).await?;
            let copy_from_id = match copy_from {
                Some(source) => workflow_id(&session, &source).await?,
                None => String::new(),
            };
            let workflow = session
                .workflows()
                .create_workflow(
                    session.request(pb::CreateWorkflowRequest {
                        name,
                        description,
                        phases: phases
                            .iter()
                            .map(|raw| anima_proto::phase::parse(raw))
                            .collect(),
                        copy_from_id,
                    }),
                )
                .await?
                .into_inner();
            print_workflow(&workflow, global.json);
        }
        WorkflowCommand::Delete { global, workflow } => {
            let session = session_for(&global).await?;
            let id = workflow_id(&session, &workflow).await?;
            session
                .call(pb::DeleteWorkflowRequest { id: id.clone() })
                .await?;
            println!("deleted workflow {id}");
        }
    }
    Ok(())
}
