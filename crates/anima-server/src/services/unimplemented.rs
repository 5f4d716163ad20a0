//! Services of the API whose issue has not landed yet. Their generated
//! default methods answer `UNIMPLEMENTED`; the auth middleware still runs
//! first, so even these calls need valid credentials.

use anima_proto::v1::{
    agent_session_service_server::AgentSessionService, akh_service_server::AkhService,
    dashboard_service_server::DashboardService, document_service_server::DocumentService,
    mailbox_service_server::MailboxService, plan_service_server::PlanService,
    project_service_server::ProjectService, repository_service_server::RepositoryService,
    thread_service_server::ThreadService, work_item_service_server::WorkItemService,
    workflow_service_server::WorkflowService,
};

/// Stands in for every service that is not built yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotYetImplemented;

impl ProjectService for NotYetImplemented {}
impl PlanService for NotYetImplemented {}
impl WorkItemService for NotYetImplemented {}
impl WorkflowService for NotYetImplemented {}
impl ThreadService for NotYetImplemented {}
impl AgentSessionService for NotYetImplemented {}
impl RepositoryService for NotYetImplemented {}
impl MailboxService for NotYetImplemented {}
impl DocumentService for NotYetImplemented {}
impl AkhService for NotYetImplemented {}
impl DashboardService for NotYetImplemented {}
