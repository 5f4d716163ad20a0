//! A signed-in connection: the channel, the bearer token sent with every
//! call, a client for each public service, and paging.

use std::path::Path;

use anima_core::{document::MAX_UPLOAD_CHUNK, skill::MAX_SKILL_BYTES};
use anima_proto::v1::{
    self as pb, agent_session_service_client::AgentSessionServiceClient,
    akh_service_client::AkhServiceClient, auth_service_client::AuthServiceClient,
    dashboard_service_client::DashboardServiceClient,
    document_service_client::DocumentServiceClient, mailbox_service_client::MailboxServiceClient,
    plan_service_client::PlanServiceClient, project_service_client::ProjectServiceClient,
    repository_service_client::RepositoryServiceClient, skill_service_client::SkillServiceClient,
    team_service_client::TeamServiceClient, thread_service_client::ThreadServiceClient,
    work_item_service_client::WorkItemServiceClient,
    workflow_service_client::WorkflowServiceClient,
};
use anyhow::Context;
use futures_util::{Stream, StreamExt};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};

/// Room beside a document's or skill's bytes for the rest of the message.
const MESSAGE_ROOM: usize = 4 * 1024 * 1024;

/// Rows a client asks for per page when it wants every row.
pub const PAGE_SIZE: i32 = 500;

/// A channel to anima-server and the session token to send on it.
#[derive(Clone)]
pub struct Session {
    channel: Channel,
    authorization: MetadataValue<Ascii>,
    token: String,
}

impl Session {
    /// A session over `channel` with a token from an earlier login (not
    /// checked until the first call).
    pub fn new(channel: Channel, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            channel,
            authorization: format!("Bearer {token}")
                .parse()
                .context("the session token is not a valid header value")?,
            token: token.to_owned(),
        })
    }

    /// Logs in with a username and password over `channel`.
    pub async fn login(channel: Channel, username: &str, password: &str) -> anyhow::Result<Self> {
        let token = AuthServiceClient::new(channel.clone())
            .login(pb::LoginRequest {
                username: username.to_owned(),
                password: password.to_owned(),
            })
            .await
            .map_err(|status| anyhow::anyhow!(crate::describe(&status)))?
            .into_inner()
            .token;
        Self::new(channel, &token)
    }

    /// The session token, to remember for the next start.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `message` with the session's bearer token.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        request
    }
}

/// A client for each public service, over one channel. Implemented for
/// a [`Session`] and for a bare [`Channel`] (whose caller attaches its own
/// metadata), so every client builds the stubs, with their message limits,
/// in this one place.
pub trait Services {
    /// The channel every stub shares (cheap to clone: it is a handle).
    fn channel(&self) -> Channel;

    /// AuthService: who am I, logout, password.
    fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel())
    }

    /// TeamService: users and roles.
    fn team(&self) -> TeamServiceClient<Channel> {
        TeamServiceClient::new(self.channel())
    }

    /// ProjectService: projects and members.
    fn projects(&self) -> ProjectServiceClient<Channel> {
        ProjectServiceClient::new(self.channel())
    }

    /// PlanService.
    fn plans(&self) -> PlanServiceClient<Channel> {
        PlanServiceClient::new(self.channel())
    }

    /// WorkItemService.
    fn work_items(&self) -> WorkItemServiceClient<Channel> {
        WorkItemServiceClient::new(self.channel())
    }

    /// WorkflowService.
    fn workflows(&self) -> WorkflowServiceClient<Channel> {
        WorkflowServiceClient::new(self.channel())
    }

    /// AkhService.
    fn akhs(&self) -> AkhServiceClient<Channel> {
        AkhServiceClient::new(self.channel())
    }

    /// ThreadService: messages, decisions, the live thread.
    fn threads(&self) -> ThreadServiceClient<Channel> {
        ThreadServiceClient::new(self.channel())
    }

    /// DashboardService.
    fn dashboards(&self) -> DashboardServiceClient<Channel> {
        DashboardServiceClient::new(self.channel())
    }

    /// MailboxService: mailboxes and the mail waiting for a human.
    fn mailboxes(&self) -> MailboxServiceClient<Channel> {
        MailboxServiceClient::new(self.channel())
    }

    /// AgentSessionService.
    fn sessions(&self) -> AgentSessionServiceClient<Channel> {
        AgentSessionServiceClient::new(self.channel())
    }

    /// RepositoryService: a project's repositories.
    fn repositories(&self) -> RepositoryServiceClient<Channel> {
        RepositoryServiceClient::new(self.channel())
    }

    /// DocumentService, taking messages as large as the largest document.
    fn documents(&self) -> DocumentServiceClient<Channel> {
        DocumentServiceClient::new(self.channel())
            .max_decoding_message_size(MAX_UPLOAD_CHUNK + MESSAGE_ROOM)
            .max_encoding_message_size(MAX_UPLOAD_CHUNK + MESSAGE_ROOM)
    }

    /// SkillService, taking messages as large as the largest bundle.
    fn skills(&self) -> SkillServiceClient<Channel> {
        SkillServiceClient::new(self.channel())
            .max_decoding_message_size(MAX_SKILL_BYTES + MESSAGE_ROOM)
            .max_encoding_message_size(MAX_SKILL_BYTES + MESSAGE_ROOM)
    }
}

impl Services for Session {
    fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

impl Services for Channel {
    fn channel(&self) -> Channel {
        self.clone()
    }
}

/// A channel to `server` that connects now, so an unreachable server is
/// reported at once.
pub async fn connect(server: &str, ca_cert: Option<&Path>) -> anyhow::Result<Channel> {
    crate::endpoint(server, ca_cert)?
        .connect()
        .await
        .with_context(|| format!("cannot reach {server}; is `anima up` running?"))
}

/// A channel to `server` that connects on first use (and again after a
/// failure), for a client that stays open while the server comes and goes.
pub fn connect_lazy(server: &str, ca_cert: Option<&Path>) -> anyhow::Result<Channel> {
    Ok(crate::endpoint(server, ca_cert)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_lazy())
}

/// A List reply: one page of rows and the next page's token.
pub trait ListReply {
    /// What it lists.
    type Row;
    /// The rows, and the next page's token (empty on the last page).
    fn into_page(self) -> (Vec<Self::Row>, String);
}

/// `ListReply` for each List response: its repeated field and its row.
macro_rules! list_replies {
    ($($reply:ident => $rows:ident: $row:ident),* $(,)?) => {$(
        impl ListReply for pb::$reply {
            type Row = pb::$row;
            fn into_page(self) -> (Vec<pb::$row>, String) {
                (self.$rows, self.next_page_token)
            }
        }
    )*};
}

list_replies! {
    ListSessionsResponse => sessions: AgentSession,
    ListSessionLoginsResponse => logins: SessionLogin,
    ListTasksResponse => tasks: Task,
    ListAkhsResponse => akhs: Akh,
    ListDocumentsResponse => documents: Document,
    ListMailboxesResponse => mailboxes: Mailbox,
    ListInboundMailResponse => mails: InboundMail,
    ListPlansResponse => plans: Plan,
    ListProjectsResponse => projects: Project,
    ListProjectMembersResponse => members: ProjectMember,
    ListRepositoriesResponse => repositories: Repository,
    ListUsersResponse => users: User,
    ListRolesResponse => roles: Role,
    ListDecisionsResponse => decisions: Decision,
    ListWorkflowsResponse => workflows: Workflow,
    ListSkillsResponse => skills: Skill,
    ListWorkItemsResponse => work_items: WorkItem,
    GetDescriptionRevisionsResponse => revisions: DescriptionRevision,
    GetThreadResponse => messages: Message,
    LoginRecording => events: TerminalEvent,
}

/// A paged request: which page it asks for, and the RPC that answers it.
/// Implemented for every List request (and the other paged ones), so that
/// [`Session::list`] takes a request and answers every row.
pub trait PagedRequest: Clone + Send + Sync + 'static {
    /// Its answer.
    type Reply: ListReply;
    /// This request for [`PAGE_SIZE`] rows after `page_token`.
    fn page(&self, page_token: String) -> Self;
    /// Sends it on `session`.
    fn send(
        self,
        session: &Session,
    ) -> impl Future<Output = Result<tonic::Response<Self::Reply>, tonic::Status>> + Send;
}

/// `PagedRequest` for each paged request: its service and method.
macro_rules! paged_requests {
    ($($request:ident => $service:ident.$method:ident -> $reply:ident),* $(,)?) => {$(
        impl PagedRequest for pb::$request {
            type Reply = pb::$reply;
            fn page(&self, page_token: String) -> Self {
                let mut next = self.clone();
                next.page_size = PAGE_SIZE;
                next.page_token = page_token;
                next
            }
            async fn send(
                self,
                session: &Session,
            ) -> Result<tonic::Response<pb::$reply>, tonic::Status> {
                session.$service().$method(session.request(self)).await
            }
        }
    )*};
}

paged_requests! {
    ListSessionsRequest => sessions.list_sessions -> ListSessionsResponse,
    ListSessionLoginsRequest => sessions.list_session_logins -> ListSessionLoginsResponse,
    GetLoginRecordingRequest => sessions.get_login_recording -> LoginRecording,
    ListAkhsRequest => akhs.list_akhs -> ListAkhsResponse,
    ListDocumentsRequest => documents.list_documents -> ListDocumentsResponse,
    ListMailboxesRequest => mailboxes.list_mailboxes -> ListMailboxesResponse,
    ListInboundMailRequest => mailboxes.list_inbound_mail -> ListInboundMailResponse,
    ListPlansRequest => plans.list_plans -> ListPlansResponse,
    ListProjectsRequest => projects.list_projects -> ListProjectsResponse,
    ListProjectMembersRequest => projects.list_project_members -> ListProjectMembersResponse,
    ListRepositoriesRequest => repositories.list_repositories -> ListRepositoriesResponse,
    ListUsersRequest => team.list_users -> ListUsersResponse,
    ListRolesRequest => team.list_roles -> ListRolesResponse,
    ListDecisionsRequest => threads.list_decisions -> ListDecisionsResponse,
    ListWorkflowsRequest => workflows.list_workflows -> ListWorkflowsResponse,
    ListSkillsRequest => skills.list_skills -> ListSkillsResponse,
    ListWorkItemsRequest => work_items.list_work_items -> ListWorkItemsResponse,
    GetDescriptionRevisionsRequest => work_items.get_description_revisions -> GetDescriptionRevisionsResponse,
    GetThreadRequest => threads.get_thread -> GetThreadResponse,
}

/// A unary request: the RPC that answers it. Implemented for the requests
/// the clients send, so that [`Session::call`] takes a request and answers
/// the reply.
pub trait UnaryRequest: Send + 'static {
    /// Its answer.
    type Reply;
    /// Sends it on `session`.
    fn call_on(
        self,
        session: &Session,
    ) -> impl Future<Output = Result<tonic::Response<Self::Reply>, tonic::Status>> + Send;
}

/// `UnaryRequest` for each request: its service and method.
macro_rules! unary_requests {
    ($($request:ident => $service:ident.$method:ident -> $reply:ident),* $(,)?) => {$(
        impl UnaryRequest for pb::$request {
            type Reply = pb::$reply;
            async fn call_on(
                self,
                session: &Session,
            ) -> Result<tonic::Response<pb::$reply>, tonic::Status> {
                session.$service().$method(session.request(self)).await
            }
        }
    )*};
}

unary_requests! {
    AddProjectMemberRequest => projects.add_project_member -> ProjectMember,
    AddRepositoryRequest => repositories.add_repository -> Repository,
    AdoptMailboxRequest => mailboxes.adopt_mailbox -> Mailbox,
    AnalyzePlanGapRequest => plans.analyze_plan_gap -> AnalyzePlanGapResponse,
    ArchiveProjectRequest => projects.archive_project -> Project,
    AssignInboundMailRequest => mailboxes.assign_inbound_mail -> InboundMail,
    CancelDecisionRequest => threads.cancel_decision -> Decision,
    ChangePasswordRequest => auth.change_password -> ChangePasswordResponse,
    CreateAkhRequest => akhs.create_akh -> Akh,
    CreateMailboxRequest => mailboxes.create_mailbox -> Mailbox,
    CreatePlanRequest => plans.create_plan -> Plan,
    CreateProjectRequest => projects.create_project -> Project,
    CreateUserRequest => team.create_user -> User,
    CreateWorkItemRequest => work_items.create_work_item -> WorkItem,
    CreateWorkflowRequest => workflows.create_workflow -> Workflow,
    DecideReviewRequest => work_items.decide_review -> DecideReviewResponse,
    DeleteAkhRequest => akhs.delete_akh -> DeleteAkhResponse,
    DeleteDocumentRequest => documents.delete_document -> DeleteDocumentResponse,
    DeleteMailboxRequest => mailboxes.delete_mailbox -> Mailbox,
    DeletePlanRequest => plans.delete_plan -> DeletePlanResponse,
    DeleteUserRequest => team.delete_user -> DeleteUserResponse,
    DeleteWorkItemRequest => work_items.delete_work_item -> DeleteWorkItemResponse,
    DeleteWorkflowRequest => workflows.delete_workflow -> DeleteWorkflowResponse,
    DismissInboundMailRequest => mailboxes.dismiss_inbound_mail -> InboundMail,
    DraftDescriptionRequest => work_items.draft_description -> DraftDescriptionResponse,
    GetDashboardRequest => dashboards.get_dashboard -> Dashboard,
    GetDocumentRequest => documents.get_document -> Document,
    GetDocumentTextRequest => documents.get_document_text -> DocumentText,
    GetMailboxRequest => mailboxes.get_mailbox -> Mailbox,
    GetPlanRequest => plans.get_plan -> Plan,
    GetProjectRequest => projects.get_project -> Project,
    GetSessionRequest => sessions.get_session -> AgentSession,
    GetSkillRequest => skills.get_skill -> Skill,
    GetThreadRequest => threads.get_thread -> GetThreadResponse,
    GetUserRequest => team.get_user -> User,
    GetWorkItemRequest => work_items.get_work_item -> WorkItem,
    GetWorkflowRequest => workflows.get_workflow -> Workflow,
    LinkProjectsRequest => mailboxes.link_projects -> Mailbox,
    ListCapabilitiesRequest => work_items.list_capabilities -> ListCapabilitiesResponse,
    LoginSessionRequest => sessions.login_session -> LoginSessionResponse,
    LogoutRequest => auth.logout -> LogoutResponse,
    PostMessageRequest => threads.post_message -> Message,
    PromoteMessageRequest => threads.promote_message -> PromoteMessageResponse,
    ProposeCapabilitiesRequest => work_items.propose_capabilities -> ProposeCapabilitiesResponse,
    PublishSkillRequest => skills.publish_skill -> Skill,
    RemoveProjectMemberRequest => projects.remove_project_member -> RemoveProjectMemberResponse,
    RemoveRepositoryRequest => repositories.remove_repository -> RemoveRepositoryResponse,
    RequestDecisionRequest => threads.request_decision -> Decision,
    ResolveDecisionRequest => threads.resolve_decision -> Decision,
    RevertDescriptionRequest => work_items.revert_description -> WorkItem,
    RotateMailboxRequest => mailboxes.rotate_mailbox -> Mailbox,
    SearchDocumentsRequest => documents.search_documents -> SearchDocumentsResponse,
    GetLibraryStatusRequest => documents.get_library_status -> LibraryStatus,
    ReindexLibraryRequest => documents.reindex_library -> ReindexLibraryResponse,
    StartSessionRequest => sessions.start_session -> AgentSession,
    StopSessionRequest => sessions.stop_session -> AgentSession,
    SummarizeThreadRequest => threads.summarize_thread -> SummarizeThreadResponse,
    UnlinkProjectsRequest => mailboxes.unlink_projects -> Mailbox,
    UpdateAkhRequest => akhs.update_akh -> Akh,
    UpdateCapabilitiesRequest => work_items.update_capabilities -> ListCapabilitiesResponse,
    UpdateMailboxRequest => mailboxes.update_mailbox -> Mailbox,
    UpdatePlanRequest => plans.update_plan -> Plan,
    UpdateProjectRequest => projects.update_project -> Project,
    UpdateUserRequest => team.update_user -> User,
    UpdateWorkItemRequest => work_items.update_work_item -> WorkItem,
    UpdateWorkflowRequest => workflows.update_workflow -> Workflow,
    WhoAmIRequest => auth.who_am_i -> WhoAmIResponse,
}

impl Session {
    /// Sends `request` with the session's token and answers the reply.
    pub async fn call<R: UnaryRequest>(&self, request: R) -> Result<R::Reply, tonic::Status> {
        Ok(request.call_on(self).await?.into_inner())
    }

    /// Uploads a document: `metadata` (its `content` left empty), then
    /// the bytes of `chunks` (each at most [`MAX_UPLOAD_CHUNK`]), then the
    /// `last` mark. A chunk that fails ends the upload without that mark,
    /// so the server stores nothing of it, and its error is returned.
    pub async fn upload_document<E>(
        &self,
        metadata: pb::UploadDocumentRequest,
        chunks: impl Stream<Item = Result<Vec<u8>, E>> + Send + 'static,
    ) -> anyhow::Result<pb::Document>
    where
        E: Into<anyhow::Error> + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let mut documents = self.documents();
        let call = documents
            .upload_document(self.request(tokio_stream::wrappers::ReceiverStream::new(receiver)));
        // The server takes the upload as complete only with its `last`
        // message, so an error here (which drops the sender) can never
        // pass for the end.
        let feed = async move {
            sender.send(metadata).await.ok();
            let mut chunks = std::pin::pin!(chunks);
            while let Some(chunk) = chunks.next().await {
                let message = pb::UploadDocumentRequest {
                    content: chunk.map_err(Into::into)?,
                    ..Default::default()
                };
                if sender.send(message).await.is_err() {
                    // The server answered already (a refusal): its answer
                    // says why.
                    return anyhow::Ok(());
                }
            }
            let last = pb::UploadDocumentRequest {
                last: true,
                ..Default::default()
            };
            let _ = sender.send(last).await;
            anyhow::Ok(())
        };
        tokio::pin!(call, feed);
        let mut fed = false;
        loop {
            tokio::select! {
                reply = &mut call => return Ok(reply?.into_inner()),
                // Returning drops the call, which cancels the upload.
                outcome = &mut feed, if !fed => {
                    outcome?;
                    fed = true;
                }
            }
        }
    }

    /// A document's bytes, chunk by chunk.
    pub async fn download_document(
        &self,
        id: &str,
    ) -> Result<tonic::Streaming<pb::DocumentChunk>, tonic::Status> {
        let request = self.request(pb::DownloadDocumentRequest { id: id.to_owned() });
        Ok(self
            .documents()
            .download_document(request)
            .await?
            .into_inner())
    }

    /// Every row `request` lists, page after page ([`PAGE_SIZE`] rows a
    /// page; its own page size and token are replaced).
    pub async fn list<R: PagedRequest>(
        &self,
        request: R,
    ) -> Result<Vec<<R::Reply as ListReply>::Row>, tonic::Status> {
        let mut rows = Vec::new();
        let mut page_token = String::new();
        loop {
            let reply = request.page(page_token).send(self).await?.into_inner();
            let (page, next) = reply.into_page();
            rows.extend(page);
            if next.is_empty() {
                return Ok(rows);
            }
            page_token = next;
        }
    }
}
