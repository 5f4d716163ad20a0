//! SkillService: publishing and reading versioned skill bundles.

use std::sync::Arc;

use anima_core::{
    DomainError,
    paging::PageRequest,
    skill::{NewSkill, SkillFile},
};
use anima_db::Store;
use anima_proto::v1::{self as pb, skill_service_server::SkillService};

use super::{caller_id, grpc_service};
use crate::authz::RequestContext;

/// The SkillService implementation.
#[derive(Clone)]
pub struct SkillApi {
    store: Arc<dyn Store>,
}

impl SkillApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn list_skills(
        &self,
        _context: &RequestContext,
        request: pb::ListSkillsRequest,
    ) -> Result<pb::ListSkillsResponse, DomainError> {
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("skills:{}", request.name),
        )?;
        let name = Some(request.name.as_str()).filter(|name| !name.is_empty());
        let page = self.store.list_skills(name, &page).await?;
        Ok(pb::ListSkillsResponse {
            skills: page.items.into_iter().map(pb::Skill::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_skill(
        &self,
        _context: &RequestContext,
        request: pb::GetSkillRequest,
    ) -> Result<pb::Skill, DomainError> {
        Ok(pb::Skill::from(
            self.store
                .get_skill(&request.name, &request.version)
                .await?,
        ))
    }

    async fn publish_skill(
        &self,
        context: &RequestContext,
        request: pb::PublishSkillRequest,
    ) -> Result<pb::Skill, DomainError> {
        let author = caller_id(context.caller.as_ref())?;
        Ok(pb::Skill::from(
            self.store
                .publish_skill(NewSkill {
                    name: request.name,
                    version: request.version,
                    description: request.description,
                    manifest: request.manifest_json,
                    files: request
                        .files
                        .into_iter()
                        .map(|file| SkillFile {
                            path: file.path,
                            content: file.content,
                        })
                        .collect(),
                    author,
                })
                .await?,
        ))
    }
}

grpc_service!(SkillApi: SkillService {
    list_skills(pb::ListSkillsRequest) -> pb::ListSkillsResponse;
    get_skill(pb::GetSkillRequest) -> pb::Skill;
    publish_skill(pb::PublishSkillRequest) -> pb::Skill;
});
