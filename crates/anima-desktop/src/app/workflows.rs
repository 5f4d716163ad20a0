//! Workflows: list, create, edit.

use super::*;

impl Controller {
    pub(super) fn show_workflows(&self, workflows: Vec<pb::Workflow>) {
        self.ui(move |window| {
            window.set_workflows(viewmodel::rows(viewmodel::workflow_rows(&workflows)))
        });
    }

    pub(super) async fn load_workflows(self: Arc<Self>) {
        self.show_workflows(
            self.cache
                .list(Kind::Workflow, "")
                .await
                .unwrap_or_default(),
        );
        let Some(client) = self.client() else { return };
        let workflows = match client.workflows().await {
            Ok(workflows) => workflows,
            Err(status) => return self.failed(&status),
        };
        if let Err(err) = self
            .cache
            .replace_records(Kind::Workflow, "", &workflows, workflow_key)
            .await
        {
            tracing::warn!("cannot cache workflows: {err:#}");
        }
        self.show_workflows(workflows);
    }

    pub(super) async fn create_workflow(self: Arc<Self>, name: String, phases: String) {
        let Some(client) = self.client() else { return };
        let created = client
            .create_workflow(name.trim(), viewmodel::parse_phases(&phases))
            .await;
        self.workflow_saved(created).await;
    }

    /// Fills the workflow form with a custom workflow to edit.
    pub(super) async fn edit_workflow(self: Arc<Self>, id: String) {
        let Ok(Some(workflow)) = self.cache.get::<pb::Workflow>(Kind::Workflow, &id).await else {
            return;
        };
        let phases = viewmodel::phases_text(&workflow);
        self.ui(move |window| {
            window.set_workflow_editing(workflow.id.into());
            window.set_workflow_name(workflow.name.into());
            window.set_workflow_phases(phases.into());
        });
    }

    pub(super) async fn save_workflow(self: Arc<Self>, id: String, name: String, phases: String) {
        let Some(client) = self.client() else { return };
        let saved = client
            .update_workflow(&id, name.trim(), viewmodel::parse_phases(&phases))
            .await;
        self.workflow_saved(saved).await;
    }

    /// After a create or save: an empty form and the fresh list, or why not.
    pub(super) async fn workflow_saved(
        self: Arc<Self>,
        outcome: Result<pb::Workflow, tonic::Status>,
    ) {
        match outcome {
            Ok(_) => {
                self.ui(|window| {
                    window.set_notice("".into());
                    window.set_workflow_editing("".into());
                    window.set_workflow_name("".into());
                    window.set_workflow_phases("".into());
                });
                self.load_workflows().await;
            }
            Err(status) => self.failed(&status),
        }
    }
}
