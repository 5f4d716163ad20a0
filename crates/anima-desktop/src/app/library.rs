//! The library: documents and search. A search shows the cached
//! documents whose title matches at once, then what the server finds in
//! titles and text, with the text around each match (offline, titles
//! only).

use super::*;

/// The longest query the server searches for.
const MAX_QUERY_CHARS: usize = 500;

impl Controller {
    pub(super) async fn show_library(&self) {
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let (search, hits) = self
            .state
            .lock()
            .map(|state| {
                let hits = state
                    .search_hits
                    .as_ref()
                    .filter(|(query, _)| *query == state.search)
                    .map(|(_, hits)| hits.clone());
                (state.search.clone(), hits)
            })
            .unwrap_or_default();
        let rows = match hits {
            Some(hits) => viewmodel::search_rows(&hits, &projects),
            None => {
                let documents: Vec<pb::Document> = self
                    .cache
                    .list_all(Kind::Document)
                    .await
                    .unwrap_or_default();
                viewmodel::document_rows(&documents, &projects, &search)
            }
        };
        self.ui(move |window| window.set_documents(viewmodel::rows(rows)));
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
            state.search = text.clone();
        }
        self.show_library().await;
        let query = text.trim();
        if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
            return;
        }
        let Some(client) = self.client() else { return };
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let mut hits = Vec::new();
        for project in &projects {
            match client.search_documents(&project.id, query).await {
                Ok(found) => hits.extend(found),
                Err(status) => return self.failed(&status),
            }
        }
        if let Ok(mut state) = self.state.lock() {
            // A later search may have replaced this one meanwhile.
            if state.search != text {
                return;
            }
            state.search_hits = Some((text, hits));
        }
        self.show_library().await;
    }
}
