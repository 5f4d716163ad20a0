//! PlanService: plans and their derived progress.

use std::sync::Arc;

use anima_core::{
    DomainError,
    id::parse_id,
    paging::PageRequest,
    planning::{MAX_DESCRIPTION_CHARS, NewPlan, PlanChanges},
    validate,
    workflow::STANDARD_WORKFLOW_ID,
};
use anima_db::{Store, WorkItemFilter};
use anima_proto::v1::{self as pb, plan_service_server::PlanService};

use super::{grpc_service, mask_paths, optional_id};
use crate::{
    ai::Ai,
    authz::{RequestContext, require_project},
};

const PLAN_PATHS: &[&str] = &["title", "description", "workflow_id"];

/// Work items a gap analysis describes to the model.
const GAP_ITEMS: i32 = 200;

/// The PlanService implementation.
#[derive(Clone)]
pub struct PlanApi {
    store: Arc<dyn Store>,
    ai: Ai,
}

impl PlanApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, ai: Ai) -> Self {
        Self { store, ai }
    }

    /// anima-ai compares the plan with its work items (reasoning tier).
    async fn analyze_plan_gap(
        &self,
        context: &RequestContext,
        request: pb::AnalyzePlanGapRequest,
    ) -> Result<pb::AnalyzePlanGapResponse, DomainError> {
        let plan = self.authorized_plan(context, &request.plan_id).await?;
        let filter = WorkItemFilter {
            plan_id: Some(plan.id.clone()),
            status: None,
        };
        let page = PageRequest::parse(GAP_ITEMS, "", &format!("gap:{}", plan.id))?;
        let items = self
            .store
            .list_work_items(&plan.project_id, &filter, &page)
            .await?
            .items;
        let plan_json = serde_json::json!({
            "title": plan.title,
            "description": plan.description,
            "progress": { "total": plan.progress.total, "done": plan.progress.done },
        })
        .to_string();
        let implementation_state = items
            .iter()
            .map(|item| {
                format!(
                    "- {} [{}; phase {}] {}\n  {}\n",
                    item.key,
                    item.status.as_str(),
                    item.phase_id,
                    item.title,
                    item.description.lines().next().unwrap_or_default()
                )
            })
            .collect::<String>();
        let implementation_state = if implementation_state.is_empty() {
            "No work items yet.".to_owned()
        } else {
            implementation_state
        };
        let admitted = self.ai.admit(context.caller.as_ref()).await?;
        let report = self
            .ai
            .analyze_gap(
                admitted,
                pb::AnalyzeGapRequest {
                    plan_json,
                    implementation_state,
                },
            )
            .await?;
        Ok(pb::AnalyzePlanGapResponse {
            gap_report: report.gap_report,
            tier: pb::ModelTier::Reasoning as i32,
            model: report.model,
        })
    }

    /// The plan, once the caller is allowed to act in its project.
    async fn authorized_plan(
        &self,
        context: &RequestContext,
        raw_id: &str,
    ) -> Result<anima_core::planning::Plan, DomainError> {
        let id = parse_id(raw_id, "id")?;
        let plan = self.store.get_plan(&id).await?;
        require_project(&self.store, context, &plan.project_id).await?;
        Ok(plan)
    }

    async fn list_plans(
        &self,
        context: &RequestContext,
        request: pb::ListPlansRequest,
    ) -> Result<pb::ListPlansResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("plans:{project_id}"),
        )?;
        require_project(&self.store, context, &project_id).await?;
        let page = self.store.list_plans(&project_id, &page).await?;
        Ok(pb::ListPlansResponse {
            plans: page.items.into_iter().map(pb::Plan::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_plan(
        &self,
        context: &RequestContext,
        request: pb::GetPlanRequest,
    ) -> Result<pb::Plan, DomainError> {
        Ok(pb::Plan::from(
            self.authorized_plan(context, &request.id).await?,
        ))
    }

    async fn create_plan(
        &self,
        context: &RequestContext,
        request: pb::CreatePlanRequest,
    ) -> Result<pb::Plan, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        validate::name("title", &request.title)?;
        validate::max_chars("description", &request.description, MAX_DESCRIPTION_CHARS)?;
        let workflow_id = optional_id(&request.workflow_id, "workflow_id")?
            .unwrap_or_else(|| STANDARD_WORKFLOW_ID.to_owned());
        require_project(&self.store, context, &project_id).await?;
        let plan = self
            .store
            .create_plan(NewPlan {
                project_id,
                title: request.title,
                description: request.description,
                workflow_id,
            })
            .await?;
        Ok(pb::Plan::from(plan))
    }

    async fn update_plan(
        &self,
        context: &RequestContext,
        request: pb::UpdatePlanRequest,
    ) -> Result<pb::Plan, DomainError> {
        let plan = request.plan.unwrap_or_default();
        let mut changes = PlanChanges::default();
        for path in mask_paths(request.update_mask, PLAN_PATHS)? {
            match path.as_str() {
                "title" => {
                    validate::name("title", &plan.title)?;
                    changes.title = Some(plan.title.clone());
                }
                "description" => {
                    validate::max_chars("description", &plan.description, MAX_DESCRIPTION_CHARS)?;
                    changes.description = Some(plan.description.clone());
                }
                "workflow_id" => {
                    changes.workflow_id = Some(parse_id(&plan.workflow_id, "plan.workflow_id")?);
                }
                _ => unreachable!("mask_paths admits only PLAN_PATHS"),
            }
        }
        let current = self.authorized_plan(context, &plan.id).await?;
        Ok(pb::Plan::from(
            self.store.update_plan(&current.id, changes).await?,
        ))
    }

    async fn delete_plan(
        &self,
        context: &RequestContext,
        request: pb::DeletePlanRequest,
    ) -> Result<pb::DeletePlanResponse, DomainError> {
        let plan = self.authorized_plan(context, &request.id).await?;
        self.store.delete_plan(&plan.id).await?;
        Ok(pb::DeletePlanResponse {})
    }
}

grpc_service!(PlanApi: PlanService {
    list_plans(pb::ListPlansRequest) -> pb::ListPlansResponse;
    get_plan(pb::GetPlanRequest) -> pb::Plan;
    create_plan(pb::CreatePlanRequest) -> pb::Plan;
    update_plan(pb::UpdatePlanRequest) -> pb::Plan;
    delete_plan(pb::DeletePlanRequest) -> pb::DeletePlanResponse;
    analyze_plan_gap(pb::AnalyzePlanGapRequest) -> pb::AnalyzePlanGapResponse;
});
