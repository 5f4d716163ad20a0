//! The one place that says what every RPC needs. The middleware refuses any
//! gRPC method that is not in [`ACCESS`], so a new RPC cannot be served
//! before someone decides who may call it.

use anima_core::{DomainError, Permission, Permission::*};

use crate::auth::{Caller, InternalService};

/// What a caller needs to invoke an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token (login, health, reflection).
    Public,
    /// Any authenticated user or service.
    Authenticated,
    /// A user with the server-wide admin flag (user and role management).
    ServerAdmin,
    /// A user bound to the request's project with a role that grants the
    /// permission. The service resolves the project and calls
    /// [`crate::authz::require_project`].
    Project(Permission),
    /// One internal service only (its service token).
    Service(InternalService),
    /// Served by an internal service's own listener (anima-ai,
    /// anima-agent, anima-library; in-process under `anima up`), never by
    /// anima-server's.
    Internal,
}

macro_rules! access_table {
    ($($service:literal => { $($method:literal: $access:expr,)* })*) => {
        /// Every RPC of the API and the access it needs, by gRPC path.
        pub const ACCESS: &[(&str, Access)] = &[
            $($((concat!("/anima.v1.", $service, "/", $method), $access),)*)*
        ];
    };
}

use Access::{Authenticated, Internal, Project, Public, ServerAdmin};

const MAIL: Access = Access::Service(InternalService::Mail);
const AGENT: Access = Access::Service(InternalService::Agent);

access_table! {
    "AuthService" => {
        "Login": Public,
        "Logout": Authenticated,
        "WhoAmI": Authenticated,
        "ChangePassword": Authenticated,
    }
    "TeamService" => {
        "ListUsers": Authenticated,
        "GetUser": Authenticated,
        "CreateUser": ServerAdmin,
        // Users change their own profile; the service checks the rest.
        "UpdateUser": Authenticated,
        "DeleteUser": ServerAdmin,
        "ListRoles": Authenticated,
        "CreateRole": ServerAdmin,
        "UpdateRole": ServerAdmin,
        "DeleteRole": ServerAdmin,
        "ListPermissions": Authenticated,
    }
    "ProjectService" => {
        // Lists only the projects the caller is a member of.
        "ListProjects": Authenticated,
        "GetProject": Project(ProjectRead),
        // Any user may start a project and becomes its Owner.
        "CreateProject": Authenticated,
        "UpdateProject": Project(ProjectUpdate),
        "ArchiveProject": Project(ProjectArchive),
        "ListProjectMembers": Project(ProjectRead),
        "AddProjectMember": Project(MemberManage),
        "RemoveProjectMember": Project(MemberManage),
    }
    "PlanService" => {
        "ListPlans": Project(PlanRead),
        "GetPlan": Project(PlanRead),
        "CreatePlan": Project(PlanCreate),
        "UpdatePlan": Project(PlanUpdate),
        "DeletePlan": Project(PlanDelete),
        "AnalyzePlanGap": Project(PlanRead),
    }
    "WorkItemService" => {
        "ListWorkItems": Project(WorkItemRead),
        "GetWorkItem": Project(WorkItemRead),
        "CreateWorkItem": Project(WorkItemCreate),
        "UpdateWorkItem": Project(WorkItemUpdate),
        "DeleteWorkItem": Project(WorkItemDelete),
        "GetDescriptionRevisions": Project(WorkItemRead),
        "RevertDescription": Project(WorkItemUpdate),
        "ListCapabilities": Project(WorkItemRead),
        "UpdateCapabilities": Project(CapabilityUpdate),
        // Drafts and proposals change nothing, but cost model time: only
        // those who could apply them may ask.
        "DraftDescription": Project(WorkItemUpdate),
        "ProposeCapabilities": Project(CapabilityUpdate),
        "DecideReview": Project(WorkItemRead),
    }
    "SkillService" => {
        "ListSkills": Authenticated,
        "GetSkill": Authenticated,
        "PublishSkill": ServerAdmin,
    }
    "WorkflowService" => {
        "ListWorkflows": Authenticated,
        "GetWorkflow": Authenticated,
        "CreateWorkflow": ServerAdmin,
        "UpdateWorkflow": ServerAdmin,
        "DeleteWorkflow": ServerAdmin,
    }
    "ThreadService" => {
        "GetThread": Project(ThreadRead),
        "PostMessage": Project(ThreadPost),
        "PromoteMessage": Project(ThreadPromote),
        "StreamThread": Project(ThreadRead),
        "RequestDecision": Project(DecisionRequest),
        "ListDecisions": Authenticated,
        "ResolveDecision": Project(DecisionResolve),
        "CancelDecision": Project(DecisionResolve),
        "SummarizeThread": Project(ThreadPost),
    }
    "AgentSessionService" => {
        "ListSessions": Project(AgentRead),
        "GetSession": Project(AgentRead),
        "StartSession": Project(AgentStart),
        "StopSession": Project(AgentStop),
        "RevokeSessionToken": Project(AgentStop),
        "LoginSession": Project(AgentLogin),
        "ListSessionLogins": Project(AgentLogin),
        "GetLoginRecording": Project(AgentLogin),
        "ListTasks": Project(AgentRead),
        "GetTask": Project(AgentRead),
        "UpdateTaskStatus": Project(TaskUpdate),
        "StreamSessionStatus": Project(AgentRead),
    }
    "RepositoryService" => {
        "ListRepositories": Project(RepositoryRead),
        "AddRepository": Project(RepositoryManage),
        "RemoveRepository": Project(RepositoryManage),
        "ListPatches": Project(RepositoryRead),
        "AttachPatch": Project(RepositoryManage),
    }
    "MailboxService" => {
        // By project; by mailbox, reading needs the permission in one of
        // the projects it serves, changing it in all of them.
        "ListMailboxes": Project(MailboxRead),
        "GetMailbox": Project(MailboxRead),
        "CreateMailbox": Project(MailboxManage),
        "UpdateMailbox": Project(MailboxManage),
        "DeleteMailbox": Project(MailboxManage),
        // Taking over an existing account of the mail server is no
        // project's to decide.
        "AdoptMailbox": ServerAdmin,
        "RotateMailbox": Project(MailboxManage),
        "LinkProjects": Project(MailboxManage),
        "UnlinkProjects": Project(MailboxManage),
        "ListInboundMail": Project(MailboxRead),
        // Also needs it in the target work item's project.
        "AssignInboundMail": Project(MailboxManage),
        "DismissInboundMail": Project(MailboxManage),
    }
    "MailWorkerService" => {
        "ListFollowedMailboxes": MAIL,
        "SaveSyncState": MAIL,
        "RemoveMailbox": MAIL,
        "RefuseMailbox": MAIL,
        "ConfirmMailboxAccount": MAIL,
        "ResolveWorkItem": MAIL,
        "FindThreadOfMail": MAIL,
        "KnowsSender": MAIL,
        "ClassifyInbound": MAIL,
        "ReceiveMail": MAIL,
        "ClaimOutboundMail": MAIL,
        "ReportDelivery": MAIL,
    }
    "DocumentService" => {
        "ListDocuments": Project(DocumentRead),
        "GetDocument": Project(DocumentRead),
        "GetDocumentText": Project(DocumentRead),
        "DownloadDocument": Project(DocumentRead),
        "UploadDocument": Project(DocumentWrite),
        "DeleteDocument": Project(DocumentWrite),
        "SearchDocuments": Project(DocumentRead),
        "GetLibraryStatus": ServerAdmin,
        "ReindexLibrary": ServerAdmin,
    }
    "AkhService" => {
        "ListAkhs": Authenticated,
        "GetAkh": Authenticated,
        "CreateAkh": ServerAdmin,
        "UpdateAkh": ServerAdmin,
        "DeleteAkh": ServerAdmin,
    }
    "DashboardService" => {
        // Aggregates only over projects where the caller holds dashboard.read.
        "GetDashboard": Authenticated,
        "StreamDashboardUpdates": Authenticated,
    }
    "AnimaAiService" => {
        "ClassifyMail": Internal,
        "Summarize": Internal,
        "GenerateDescription": Internal,
        "AnalyzeGap": Internal,
        "ShouldReview": Internal,
        "DeriveCapabilities": Internal,
        "Embed": Internal,
    }
    "AgentAuditService" => {
        "ReportLogin": AGENT,
    }
    "AgentProviderService" => {
        "ProvisionVM": Internal,
        "DestroyVM": Internal,
        "DeploySkills": Internal,
        "GetVMStatus": Internal,
        "GetLoginCredentials": Internal,
    }
    "LibraryService" => {
        "PutBlob": Internal,
        "GetBlob": Internal,
        "DeleteBlob": Internal,
        "ListBlobs": Internal,
        "GetLibraryStats": Internal,
        "ExtractText": Internal,
        "IndexDocument": Internal,
        "ForgetDocument": Internal,
        "ListIndexedDocuments": Internal,
        "SearchChunks": Internal,
        "Reindex": Internal,
    }
}

/// gRPC infrastructure served beside the API, open to anyone so that
/// `grpcurl` and load balancers work without credentials.
const PUBLIC_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
];

/// The access an RPC path needs; `None` means the path is not served.
pub fn access_for(path: &str) -> Option<Access> {
    if PUBLIC_PREFIXES
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return Some(Access::Public);
    }
    ACCESS
        .iter()
        .find(|(rpc, _)| *rpc == path)
        .map(|(_, access)| *access)
}

/// Checks the parts of an access rule that need no project: the
/// middleware runs this before any handler.
pub fn check_caller(access: Access, caller: Option<&Caller>) -> Result<(), DomainError> {
    match (access, caller) {
        (Access::Internal, _) => Err(DomainError::new(
            anima_core::ErrorCode::Unimplemented,
            anima_core::error::reason::RPC_NOT_MAPPED,
            "this is an internal service's RPC; anima-server does not serve it",
        )),
        (Access::Public, _) => Ok(()),
        #[cfg(feature = "trust-every-caller")]
        (_, Some(Caller::Unchecked)) => Ok(()),
        (_, None) => Err(DomainError::unauthenticated(
            anima_core::error::reason::UNAUTHENTICATED,
            "this call needs authorization: Bearer <token>",
        )),
        (Access::Service(wanted), Some(Caller::Service { service })) if *service == wanted => {
            Ok(())
        }
        (Access::Service(wanted), Some(_)) => Err(DomainError::permission_denied(format!(
            "this call is reserved for {}",
            wanted.as_str()
        ))),
        // A service token opens its own service's RPCs and nothing else:
        // a leaked mail worker token reads no project.
        (_, Some(Caller::Service { service })) => Err(DomainError::permission_denied(format!(
            "the token of {} may call only its own service",
            service.as_str()
        ))),
        (Access::Authenticated, Some(Caller::User { .. })) => Ok(()),
        (Access::ServerAdmin, Some(Caller::User { user, .. })) if user.is_admin => Ok(()),
        (Access::ServerAdmin, Some(Caller::User { .. })) => Err(DomainError::permission_denied(
            "this call needs a server administrator",
        )),
        // Users need a binding, checked by the handler once it knows the
        // project.
        (Access::Project(_), Some(Caller::User { .. })) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    /// Every RPC in the proto files has exactly one rule, and every rule
    /// names an RPC that exists.
    #[test]
    fn every_rpc_is_mapped_exactly_once() {
        let set = prost_types::FileDescriptorSet::decode(anima_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptors");
        let declared: BTreeSet<String> = set
            .file
            .iter()
            .filter(|file| file.package() == "anima.v1")
            .flat_map(|file| {
                file.service.iter().flat_map(|service| {
                    service.method.iter().map(move |method| {
                        format!("/anima.v1.{}/{}", service.name(), method.name())
                    })
                })
            })
            .collect();
        let mapped: Vec<&str> = ACCESS.iter().map(|(path, _)| *path).collect();
        let unique: BTreeSet<String> = mapped.iter().map(|path| path.to_string()).collect();
        assert_eq!(unique.len(), mapped.len(), "an RPC is mapped twice");
        assert_eq!(unique, declared);
    }

    #[test]
    fn unknown_paths_are_not_served() {
        assert_eq!(access_for("/anima.v1.TeamService/Nope"), None);
        assert_eq!(access_for("/other.Service/Login"), None);
        assert_eq!(
            access_for("/anima.v1.AuthService/Login"),
            Some(Access::Public)
        );
    }
}
