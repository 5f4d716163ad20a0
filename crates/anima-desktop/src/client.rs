//! The gRPC client layer: anima-server's services through tonic, with the
//! session token on every call, and the live streams the UI follows.

use anima_proto::v1::{
    self as pb, agent_session_service_client::AgentSessionServiceClient,
    akh_service_client::AkhServiceClient, auth_service_client::AuthServiceClient,
    dashboard_service_client::DashboardServiceClient,
    document_service_client::DocumentServiceClient, plan_service_client::PlanServiceClient,
    project_service_client::ProjectServiceClient, skill_service_client::SkillServiceClient,
    team_service_client::TeamServiceClient, thread_service_client::ThreadServiceClient,
    work_item_service_client::WorkItemServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use std::path::Path;

use anyhow::Context;
use tonic::{
    Request, Streaming,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

/// Most records one list call asks for; lists page beyond it.
const PAGE_SIZE: i32 = 500;

/// A logged-in connection to anima-server.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
    token: String,
}

/// A server's answer as the UI shows it: its message, with its reason.
pub fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    match status.get_details_error_info() {
        Some(info) => format!("{} ({})", status.message(), info.reason),
        None => status.message().to_owned(),
    }
}

/// Every page of a list, from the first page token to the last.
async fn all_pages<T, Fetch, Page>(mut fetch: Fetch) -> Result<Vec<T>, tonic::Status>
where
    Fetch: FnMut(String) -> Page,
    Page: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let (items, next) = fetch(page_token).await?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        page_token = next;
    }
}

fn channel(server: &str, ca_cert: Option<&Path>) -> anyhow::Result<Channel> {
    Ok(anima_client::endpoint(server, ca_cert)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy())
}

impl Client {
    /// Logs in with a username and password; an https:// server is
    /// checked against `ca_cert` if given, else the system's roots.
    pub async fn login(
        server: &str,
        ca_cert: Option<&Path>,
        username: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let channel = channel(server, ca_cert)?;
        let token = AuthServiceClient::new(channel.clone())
            .login(pb::LoginRequest {
                username: username.to_owned(),
                password: password.to_owned(),
            })
            .await
            .map_err(|status| anyhow::anyhow!(describe(&status)))?
            .into_inner()
            .token;
        Self::with_token(server, ca_cert, &token)
    }

    /// A client with a session token from an earlier login (not checked
    /// until the first call).
    pub fn with_token(server: &str, ca_cert: Option<&Path>, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            channel: channel(server, ca_cert)?,
            authorization: format!("Bearer {token}")
                .parse()
                .context("the session token is not a valid header value")?,
            token: token.to_owned(),
        })
    }

    /// Ends the session on the server: the token is worthless from then
    /// on, wherever a copy was kept.
    pub async fn logout(&self) -> Result<(), tonic::Status> {
        AuthServiceClient::new(self.channel.clone())
            .logout(self.request(pb::LogoutRequest {}))
            .await
            .map(drop)
    }

    /// The session token, to remember for the next start.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }

    /// Who is logged in.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, tonic::Status> {
        Ok(AuthServiceClient::new(self.channel.clone())
            .who_am_i(self.request(pb::WhoAmIRequest {}))
            .await?
            .into_inner())
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
        Ok(TeamServiceClient::new(self.channel.clone())
            .update_user(self.request(pb::UpdateUserRequest {
                user: Some(user),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|path| (*path).to_owned()).collect(),
                }),
                password: String::new(),
            }))
            .await?
            .into_inner())
    }

    /// Changes the caller's password; the server keeps this session and
    /// ends the others.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), tonic::Status> {
        AuthServiceClient::new(self.channel.clone())
            .change_password(self.request(pb::ChangePasswordRequest {
                current_password: current.to_owned(),
                new_password: new.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// The accounts (for the names of message authors).
    pub async fn users(&self) -> Result<Vec<pb::User>, tonic::Status> {
        Ok(TeamServiceClient::new(self.channel.clone())
            .list_users(self.request(pb::ListUsersRequest {
                page_size: PAGE_SIZE,
                page_token: String::new(),
            }))
            .await?
            .into_inner()
            .users)
    }

    /// The Akhs (for the names of agent messages and sessions).
    pub async fn akhs(&self) -> Result<Vec<pb::Akh>, tonic::Status> {
        Ok(AkhServiceClient::new(self.channel.clone())
            .list_akhs(self.request(pb::ListAkhsRequest {
                page_size: PAGE_SIZE,
                page_token: String::new(),
            }))
            .await?
            .into_inner()
            .akhs)
    }

    /// The dashboard snapshot.
    pub async fn dashboard(&self) -> Result<pb::Dashboard, tonic::Status> {
        Ok(DashboardServiceClient::new(self.channel.clone())
            .get_dashboard(self.request(pb::GetDashboardRequest {}))
            .await?
            .into_inner())
    }

    /// Every project the caller can see.
    pub async fn projects(&self) -> Result<Vec<pb::Project>, tonic::Status> {
        all_pages(|page_token| async {
            let page = ProjectServiceClient::new(self.channel.clone())
                .list_projects(self.request(pb::ListProjectsRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    status: 0,
                }))
                .await?
                .into_inner();
            Ok((page.projects, page.next_page_token))
        })
        .await
    }

    /// Every work item of a project.
    pub async fn work_items(&self, project_id: &str) -> Result<Vec<pb::WorkItem>, tonic::Status> {
        all_pages(|page_token| async {
            let page = WorkItemServiceClient::new(self.channel.clone())
                .list_work_items(self.request(pb::ListWorkItemsRequest {
                    project_id: project_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                    ..pb::ListWorkItemsRequest::default()
                }))
                .await?
                .into_inner();
            Ok((page.work_items, page.next_page_token))
        })
        .await
    }

    /// One work item, as it is now.
    pub async fn work_item(&self, id: &str) -> Result<pb::WorkItem, tonic::Status> {
        Ok(WorkItemServiceClient::new(self.channel.clone())
            .get_work_item(self.request(pb::GetWorkItemRequest {
                id: id.to_owned(),
                ..pb::GetWorkItemRequest::default()
            }))
            .await?
            .into_inner())
    }

    /// A work item's description revisions, oldest first.
    pub async fn revisions(
        &self,
        work_item_id: &str,
    ) -> Result<Vec<pb::DescriptionRevision>, tonic::Status> {
        all_pages(|page_token| async {
            let page = WorkItemServiceClient::new(self.channel.clone())
                .get_description_revisions(self.request(pb::GetDescriptionRevisionsRequest {
                    work_item_id: work_item_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                }))
                .await?
                .into_inner();
            Ok((page.revisions, page.next_page_token))
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
        Ok(WorkItemServiceClient::new(self.channel.clone())
            .revert_description(self.request(pb::RevertDescriptionRequest {
                work_item_id: work_item_id.to_owned(),
                revision_id: revision_id.to_owned(),
                base_revision_id: base.to_owned(),
            }))
            .await?
            .into_inner())
    }

    /// A work item's agent sessions.
    pub async fn sessions(
        &self,
        work_item_id: &str,
    ) -> Result<Vec<pb::AgentSession>, tonic::Status> {
        all_pages(|page_token| async {
            let page = AgentSessionServiceClient::new(self.channel.clone())
                .list_sessions(self.request(pb::ListSessionsRequest {
                    work_item_id: work_item_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                    ..pb::ListSessionsRequest::default()
                }))
                .await?
                .into_inner();
            Ok((page.sessions, page.next_page_token))
        })
        .await
    }

    /// A project's plans with their progress.
    pub async fn plans(&self, project_id: &str) -> Result<Vec<pb::Plan>, tonic::Status> {
        all_pages(|page_token| async {
            let page = PlanServiceClient::new(self.channel.clone())
                .list_plans(self.request(pb::ListPlansRequest {
                    project_id: project_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                }))
                .await?
                .into_inner();
            Ok((page.plans, page.next_page_token))
        })
        .await
    }

    /// A project's documents.
    pub async fn documents(&self, project_id: &str) -> Result<Vec<pb::Document>, tonic::Status> {
        all_pages(|page_token| async {
            let page = DocumentServiceClient::new(self.channel.clone())
                .list_documents(self.request(pb::ListDocumentsRequest {
                    project_id: project_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                    ..pb::ListDocumentsRequest::default()
                }))
                .await?
                .into_inner();
            Ok((page.documents, page.next_page_token))
        })
        .await
    }

    /// A project's members and their roles.
    pub async fn members(&self, project_id: &str) -> Result<Vec<pb::ProjectMember>, tonic::Status> {
        all_pages(|page_token| async {
            let page = ProjectServiceClient::new(self.channel.clone())
                .list_project_members(self.request(pb::ListProjectMembersRequest {
                    project_id: project_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                }))
                .await?
                .into_inner();
            Ok((page.members, page.next_page_token))
        })
        .await
    }

    /// The roles members can hold.
    pub async fn roles(&self) -> Result<Vec<pb::Role>, tonic::Status> {
        all_pages(|page_token| async {
            let page = TeamServiceClient::new(self.channel.clone())
                .list_roles(self.request(pb::ListRolesRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                }))
                .await?
                .into_inner();
            Ok((page.roles, page.next_page_token))
        })
        .await
    }

    /// Adds a member to a project, or changes their role.
    pub async fn add_member(
        &self,
        project_id: &str,
        user_id: &str,
        role_id: &str,
    ) -> Result<pb::ProjectMember, tonic::Status> {
        Ok(ProjectServiceClient::new(self.channel.clone())
            .add_project_member(self.request(pb::AddProjectMemberRequest {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
                role_id: role_id.to_owned(),
            }))
            .await?
            .into_inner())
    }

    /// Removes a member from a project.
    pub async fn remove_member(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<(), tonic::Status> {
        ProjectServiceClient::new(self.channel.clone())
            .remove_project_member(self.request(pb::RemoveProjectMemberRequest {
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
            }))
            .await?;
        Ok(())
    }

    /// The built-in and custom workflows.
    pub async fn workflows(&self) -> Result<Vec<pb::Workflow>, tonic::Status> {
        all_pages(|page_token| async {
            let page = WorkflowServiceClient::new(self.channel.clone())
                .list_workflows(self.request(pb::ListWorkflowsRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                }))
                .await?
                .into_inner();
            Ok((page.workflows, page.next_page_token))
        })
        .await
    }

    /// Every published skill version.
    pub async fn skills(&self) -> Result<Vec<pb::Skill>, tonic::Status> {
        all_pages(|page_token| async {
            let page = SkillServiceClient::new(self.channel.clone())
                .list_skills(self.request(pb::ListSkillsRequest {
                    page_size: PAGE_SIZE,
                    page_token,
                    ..pb::ListSkillsRequest::default()
                }))
                .await?
                .into_inner();
            Ok((page.skills, page.next_page_token))
        })
        .await
    }

    /// Renames a custom workflow and replaces its phases.
    pub async fn update_workflow(
        &self,
        id: &str,
        name: &str,
        phases: Vec<pb::Phase>,
    ) -> Result<pb::Workflow, tonic::Status> {
        Ok(WorkflowServiceClient::new(self.channel.clone())
            .update_workflow(self.request(pb::UpdateWorkflowRequest {
                workflow: Some(pb::Workflow {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    phases,
                    ..pb::Workflow::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into(), "phases".into()],
                }),
            }))
            .await?
            .into_inner())
    }

    /// Creates a custom workflow.
    pub async fn create_workflow(
        &self,
        name: &str,
        phases: Vec<pb::Phase>,
    ) -> Result<pb::Workflow, tonic::Status> {
        Ok(WorkflowServiceClient::new(self.channel.clone())
            .create_workflow(self.request(pb::CreateWorkflowRequest {
                name: name.to_owned(),
                phases,
                ..pb::CreateWorkflowRequest::default()
            }))
            .await?
            .into_inner())
    }

    /// A work item's whole thread, oldest first.
    pub async fn thread(&self, work_item_id: &str) -> Result<Vec<pb::Message>, tonic::Status> {
        all_pages(|page_token| async {
            let page = ThreadServiceClient::new(self.channel.clone())
                .get_thread(self.request(pb::GetThreadRequest {
                    work_item_id: work_item_id.to_owned(),
                    page_size: PAGE_SIZE,
                    page_token,
                    reverse: false,
                }))
                .await?
                .into_inner();
            Ok((page.messages, page.next_page_token))
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
        Ok(ThreadServiceClient::new(self.channel.clone())
            .post_message(self.request(pb::PostMessageRequest {
                work_item_id: work_item_id.to_owned(),
                kind: pb::MessageKind::OutboundEmail as i32,
                body: body.to_owned(),
                email: Some(pb::EmailHeaders {
                    to,
                    subject: subject.to_owned(),
                    ..pb::EmailHeaders::default()
                }),
                ..pb::PostMessageRequest::default()
            }))
            .await?
            .into_inner())
    }

    /// Posts a human message into a work item's thread.
    pub async fn post(&self, work_item_id: &str, body: &str) -> Result<pb::Message, tonic::Status> {
        Ok(ThreadServiceClient::new(self.channel.clone())
            .post_message(self.request(pb::PostMessageRequest {
                work_item_id: work_item_id.to_owned(),
                kind: pb::MessageKind::Human as i32,
                body: body.to_owned(),
                ..pb::PostMessageRequest::default()
            }))
            .await?
            .into_inner())
    }

    /// Answers an open decision.
    pub async fn resolve_decision(
        &self,
        id: &str,
        answer: &str,
    ) -> Result<pb::Decision, tonic::Status> {
        Ok(ThreadServiceClient::new(self.channel.clone())
            .resolve_decision(self.request(pb::ResolveDecisionRequest {
                id: id.to_owned(),
                answer: answer.to_owned(),
            }))
            .await?
            .into_inner())
    }

    /// A work item's thread, live, after event `after`.
    pub async fn stream_thread(
        &self,
        work_item_id: &str,
        after: i64,
    ) -> Result<Streaming<pb::ThreadEvent>, tonic::Status> {
        Ok(ThreadServiceClient::new(self.channel.clone())
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
        Ok(DashboardServiceClient::new(self.channel.clone())
            .stream_dashboard_updates(self.request(pb::StreamDashboardUpdatesRequest {
                after_event_id: after,
            }))
            .await?
            .into_inner())
    }
}
