//! ProjectService: projects and their members.

use std::sync::Arc;

use anima_core::{
    DomainError,
    id::parse_id,
    paging::PageRequest,
    planning::{MAX_DESCRIPTION_CHARS, ProjectChanges},
    validate,
};
use anima_db::{ProjectFilter, Store};
use anima_proto::convert;
use anima_proto::v1::{self as pb, project_service_server::ProjectService};

use super::{grpc_service, mask_paths};
use crate::{
    auth::Caller,
    authz::{RequestContext, require_project},
    config::ProjectCreators,
};

const PROJECT_PATHS: &[&str] = &["name", "description"];

/// The ProjectService implementation.
#[derive(Clone)]
pub struct ProjectApi {
    store: Arc<dyn Store>,
    creators: ProjectCreators,
}

impl ProjectApi {
    /// Builds the service; `creators` says who may start projects.
    pub fn new(store: Arc<dyn Store>, creators: ProjectCreators) -> Self {
        Self { store, creators }
    }

    /// Users see the projects they are members of; services see all.
    async fn list_projects(
        &self,
        context: &RequestContext,
        request: pb::ListProjectsRequest,
    ) -> Result<pb::ListProjectsResponse, DomainError> {
        let status = convert::project_status_filter(request.status)?;
        let member = match &context.caller {
            Some(Caller::User { user, .. }) => Some(user.id.clone()),
            _ => None,
        };
        let query = format!(
            "projects:{}:{}",
            member.as_deref().unwrap_or("*"),
            status.map_or("*", |s| s.as_str())
        );
        let page = PageRequest::parse(request.page_size, &request.page_token, &query)?;
        let page = self
            .store
            .list_projects(&ProjectFilter { member, status }, &page)
            .await?;
        Ok(pb::ListProjectsResponse {
            projects: page.items.into_iter().map(pb::Project::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_project(
        &self,
        context: &RequestContext,
        request: pb::GetProjectRequest,
    ) -> Result<pb::Project, DomainError> {
        let id = parse_id(&request.id, "id")?;
        require_project(&self.store, context, &id).await?;
        Ok(pb::Project::from(self.store.get_project(&id).await?))
    }

    /// A user may start a project (every user, or only server admins, as
    /// configured) and becomes its Owner.
    async fn create_project(
        &self,
        context: &RequestContext,
        request: pb::CreateProjectRequest,
    ) -> Result<pb::Project, DomainError> {
        validate::name("name", &request.name)?;
        validate::max_chars("description", &request.description, MAX_DESCRIPTION_CHARS)?;
        let Some(Caller::User { user, .. }) = &context.caller else {
            return Err(DomainError::permission_denied(
                "a project needs a human Owner; services cannot create projects",
            ));
        };
        if self.creators == ProjectCreators::Admins && !user.is_admin {
            return Err(DomainError::permission_denied(
                "on this server only administrators create projects; ask one to create it and add you",
            ));
        }
        let project = self
            .store
            .create_project(&request.name, &request.description, &user.id)
            .await?;
        Ok(pb::Project::from(project))
    }

    async fn update_project(
        &self,
        context: &RequestContext,
        request: pb::UpdateProjectRequest,
    ) -> Result<pb::Project, DomainError> {
        let project = request.project.unwrap_or_default();
        let id = parse_id(&project.id, "project.id")?;
        let mut changes = ProjectChanges::default();
        for path in mask_paths(request.update_mask, PROJECT_PATHS)? {
            match path.as_str() {
                "name" => {
                    validate::name("name", &project.name)?;
                    changes.name = Some(project.name.clone());
                }
                "description" => {
                    validate::max_chars(
                        "description",
                        &project.description,
                        MAX_DESCRIPTION_CHARS,
                    )?;
                    changes.description = Some(project.description.clone());
                }
                _ => unreachable!("mask_paths admits only PROJECT_PATHS"),
            }
        }
        require_project(&self.store, context, &id).await?;
        Ok(pb::Project::from(
            self.store.update_project(&id, changes).await?,
        ))
    }

    async fn archive_project(
        &self,
        context: &RequestContext,
        request: pb::ArchiveProjectRequest,
    ) -> Result<pb::Project, DomainError> {
        let id = parse_id(&request.id, "id")?;
        require_project(&self.store, context, &id).await?;
        Ok(pb::Project::from(self.store.archive_project(&id).await?))
    }

    async fn list_project_members(
        &self,
        context: &RequestContext,
        request: pb::ListProjectMembersRequest,
    ) -> Result<pb::ListProjectMembersResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("members:{project_id}"),
        )?;
        require_project(&self.store, context, &project_id).await?;
        let page = self.store.list_members(&project_id, &page).await?;
        Ok(pb::ListProjectMembersResponse {
            members: page
                .items
                .into_iter()
                .map(pb::ProjectMember::from)
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn add_project_member(
        &self,
        context: &RequestContext,
        request: pb::AddProjectMemberRequest,
    ) -> Result<pb::ProjectMember, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let user_id = parse_id(&request.user_id, "user_id")?;
        let role_id = parse_id(&request.role_id, "role_id")?;
        require_project(&self.store, context, &project_id).await?;
        let member = self
            .store
            .add_member(&project_id, &user_id, &role_id, acting_user(context))
            .await?;
        forget_member(context, &user_id, &project_id);
        Ok(pb::ProjectMember::from(member))
    }

    async fn remove_project_member(
        &self,
        context: &RequestContext,
        request: pb::RemoveProjectMemberRequest,
    ) -> Result<pb::RemoveProjectMemberResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let user_id = parse_id(&request.user_id, "user_id")?;
        require_project(&self.store, context, &project_id).await?;
        self.store
            .remove_member(&project_id, &user_id, acting_user(context))
            .await?;
        forget_member(context, &user_id, &project_id);
        Ok(pb::RemoveProjectMemberResponse {})
    }
}

/// Tells this instance's permission cache that a membership changed, before
/// the RPC returns (other instances hear of it through the event).
fn forget_member(context: &RequestContext, user_id: &str, project_id: &str) {
    if let Some(cache) = &context.cache {
        cache.forget_member(user_id, project_id);
    }
}

/// The user a membership change is checked against: nobody hands out a
/// role holding more than they hold themselves.
fn acting_user(context: &RequestContext) -> Option<&str> {
    match &context.caller {
        Some(Caller::User { user, .. }) => Some(&user.id),
        _ => None,
    }
}

grpc_service!(ProjectApi: ProjectService {
    list_projects(pb::ListProjectsRequest) -> pb::ListProjectsResponse;
    get_project(pb::GetProjectRequest) -> pb::Project;
    create_project(pb::CreateProjectRequest) -> pb::Project;
    update_project(pb::UpdateProjectRequest) -> pb::Project;
    archive_project(pb::ArchiveProjectRequest) -> pb::Project;
    list_project_members(pb::ListProjectMembersRequest) -> pb::ListProjectMembersResponse;
    add_project_member(pb::AddProjectMemberRequest) -> pb::ProjectMember;
    remove_project_member(pb::RemoveProjectMemberRequest) -> pb::RemoveProjectMemberResponse;
});
