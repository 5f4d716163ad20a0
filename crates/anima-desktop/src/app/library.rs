//! The library: documents, search and the reader. A search shows the
//! cached documents whose title matches at once, then, once typing
//! pauses, what the server finds in every project by words and by
//! meaning, with the text around each match (offline, titles only). A
//! document opens on its text as the library read it.

use super::*;

/// The longest query the server searches for.
const MAX_QUERY_CHARS: usize = 500;
/// How long typing pauses before the server is asked: one search per
/// query, not per keystroke (searches are metered per user).
const SEARCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(300);

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
        tokio::time::sleep(SEARCH_PAUSE).await;
        // Typing went on: the newer query searches instead.
        if !self.state.lock().is_ok_and(|state| state.search == text) {
            return;
        }
        let hits = match client.search_documents(query).await {
            Ok(hits) => hits,
            Err(status) => return self.failed(&status),
        };
        if let Ok(mut state) = self.state.lock() {
            // A later search may have replaced this one meanwhile.
            if state.search != text {
                return;
            }
            state.search_hits = Some((text, hits));
        }
        self.show_library().await;
    }

    /// Shows a document's text in place of the list.
    pub(super) async fn open_document(self: Arc<Self>, id: String) {
        let Some(client) = self.client() else {
            return self.notice("The document's text comes from the server; it is not reachable.");
        };
        let text = match client.document_text(&id).await {
            Ok(text) => text,
            Err(status) => return self.failed(&status),
        };
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let reading = viewmodel::document_text(&text, &projects);
        self.ui(move |window| window.set_reading(reading));
    }

    /// Back from the reader to the list.
    pub(super) async fn close_document(self: Arc<Self>) {
        self.ui(|window| window.set_reading(DocumentText::default()));
    }
}
