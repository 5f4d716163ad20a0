//! AkhService: the AI personas that agents and services speak as.

use std::sync::Arc;

use anima_core::{
    DomainError,
    id::parse_id,
    paging::PageRequest,
    planning::{AkhChanges, DEFAULT_AVATAR_COLOR, avatar_color},
    validate,
};
use anima_db::Store;
use anima_proto::v1::{self as pb, akh_service_server::AkhService};

use super::{grpc_service, mask_paths};
use crate::authz::RequestContext;

const AKH_PATHS: &[&str] = &["name", "description", "avatar_color"];
const MAX_VOICE_CHARS: usize = 10_000;

/// The AkhService implementation.
#[derive(Clone)]
pub struct AkhApi {
    store: Arc<dyn Store>,
}

impl AkhApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn list_akhs(
        &self,
        _context: &RequestContext,
        request: pb::ListAkhsRequest,
    ) -> Result<pb::ListAkhsResponse, DomainError> {
        let page = PageRequest::parse(request.page_size, &request.page_token, "akhs")?;
        let page = self.store.list_akhs(&page).await?;
        Ok(pb::ListAkhsResponse {
            akhs: page.items.into_iter().map(pb::Akh::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn get_akh(
        &self,
        _context: &RequestContext,
        request: pb::GetAkhRequest,
    ) -> Result<pb::Akh, DomainError> {
        let id = parse_id(&request.id, "id")?;
        Ok(pb::Akh::from(self.store.get_akh(&id).await?))
    }

    async fn create_akh(
        &self,
        _context: &RequestContext,
        request: pb::CreateAkhRequest,
    ) -> Result<pb::Akh, DomainError> {
        validate::name("name", &request.name)?;
        validate::max_chars("description", &request.description, MAX_VOICE_CHARS)?;
        let color = if request.avatar_color.is_empty() {
            DEFAULT_AVATAR_COLOR.to_owned()
        } else {
            avatar_color(&request.avatar_color)?
        };
        let akh = self
            .store
            .create_akh(&request.name, &request.description, &color)
            .await?;
        Ok(pb::Akh::from(akh))
    }

    async fn update_akh(
        &self,
        _context: &RequestContext,
        request: pb::UpdateAkhRequest,
    ) -> Result<pb::Akh, DomainError> {
        let akh = request.akh.unwrap_or_default();
        let id = parse_id(&akh.id, "akh.id")?;
        let mut changes = AkhChanges::default();
        for path in mask_paths(request.update_mask, AKH_PATHS)? {
            match path.as_str() {
                "name" => {
                    validate::name("name", &akh.name)?;
                    changes.name = Some(akh.name.clone());
                }
                "description" => {
                    validate::max_chars("description", &akh.description, MAX_VOICE_CHARS)?;
                    changes.description = Some(akh.description.clone());
                }
                "avatar_color" => changes.avatar_color = Some(avatar_color(&akh.avatar_color)?),
                _ => unreachable!("mask_paths admits only AKH_PATHS"),
            }
        }
        Ok(pb::Akh::from(self.store.update_akh(&id, changes).await?))
    }

    async fn delete_akh(
        &self,
        _context: &RequestContext,
        request: pb::DeleteAkhRequest,
    ) -> Result<pb::DeleteAkhResponse, DomainError> {
        let id = parse_id(&request.id, "id")?;
        self.store.delete_akh(&id).await?;
        Ok(pb::DeleteAkhResponse {})
    }
}

grpc_service!(AkhApi: AkhService {
    list_akhs(pb::ListAkhsRequest) -> pb::ListAkhsResponse;
    get_akh(pb::GetAkhRequest) -> pb::Akh;
    create_akh(pb::CreateAkhRequest) -> pb::Akh;
    update_akh(pb::UpdateAkhRequest) -> pb::Akh;
    delete_akh(pb::DeleteAkhRequest) -> pb::DeleteAkhResponse;
});
