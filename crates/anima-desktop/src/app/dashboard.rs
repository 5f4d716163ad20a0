//! The dashboard: what needs a human, live.

use super::*;

impl Controller {
    /// Shows the cached dashboard and projects.
    pub(super) async fn show_dashboard(&self) {
        let dashboard: Option<pb::Dashboard> = self
            .cache
            .get(Kind::Dashboard, "dashboard")
            .await
            .ok()
            .flatten();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let names = self.names();
        self.ui(move |window| {
            let dashboard = dashboard.unwrap_or_default();
            window.set_projects(viewmodel::rows(viewmodel::project_rows(
                &projects,
                Some(&dashboard),
            )));
            window.set_decisions(viewmodel::rows(viewmodel::decision_rows(&dashboard)));
            window.set_sessions(viewmodel::rows(viewmodel::session_rows(
                &dashboard.active_sessions,
                &names,
            )));
        });
    }

    /// Refreshes the dashboard whenever something changes in the caller's
    /// projects (the stream only says that something did).
    pub(super) fn follow_dashboard(self: Arc<Self>, after: i64) {
        let Some(client) = self.client() else { return };
        let controller = self.clone();
        let task = self.runtime.spawn(async move {
            let Ok(mut updates) = client.stream_dashboard(after).await else {
                return;
            };
            while let Ok(Some(update)) = updates.message().await {
                if matches!(update.kind, Some(pb::dashboard_update::Kind::Event(_))) {
                    let dashboard = match client.dashboard().await {
                        Ok(dashboard) => dashboard,
                        Err(_) => break,
                    };
                    controller.announce(&dashboard).await;
                    let _ = controller
                        .cache
                        .replace_records(
                            Kind::Dashboard,
                            "",
                            std::slice::from_ref(&dashboard),
                            dashboard_key,
                        )
                        .await;
                    controller.show_dashboard().await;
                }
            }
            // The stream ended: the server went away (offline until it is
            // back), or ended it (follow again, after a breath).
            match client.who_am_i().await {
                Ok(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    controller.spawn(controller.clone().refresh());
                }
                Err(status) => controller.failed(&status),
            }
        });
        if let Ok(mut state) = self.state.lock()
            && let Some(previous) = state.dashboard.replace(task)
        {
            previous.abort();
        }
    }

    /// Tells the user what they asked to hear of: what is new in
    /// `dashboard` against the cached one.
    pub(super) async fn announce(&self, dashboard: &pb::Dashboard) {
        let Ok(Some(before)) = self
            .cache
            .get::<pb::Dashboard>(Kind::Dashboard, "dashboard")
            .await
        else {
            return;
        };
        let preferences = self
            .state
            .lock()
            .map(|state| state.preferences)
            .unwrap_or_default();
        let said = viewmodel::announcements(&before, dashboard, preferences, &self.names());
        if !said.is_empty() {
            self.announcement(said.join(" · "));
        }
    }

    pub(super) fn announcement(&self, text: String) {
        self.ui(move |window| window.set_announcement(text.into()));
    }
}
