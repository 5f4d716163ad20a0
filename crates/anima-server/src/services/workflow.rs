//! WorkflowService: the built-in workflows (read-only) and custom ones.

use std::sync::Arc;

use anima_core::{
    DomainError,
    id::parse_id,
    paging::PageRequest,
    validate,
    workflow::{WorkflowChanges, validate_phases},
};
use anima_db::Store;
use anima_proto::convert;
use anima_proto::v1::{self as pb, workflow_service_server::WorkflowService};

use super::{grpc_service, mask_paths, optional_id};
use crate::authz::RequestContext;

const WORKFLOW_PATHS: &[&str] = &["name", "description", "phases"];
const MAX_WORKFLOW_DESCRIPTION: usize = validate::MAX_NAME_CHARS * 10;

/// The WorkflowService implementation.
#[derive(Clone)]
pub struct WorkflowApi {
    store: Arc<dyn Store>,
}

impl WorkflowApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn list_workflows(
        &self,
        _context: &RequestContext,
        request: pb::ListWorkflowsRequest,
    ) -> Result<pb::ListWorkflowsResponse, DomainError> {
        let page = PageRequest::parse(request.page_size, &request.page_token, "workflows")?;
        let page = self.store.list_workflows(&page).await?;
        Ok(pb::ListWorkflowsResponse {
            workflows: page.items.into_iter().map(pb::Workflow::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_workflow(
        &self,
        _context: &RequestContext,
        request: pb::GetWorkflowRequest,
    ) -> Result<pb::Workflow, DomainError> {
        let id = parse_id(&request.id, "id")?;
        Ok(pb::Workflow::from(self.store.get_workflow(&id).await?))
    }

    /// Creates a workflow from the given phases, or from a copy of
    /// `copy_from_id`'s phases (typically a built-in) when none are given.
    async fn create_workflow(
        &self,
        _context: &RequestContext,
        request: pb::CreateWorkflowRequest,
    ) -> Result<pb::Workflow, DomainError> {
        validate::name("name", &request.name)?;
        validate::max_chars(
            "description",
            &request.description,
            MAX_WORKFLOW_DESCRIPTION,
        )?;
        let source = optional_id(&request.copy_from_id, "copy_from_id")?;
        let (phases, description) = match (request.phases.is_empty(), source) {
            (true, Some(source)) => {
                let source = self.store.get_workflow(&source).await?;
                let description = if request.description.is_empty() {
                    source.description
                } else {
                    request.description
                };
                (source.phases, description)
            }
            (_, _) => (
                validate_phases(convert::parse_phases(request.phases))?,
                request.description,
            ),
        };
        let workflow = self
            .store
            .create_workflow(&request.name, &description, phases)
            .await?;
        Ok(pb::Workflow::from(workflow))
    }

    async fn update_workflow(
        &self,
        _context: &RequestContext,
        request: pb::UpdateWorkflowRequest,
    ) -> Result<pb::Workflow, DomainError> {
        let workflow = request.workflow.unwrap_or_default();
        let id = parse_id(&workflow.id, "workflow.id")?;
        let mut changes = WorkflowChanges::default();
        for path in mask_paths(request.update_mask, WORKFLOW_PATHS)? {
            match path.as_str() {
                "name" => {
                    validate::name("name", &workflow.name)?;
                    changes.name = Some(workflow.name.clone());
                }
                "description" => {
                    validate::max_chars(
                        "description",
                        &workflow.description,
                        MAX_WORKFLOW_DESCRIPTION,
                    )?;
                    changes.description = Some(workflow.description.clone());
                }
                "phases" => {
                    changes.phases = Some(validate_phases(convert::parse_phases(
                        workflow.phases.clone(),
                    ))?);
                }
                _ => unreachable!("mask_paths admits only WORKFLOW_PATHS"),
            }
        }
        Ok(pb::Workflow::from(
            self.store.update_workflow(&id, changes).await?,
        ))
    }

    async fn delete_workflow(
        &self,
        _context: &RequestContext,
        request: pb::DeleteWorkflowRequest,
    ) -> Result<pb::DeleteWorkflowResponse, DomainError> {
        let id = parse_id(&request.id, "id")?;
        self.store.delete_workflow(&id).await?;
        Ok(pb::DeleteWorkflowResponse {})
    }
}

grpc_service!(WorkflowApi: WorkflowService {
    list_workflows(pb::ListWorkflowsRequest) -> pb::ListWorkflowsResponse;
    get_workflow(pb::GetWorkflowRequest) -> pb::Workflow;
    create_workflow(pb::CreateWorkflowRequest) -> pb::Workflow;
    update_workflow(pb::UpdateWorkflowRequest) -> pb::Workflow;
    delete_workflow(pb::DeleteWorkflowRequest) -> pb::DeleteWorkflowResponse;
});
