//! WorkItemService: work items, their description history and capabilities.

use std::sync::Arc;

use anima_core::{
    DomainError, capability,
    error::reason,
    id::parse_id,
    paging::PageRequest,
    planning::{
        DescriptionEdit, MAX_DESCRIPTION_CHARS, NewWorkItem, Priority, RevisionCause,
        WorkItemChanges, WorkItemKey,
    },
    validate,
};
use anima_db::{Store, ThreadPage, WorkItemFilter};
use anima_proto::convert;
use anima_proto::v1::{self as pb, work_item_service_server::WorkItemService};

use super::{actor_of, grpc_service, mask_paths, optional_id};
use crate::{
    ai::Ai,
    authz::{RequestContext, authorized_work_item, require_project},
    secrets::SecretStores,
    zones::NetworkZones,
};

const WORK_ITEM_PATHS: &[&str] = &[
    "title",
    "description",
    "status",
    "priority",
    "plan_id",
    "phase_id",
];

/// Thread messages a description draft reads, newest back.
const DRAFT_MESSAGES: i64 = 50;

/// The WorkItemService implementation.
#[derive(Clone)]
pub struct WorkItemApi {
    store: Arc<dyn Store>,
    ai: Ai,
    /// Secret capabilities must name one of these.
    secrets: Arc<SecretStores>,
    /// Network zone capabilities must name one of these.
    zones: Arc<NetworkZones>,
}

impl WorkItemApi {
    /// Builds the service.
    pub fn new(
        store: Arc<dyn Store>,
        ai: Ai,
        secrets: Arc<SecretStores>,
        zones: Arc<NetworkZones>,
    ) -> Self {
        Self {
            store,
            ai,
            secrets,
            zones,
        }
    }

    /// A draft description from anima-ai, drawn from the title, the current
    /// description and the latest thread messages. Saves nothing.
    async fn draft_description(
        &self,
        context: &RequestContext,
        request: pb::DraftDescriptionRequest,
    ) -> Result<pb::DraftDescriptionResponse, DomainError> {
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let mut messages = self
            .store
            .list_messages(&item.id, ThreadPage::Before(i64::MAX), DRAFT_MESSAGES)
            .await?;
        messages.reverse();
        let sources = std::iter::once(pb::TextSource {
            id: "description".into(),
            text: item.description.clone(),
        })
        .filter(|source| !source.text.trim().is_empty())
        .chain(messages.into_iter().map(|message| pb::TextSource {
            id: message.id,
            text: message.body,
        }))
        .collect::<Vec<_>>();
        if sources.is_empty() {
            return Err(DomainError::failed_precondition(
                reason::FIELD_REQUIRED,
                "nothing to draft from: the work item has no description and no messages",
            ));
        }
        let tier = default_tier(request.tier);
        let admitted = self.ai.admit(context.caller.as_ref()).await?;
        let draft = self
            .ai
            .generate_description(
                admitted,
                pb::GenerateDescriptionRequest {
                    tier,
                    title: item.title,
                    context: sources,
                },
            )
            .await?;
        let mut source_ids: Vec<String> = draft
            .citations
            .into_iter()
            .map(|citation| citation.source_id)
            .collect();
        source_ids.dedup();
        Ok(pb::DraftDescriptionResponse {
            description: draft.description,
            source_ids,
            tier,
            model: draft.model,
        })
    }

    /// Capabilities anima-ai proposes for the item (reasoning tier). Saves
    /// nothing: a human accepts them with UpdateCapabilities.
    async fn propose_capabilities(
        &self,
        context: &RequestContext,
        request: pb::ProposeCapabilitiesRequest,
    ) -> Result<pb::ProposeCapabilitiesResponse, DomainError> {
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let admitted = self.ai.admit(context.caller.as_ref()).await?;
        let proposal = self
            .ai
            .derive_capabilities(
                admitted,
                pb::DeriveCapabilitiesRequest {
                    work_item_json: work_item_json(&item),
                },
            )
            .await?;
        Ok(pb::ProposeCapabilitiesResponse {
            capabilities: proposal.capabilities,
            tier: pb::ModelTier::Reasoning as i32,
            model: proposal.model,
        })
    }

    /// Whether `changes` to the item need a human review (reasoning tier).
    async fn decide_review(
        &self,
        context: &RequestContext,
        request: pb::DecideReviewRequest,
    ) -> Result<pb::DecideReviewResponse, DomainError> {
        if request.changes.trim().is_empty() {
            return Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "changes are required (e.g. a diff)",
            ));
        }
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let admitted = self.ai.admit(context.caller.as_ref()).await?;
        let decision = self
            .ai
            .should_review(
                admitted,
                pb::ShouldReviewRequest {
                    work_item_json: work_item_json(&item),
                    changes: request.changes,
                },
            )
            .await?;
        Ok(pb::DecideReviewResponse {
            review: decision.review,
            reason: decision.reason,
            tier: pb::ModelTier::Reasoning as i32,
            model: decision.model,
        })
    }

    async fn list_work_items(
        &self,
        context: &RequestContext,
        request: pb::ListWorkItemsRequest,
    ) -> Result<pb::ListWorkItemsResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let filter = WorkItemFilter {
            plan_id: optional_id(&request.plan_id, "plan_id")?,
            status: convert::parse_work_item_status(request.status)?,
        };
        let query = format!(
            "workitems:{project_id}:{}:{}",
            filter.plan_id.as_deref().unwrap_or("*"),
            filter.status.map_or("*", |s| s.as_str())
        );
        let page = PageRequest::parse(request.page_size, &request.page_token, &query)?;
        require_project(&self.store, context, &project_id).await?;
        let page = self
            .store
            .list_work_items(&project_id, &filter, &page)
            .await?;
        Ok(pb::ListWorkItemsResponse {
            work_items: page.items.into_iter().map(pb::WorkItem::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// By id, or by project and key (`WI-12`).
    async fn get_work_item(
        &self,
        context: &RequestContext,
        request: pb::GetWorkItemRequest,
    ) -> Result<pb::WorkItem, DomainError> {
        if !request.id.is_empty() {
            let item = authorized_work_item(&self.store, context, &request.id, "id").await?;
            return Ok(pb::WorkItem::from(item));
        }
        if request.key.is_empty() {
            return Err(DomainError::invalid_argument(
                reason::FIELD_REQUIRED,
                "name the work item by id, or by project_id and key",
            ));
        }
        let project_id = parse_id(&request.project_id, "project_id")?;
        let key: WorkItemKey = request.key.parse()?;
        require_project(&self.store, context, &project_id).await?;
        Ok(pb::WorkItem::from(
            self.store.find_work_item(&project_id, key).await?,
        ))
    }

    async fn create_work_item(
        &self,
        context: &RequestContext,
        request: pb::CreateWorkItemRequest,
    ) -> Result<pb::WorkItem, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        validate::name("title", &request.title)?;
        validate::max_chars("description", &request.description, MAX_DESCRIPTION_CHARS)?;
        let item = NewWorkItem {
            plan_id: optional_id(&request.plan_id, "plan_id")?,
            workflow_id: optional_id(&request.workflow_id, "workflow_id")?,
            priority: convert::parse_priority(request.priority)?.unwrap_or(Priority::Medium),
            author: actor_of(context.caller.as_ref())?,
            project_id,
            title: request.title,
            description: request.description,
        };
        require_project(&self.store, context, &item.project_id).await?;
        Ok(pb::WorkItem::from(self.store.create_work_item(item).await?))
    }

    async fn update_work_item(
        &self,
        context: &RequestContext,
        request: pb::UpdateWorkItemRequest,
    ) -> Result<pb::WorkItem, DomainError> {
        let wanted = request.work_item.unwrap_or_default();
        let mut changes = WorkItemChanges::default();
        for path in mask_paths(request.update_mask, WORK_ITEM_PATHS)? {
            match path.as_str() {
                "title" => {
                    validate::name("title", &wanted.title)?;
                    changes.title = Some(wanted.title.clone());
                }
                "description" => {
                    validate::max_chars("description", &wanted.description, MAX_DESCRIPTION_CHARS)?;
                    if request.base_revision_id.is_empty() {
                        return Err(DomainError::invalid_argument(
                            reason::FIELD_REQUIRED,
                            "a description change needs base_revision_id: the revision it was \
                             based on",
                        ));
                    }
                    changes.description = Some(DescriptionEdit {
                        base_revision_id: parse_id(&request.base_revision_id, "base_revision_id")?,
                        text: wanted.description.clone(),
                        cause: RevisionCause::Edit,
                        source_message_id: None,
                    });
                }
                "status" => {
                    changes.status = Some(
                        convert::parse_work_item_status(wanted.status)?.ok_or_else(|| {
                            DomainError::invalid_argument(
                                reason::FIELD_REQUIRED,
                                "status must be set when it is in the update_mask",
                            )
                        })?,
                    );
                }
                "priority" => {
                    changes.priority =
                        Some(convert::parse_priority(wanted.priority)?.ok_or_else(|| {
                            DomainError::invalid_argument(
                                reason::FIELD_REQUIRED,
                                "priority must be set when it is in the update_mask",
                            )
                        })?);
                }
                "plan_id" => changes.plan_id = Some(optional_id(&wanted.plan_id, "plan_id")?),
                "phase_id" => {
                    if wanted.phase_id.is_empty() {
                        return Err(DomainError::invalid_argument(
                            reason::FIELD_REQUIRED,
                            "phase_id must not be empty",
                        ));
                    }
                    changes.phase_id = Some(wanted.phase_id.clone());
                }
                _ => unreachable!("mask_paths admits only WORK_ITEM_PATHS"),
            }
        }
        let item = authorized_work_item(&self.store, context, &wanted.id, "work_item.id").await?;
        let actor = actor_of(context.caller.as_ref())?;
        let updated = self
            .store
            .update_work_item(&item.id, changes, &actor)
            .await?;
        Ok(pb::WorkItem::from(updated))
    }

    async fn delete_work_item(
        &self,
        context: &RequestContext,
        request: pb::DeleteWorkItemRequest,
    ) -> Result<pb::DeleteWorkItemResponse, DomainError> {
        let item = authorized_work_item(&self.store, context, &request.id, "id").await?;
        self.store.delete_work_item(&item.id).await?;
        Ok(pb::DeleteWorkItemResponse {})
    }

    async fn get_description_revisions(
        &self,
        context: &RequestContext,
        request: pb::GetDescriptionRevisionsRequest,
    ) -> Result<pb::GetDescriptionRevisionsResponse, DomainError> {
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("revisions:{}", item.id),
        )?;
        let page = self.store.list_revisions(&item.id, &page).await?;
        Ok(pb::GetDescriptionRevisionsResponse {
            revisions: page
                .items
                .into_iter()
                .map(pb::DescriptionRevision::from)
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn revert_description(
        &self,
        context: &RequestContext,
        request: pb::RevertDescriptionRequest,
    ) -> Result<pb::WorkItem, DomainError> {
        let revision_id = parse_id(&request.revision_id, "revision_id")?;
        let base = optional_id(&request.base_revision_id, "base_revision_id")?;
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        let actor = actor_of(context.caller.as_ref())?;
        Ok(pb::WorkItem::from(
            self.store
                .revert_description(&item.id, &revision_id, base.as_deref(), &actor)
                .await?,
        ))
    }

    async fn list_capabilities(
        &self,
        context: &RequestContext,
        request: pb::ListCapabilitiesRequest,
    ) -> Result<pb::ListCapabilitiesResponse, DomainError> {
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        Ok(pb::ListCapabilitiesResponse {
            capabilities: item
                .capabilities
                .into_iter()
                .map(convert::capability)
                .collect(),
        })
    }

    async fn update_capabilities(
        &self,
        context: &RequestContext,
        request: pb::UpdateCapabilitiesRequest,
    ) -> Result<pb::ListCapabilitiesResponse, DomainError> {
        let parsed = request
            .capabilities
            .into_iter()
            .enumerate()
            .map(|(index, raw)| convert::parse_capability(index, raw))
            .collect::<Result<Vec<_>, _>>()?;
        let mut capabilities = capability::validate(parsed)?;
        let item =
            authorized_work_item(&self.store, context, &request.work_item_id, "work_item_id")
                .await?;
        self.secrets.check(&capabilities)?;
        self.zones.check(&mut capabilities)?;
        // A repository grant names one of this project's repositories;
        // another project's answers as one that does not exist.
        for granted in &capabilities {
            if let capability::CapabilityKind::RepoAccess { repository_id, .. } = &granted.kind {
                let theirs = match self.store.get_repository(repository_id).await {
                    Ok(repository) => repository.project_id != item.project_id,
                    Err(error) if error.reason == reason::REPOSITORY_NOT_FOUND => true,
                    Err(error) => return Err(error.into()),
                };
                if theirs {
                    return Err(DomainError::not_found(
                        reason::REPOSITORY_NOT_FOUND,
                        format!("this project has no repository {repository_id}"),
                    ));
                }
            }
        }
        let stored = self.store.set_capabilities(&item.id, capabilities).await?;
        Ok(pb::ListCapabilitiesResponse {
            capabilities: stored.into_iter().map(convert::capability).collect(),
        })
    }
}

grpc_service!(WorkItemApi: WorkItemService {
    list_work_items(pb::ListWorkItemsRequest) -> pb::ListWorkItemsResponse;
    get_work_item(pb::GetWorkItemRequest) -> pb::WorkItem;
    create_work_item(pb::CreateWorkItemRequest) -> pb::WorkItem;
    update_work_item(pb::UpdateWorkItemRequest) -> pb::WorkItem;
    delete_work_item(pb::DeleteWorkItemRequest) -> pb::DeleteWorkItemResponse;
    get_description_revisions(pb::GetDescriptionRevisionsRequest) -> pb::GetDescriptionRevisionsResponse;
    revert_description(pb::RevertDescriptionRequest) -> pb::WorkItem;
    list_capabilities(pb::ListCapabilitiesRequest) -> pb::ListCapabilitiesResponse;
    update_capabilities(pb::UpdateCapabilitiesRequest) -> pb::ListCapabilitiesResponse;
    draft_description(pb::DraftDescriptionRequest) -> pb::DraftDescriptionResponse;
    propose_capabilities(pb::ProposeCapabilitiesRequest) -> pb::ProposeCapabilitiesResponse;
    decide_review(pb::DecideReviewRequest) -> pb::DecideReviewResponse;
});

/// The tier a request names, standard when it names none.
pub(crate) fn default_tier(tier: i32) -> i32 {
    match tier {
        0 => pb::ModelTier::Standard as i32,
        tier => tier,
    }
}

/// What a model is told about a work item.
fn work_item_json(item: &anima_core::planning::WorkItem) -> String {
    serde_json::json!({
        "key": item.key.to_string(),
        "title": item.title,
        "description": item.description,
        "status": item.status.as_str(),
        "priority": item.priority.as_str(),
        "phase": item.phase_id,
        "capabilities": item.capabilities,
    })
    .to_string()
}
