//! RepositoryService: a project's repositories. Patches (ListPatches,
//! AttachPatch) are not built yet; the generated defaults answer
//! `UNIMPLEMENTED` for them.

use std::sync::Arc;

use anima_core::{
    DomainError,
    error::reason,
    id::parse_id,
    paging::PageRequest,
    repository::{AddRepository, ForgeKind},
};
use anima_db::Store;
use anima_proto::{
    convert::parse_forge,
    v1::{self as pb, repository_service_server::RepositoryService},
};

use super::{actor_of, grpc_service};
use crate::{
    authz::{RequestContext, require_project},
    forge::ForgeHosts,
    secrets::SecretStores,
};

/// The RepositoryService implementation.
#[derive(Clone)]
pub struct RepositoryApi {
    store: Arc<dyn Store>,
    secrets: Arc<SecretStores>,
    /// Where forges may be (`ServerConfig::forge_hosts`).
    forge_hosts: Arc<ForgeHosts>,
}

impl RepositoryApi {
    /// Builds the service; repositories' forges must be on `forge_hosts`,
    /// and their credentials in `secrets`.
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<SecretStores>,
        forge_hosts: Arc<ForgeHosts>,
    ) -> Self {
        Self {
            store,
            secrets,
            forge_hosts,
        }
    }

    async fn list_repositories(
        &self,
        context: &RequestContext,
        request: pb::ListRepositoriesRequest,
    ) -> Result<pb::ListRepositoriesResponse, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let page = PageRequest::parse(request.page_size, &request.page_token, "repositories")?;
        require_project(&self.store, context, &project_id).await?;
        let page = self.store.list_repositories(&project_id, &page).await?;
        Ok(pb::ListRepositoriesResponse {
            repositories: page.items.into_iter().map(pb::Repository::from).collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn add_repository(
        &self,
        context: &RequestContext,
        request: pb::AddRepositoryRequest,
    ) -> Result<pb::Repository, DomainError> {
        let project_id = parse_id(&request.project_id, "project_id")?;
        let forge = parse_forge(request.forge)?;
        let new = AddRepository {
            name: &request.name,
            forge,
            remote_url: &request.remote_url,
            base_url: Some(request.base_url.as_str()),
            default_branch: &request.default_branch,
            credential: Some(request.credential.as_str()),
        }
        .checked(&project_id, actor_of(context.caller.as_ref())?)?;
        require_project(&self.store, context, &project_id).await?;
        // A plain git server is never read by the server: it needs no
        // entry, unless a credential would go to it (a sandbox's clone).
        if forge != ForgeKind::PlainGit || new.credential.is_some() {
            self.allowed_forge(&new.location.web_base)?;
        }
        if let Some(reference) = &new.credential {
            self.secrets.check_reference(reference).await?;
        }
        Ok(pb::Repository::from(self.store.add_repository(new).await?))
    }

    async fn remove_repository(
        &self,
        context: &RequestContext,
        request: pb::RemoveRepositoryRequest,
    ) -> Result<pb::RemoveRepositoryResponse, DomainError> {
        let id = parse_id(&request.id, "id")?;
        let repository = self.store.get_repository(&id).await?;
        require_project(&self.store, context, &repository.project_id).await?;
        self.store
            .remove_repository(&id, &actor_of(context.caller.as_ref())?)
            .await?;
        Ok(pb::RemoveRepositoryResponse {})
    }

    /// Refuses a forge the administrator has not listed. The list is not
    /// shown: it may name hosts of other teams.
    fn allowed_forge(&self, web_base: &str) -> Result<(), DomainError> {
        match self.forge_hosts.admits(web_base) {
            true => Ok(()),
            false => Err(DomainError::failed_precondition(
                reason::FORGE_HOST_NOT_ALLOWED,
                format!(
                    "{web_base} is not a forge this server reads; a server administrator can \
                     add it to forge_hosts (https unless an entry says http://)"
                ),
            )),
        }
    }
}

grpc_service!(RepositoryApi: RepositoryService {
    list_repositories(pb::ListRepositoriesRequest) -> pb::ListRepositoriesResponse;
    add_repository(pb::AddRepositoryRequest) -> pb::Repository;
    remove_repository(pb::RemoveRepositoryRequest) -> pb::RemoveRepositoryResponse;
});
