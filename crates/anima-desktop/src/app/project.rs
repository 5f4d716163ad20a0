//! A project: its plans, repositories and work items.

use super::*;

impl Controller {
    pub(super) async fn open_project(self: Arc<Self>, id: String) {
        if let Ok(mut state) = self.state.lock() {
            state.project = Some(id.clone());
        }
        self.ui(|window| window.set_screen(Screen::Project));
        self.show_project(&id).await;
        self.load_project(id).await;
    }

    /// Shows the cached project: its plans, the skills its workflows need,
    /// its repositories, its work items.
    pub(super) async fn show_project(&self, id: &str) {
        let open = self
            .state
            .lock()
            .is_ok_and(|state| state.project.as_deref() == Some(id));
        if !open {
            return;
        }
        let project: Option<pb::Project> = self.cache.get(Kind::Project, id).await.ok().flatten();
        let items: Vec<pb::WorkItem> = self
            .cache
            .list(Kind::WorkItem, id)
            .await
            .unwrap_or_default();
        let plans: Vec<pb::Plan> = self.cache.list(Kind::Plan, id).await.unwrap_or_default();
        let workflows: Vec<pb::Workflow> = self
            .cache
            .list(Kind::Workflow, "")
            .await
            .unwrap_or_default();
        let skills: Vec<pb::Skill> = self.cache.list(Kind::Skill, "").await.unwrap_or_default();
        let repositories: Vec<pb::Repository> = self
            .cache
            .list(Kind::Repository, id)
            .await
            .unwrap_or_default();
        self.ui(move |window| {
            window.set_project_name(project.map(|p| p.name).unwrap_or_default().into());
            window.set_plans(viewmodel::rows(viewmodel::plan_rows(&plans)));
            window.set_skills(viewmodel::rows(viewmodel::project_skill_rows(
                &items, &workflows, &skills,
            )));
            window.set_repositories(viewmodel::rows(viewmodel::repository_rows(&repositories)));
            window.set_work_items(viewmodel::rows(viewmodel::work_item_rows(&items)));
        });
    }

    /// Fetches the project's work items, plans and repositories, the
    /// workflows and the published skills.
    pub(super) async fn load_project(self: Arc<Self>, id: String) {
        let Some(client) = self.client() else { return };
        let fetched = tokio::try_join!(
            client.work_items(&id),
            client.plans(&id),
            client.workflows(),
            client.skills(),
            client.repositories(&id),
        );
        let (items, plans, workflows, skills, repositories) = match fetched {
            Ok(fetched) => fetched,
            Err(status) => return self.failed(&status),
        };
        let cached = async {
            self.cache
                .replace_records(Kind::Plan, &id, &plans, |plan| {
                    (plan.id.clone(), plan.title.to_lowercase())
                })
                .await?;
            self.cache
                .replace_records(Kind::WorkItem, &id, &items, |item| {
                    (item.id.clone(), format!("{:020}", key_number(&item.key)))
                })
                .await?;
            self.cache
                .replace_records(Kind::Workflow, "", &workflows, workflow_key)
                .await?;
            self.cache
                .replace_records(Kind::Repository, &id, &repositories, |repository| {
                    (repository.id.clone(), repository.name.to_lowercase())
                })
                .await?;
            self.cache
                .replace_records(Kind::Skill, "", &skills, |skill| {
                    (
                        format!("{}@{}", skill.name, skill.version),
                        skill.name.clone(),
                    )
                })
                .await
        };
        if let Err(err) = cached.await {
            tracing::warn!("cannot cache the project: {err:#}");
        }
        self.show_project(&id).await;
    }
}
