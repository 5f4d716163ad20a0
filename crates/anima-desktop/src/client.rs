//! The gRPC client layer: anima-server's services through tonic, with the
//! session token on every call, and the live streams the UI follows.

use anima_client::{Services, Session, connect_lazy};
use anima_proto::v1 as pb;
use std::path::Path;

use tonic::{Request, Streaming};

/// Characters of a document's text the reader shows (the server's most).
const READ_CHARS: i32 = 100_000;

/// A logged-in connection to anima-server.
#[derive(Clone)]
pub struct Client {
    session: Session,
}

pub use anima_client::describe;

impl Client {
    /// Logs in with a username and password; an https:// server is
    /// checked against `ca_cert` if given, else the system's roots.
    pub async fn login(
        server: &str,
        ca_cert: Option<&Path>,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let channel = connect_lazy(server, ca_cert)?;
        Ok(Self {
            session: Session::login(channel, username, password).await?,
        })
    }

    /// A client with a session token from an earlier login (not checked
    /// until the first call).
    pub fn with_token(server: &str, ca_cert: Option<&Path>, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            session: Session::new(connect_lazy(server, ca_cert)?, token)?,
        })
    }

    /// Ends the session on the server: the token is worthless from then
    /// on, wherever a copy was kept.
    pub async fn logout(&self) -> Result<(), tonic::Status> {
        self.session
            .auth()
            .logout(self.request(pb::LogoutRequest {}))
            .await
            .map(drop)
    }

    /// The session token, to remember for the next start.
    pub fn token(&self) -> &str {
        self.session.token()
    }

    fn request<T>(&self, message: T) -> Request<T> {
        self.session.request(message)
    }

    /// Who is logged in.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, tonic::Status> {
        self.session.call(pb::WhoAmIRequest {}).await
    }

    /// Changes the caller's own display name and email.
    pub async fn update_profile(
        &self,
        user_id: &str,
        display_name: &str,
        email: &str,
    ) -> Result<pb::User, tonic::Status> {
        let user = pb::User {
            id: user_id.to_owned(),
            display_name: display_name.to_owned(),
            email: email.to_owned(),
            ..pb::User::default()
        };
        self.update_user(user, &["display_name", "email"]).await
    }

    /// Replaces the caller's own preferences.
    pub async fn update_preferences(
        &self,
        user_id: &str,
        preferences: std::collections::HashMap<String, String>,
    ) -> Result<pb::User, tonic::Status> {
        let user = pb::User {
            id: user_id.to_owned(),
            preferences,
            ..pb::User::default()
        };
        self.update_user(user, &["preferences"]).await
    }

    async fn update_user(&self, user: pb::User, paths: &[&str]) -> Result<pb::User, tonic::Status> {
        self.session
            .call(pb::UpdateUserRequest {
                user: Some(user),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|path| (*path).to_owned()).collect(),
                }),
                password: String::new(),
            })
            .await
    }

    /// Changes the caller's password; the server keeps this session and
    /// ends the others.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), tonic::Status> {
        self.session
            .call(pb::ChangePasswordRequest {
                current_password: current.to_owned(),
                new_password: new.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// The accounts (for the names of message authors), every page.
    pub async fn users(&self) -> Result<Vec<pb::User>, tonic::Status> {
        self.session.list(pb::ListUsersRequest::default()).await
    }

    /// The Akhs (for the names of agent messages and sessions), every page.
    pub async fn akhs(&self) -> Result<Vec<pb::Akh>, tonic::Status> {
        self.session.list(pb::ListAkhsRequest::default()).await
    }

    /// The dashboard snapshot.
    pub async fn dashboard(&self) -> Result<pb::Dashboard, tonic::Status> {
        self.session.call(pb::GetDashboardRequest {}).await
    }

    /// Every project the caller can see.
    pub async fn projects(&self) -> Result<Vec<pb::Project>, tonic::Status> {
        self.session
            .list(pb::ListProjectsRequest {
                status: 0,
                ..Default::default()
            })
            .await
    }

    /// Every work item of a project.
    pub async fn work_items(&self, project_id: &str) -> Result<Vec<pb::WorkItem>, tonic::Status> {
        self.session
            .list(pb::ListWorkItemsRequest {
                project_id: project_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// One work item, as it is now.
    pub async fn work_item(&self, id: &str) -> Result<pb::WorkItem, tonic::Status> {
        self.session
            .call(pb::GetWorkItemRequest {
                id: id.to_owned(),
                ..pb::GetWorkItemRequest::default()
            })
            .await
    }

    /// A work item's description revisions, oldest first.
    pub async fn revisions(
        &self,
        work_item_id: &str,
    ) -> Result<Vec<pb::DescriptionRevision>, tonic::Status> {
        self.session
            .list(pb::GetDescriptionRevisionsRequest {
                work_item_id: work_item_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// Restores an earlier description as a new revision; `base` is the
    /// revision the caller last saw (a newer one refuses).
    pub async fn revert(
        &self,
        work_item_id: &str,
        revision_id: &str,
        base: &str,
    ) -> Result<pb::WorkItem, tonic::Status> {
        self.session
            .call(pb::RevertDescriptionRequest {
                work_item_id: work_item_id.to_owned(),
                revision_id: revision_id.to_owned(),
                base_revision_id: base.to_owned(),
            })
            .await
    }

    /// A work item's agent sessions.
    pub async fn sessions(
        &self,
        work_item_id: &str,
    ) -> Result<Vec<pb::AgentSession>, tonic::Status> {
        self.session
            .list(pb::ListSessionsRequest {
                work_item_id: work_item_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// A project's plans with their progress.
    pub async fn plans(&self, project_id: &str) -> Result<Vec<pb::Plan>, tonic::Status> {
        self.session
            .list(pb::ListPlansRequest {
                project_id: project_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// A project's repositories.
    pub async fn repositories(
        &self,
        project_id: &str,
    ) -> Result<Vec<pb::Repository>, tonic::Status> {
        self.session
            .list(pb::ListRepositoriesRequest {
                project_id: project_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// A project's documents.
    pub async fn documents(&self, project_id: &str) -> Result<Vec<pb::Document>, tonic::Status> {
        self.session
            .list(pb::ListDocumentsRequest {
                project_id: project_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// Documents of every project the user may read that match `query` by
    /// words or by meaning, best first, with the text around the match.
    pub async fn search_documents(&self, query: &str) -> Result<Vec<pb::SearchHit>, tonic::Status> {
        self.session
            .call(pb::SearchDocumentsRequest {
                query: query.to_owned(),
                limit: 50,
                ..Default::default()
            })
            .await
            .map(|found| found.hits)
    }

    /// The start of a document's text, as the library read it.
    pub async fn document_text(&self, id: &str) -> Result<pb::DocumentText, tonic::Status> {
        self.session
            .call(pb::GetDocumentTextRequest {
                id: id.to_owned(),
                max_chars: READ_CHARS,
                ..Default::default()
            })
            .await
    }

    /// A project's members and their roles.
    pub async fn members(&self, project_id: &str) -> Result<Vec<pb::ProjectMember>, tonic::Status> {
        self.session
            .list(pb::ListProjectMembersRequest {
                project_id: project_id.to_owned(),
                ..Default::default()
            })
            .await
    }

    /// The roles members can hold.
    pub async fn roles(&self) -> Result<Vec<pb::Role>, tonic::Status> {
        self.session.list(pb::ListRolesRequest::default()).await
    }

    /// Adds a member to a project, or changes their role.
    pub async fn add_member(
        &self,
        project_id: &str,
        user_id: &str,
        role_id: &str,
    ) -> Result<pb::ProjectMember, tonic::Status> {
        self.session
            .call(pb::AddProjectMemberRequest {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
                role_id: role_id.to_owned(),
            })
            .await
    }

    /// Removes a member from a project.
    pub async fn remove_member(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<(), tonic::Status> {
        self.session
            .call(pb::RemoveProjectMemberRequest {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// The built-in and custom workflows.
    pub async fn workflows(&self) -> Result<Vec<pb::Workflow>, tonic::Status> {
        self.session.list(pb::ListWorkflowsRequest::default()).await
    }

    /// Every published skill version.
    pub async fn skills(&self) -> Result<Vec<pb::Skill>, tonic::Status> {
        self.session.list(pb::ListSkillsRequest::default()).await
    }

    /// Renames a custom workflow and replaces its phases.
    pub async fn update_workflow(
        &self,
        id: &str,
        name: &str,
        phases: Vec<pb::Phase>,
    ) -> Result<pb::Workflow, tonic::Status> {
        self.session
            .call(pb::UpdateWorkflowRequest {
                workflow: Some(pb::Workflow {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    phases,
                    ..pb::Workflow::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into(), "phases".into()],
                }),
            })
            .await
    }

    /// Creates a custom workflow.
    pub async fn create_workflow(
        &self,
        name: &str,
        phases: Vec<pb::Phase>,
    ) -> Result<pb::Workflow, tonic::Status> {
        self.session
            .call(pb::CreateWorkflowRequest {
                name: name.to_owned(),
                phases,
                ..pb::CreateWorkflowRequest::default()
            })
            .await
    }

    /// A work item's whole thread, oldest first.
    pub async fn thread(&self, work_item_id: &str) -> Result<Vec<pb::Message>, tonic::Status> {
        self.session
            .list(pb::GetThreadRequest {
                work_item_id: work_item_id.to_owned(),
                reverse: false,
                ..Default::default()
            })
            .await
    }

    /// Sends an email from the work item's thread (through the project's
    /// mailbox, with the work item's plus-address to reply to).
    pub async fn send_email(
        &self,
        work_item_id: &str,
        to: Vec<String>,
        subject: &str,
        body: &str,
    ) -> Result<pb::Message, tonic::Status> {
        self.session
            .call(pb::PostMessageRequest {
                work_item_id: work_item_id.to_owned(),
                kind: pb::MessageKind::OutboundEmail as i32,
                body: body.to_owned(),
                email: Some(pb::EmailHeaders {
                    to,
                    subject: subject.to_owned(),
                    ..pb::EmailHeaders::default()
                }),
                ..pb::PostMessageRequest::default()
            })
            .await
    }

    /// Posts a human message into a work item's thread.
    pub async fn post(&self, work_item_id: &str, body: &str) -> Result<pb::Message, tonic::Status> {
        self.session
            .call(pb::PostMessageRequest {
                work_item_id: work_item_id.to_owned(),
                kind: pb::MessageKind::Human as i32,
                body: body.to_owned(),
                ..pb::PostMessageRequest::default()
            })
            .await
    }

    /// Answers an open decision.
    pub async fn resolve_decision(
        &self,
        id: &str,
        answer: &str,
    ) -> Result<pb::Decision, tonic::Status> {
        self.session
            .call(pb::ResolveDecisionRequest {
                id: id.to_owned(),
                answer: answer.to_owned(),
            })
            .await
    }

    /// A work item's thread, live, after event `after`.
    pub async fn stream_thread(
        &self,
        work_item_id: &str,
        after: i64,
    ) -> Result<Streaming<pb::ThreadEvent>, tonic::Status> {
        Ok(self
            .session
            .threads()
            .stream_thread(self.request(pb::StreamThreadRequest {
                work_item_id: work_item_id.to_owned(),
                after_event_id: after,
            }))
            .await?
            .into_inner())
    }

    /// Changes to the caller's projects, live, after event `after`.
    pub async fn stream_dashboard(
        &self,
        after: i64,
    ) -> Result<Streaming<pb::DashboardUpdate>, tonic::Status> {
        Ok(self
            .session
            .dashboards()
            .stream_dashboard_updates(self.request(pb::StreamDashboardUpdatesRequest {
                after_event_id: after,
            }))
            .await?
            .into_inner())
    }
}
