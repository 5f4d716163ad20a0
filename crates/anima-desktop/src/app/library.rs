//! The library: documents and search.

use super::*;

impl Controller {
    pub(super) async fn show_library(&self) {
        let documents: Vec<pb::Document> = self
            .cache
            .list_all(Kind::Document)
            .await
            .unwrap_or_default();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let search = self
            .state
            .lock()
            .map(|state| state.search.clone())
            .unwrap_or_default();
        self.ui(move |window| {
            window.set_documents(viewmodel::rows(viewmodel::document_rows(
                &documents, &projects, &search,
            )))
        });
    }

    /// Every project's documents.
    pub(super) async fn load_library(self: Arc<Self>) {
        self.show_library().await;
        let Some(client) = self.client() else { return };
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        for project in projects {
            let documents = match client.documents(&project.id).await {
                Ok(documents) => documents,
                Err(status) => return self.failed(&status),
            };
            if let Err(err) = self
                .cache
                .replace_records(Kind::Document, &project.id, &documents, |document| {
                    (document.id.clone(), document.title.to_lowercase())
                })
                .await
            {
                tracing::warn!("cannot cache documents: {err:#}");
            }
        }
        self.show_library().await;
    }

    pub(super) async fn search(self: Arc<Self>, text: String) {
        if let Ok(mut state) = self.state.lock() {
            state.search = text;
        }
        self.show_library().await;
    }
}
