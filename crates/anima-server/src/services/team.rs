//! TeamService: users, roles and the permission catalogue.

use std::sync::Arc;

use anima_core::{
    DomainError, Permission,
    error::reason,
    id::parse_id,
    model::{NewUser, RoleChanges, UserChanges},
    paging::PageRequest,
    permission::parse_permissions,
    update_mask, validate,
};
use anima_db::Store;
use anima_proto::v1::{self as pb, team_service_server::TeamService};
use tonic::{Request, Response, Status};

use crate::{
    auth::{Authenticator, Caller},
    authz,
    error::{IntoStatus, to_status},
    password::hash_password,
    rbac::{self, Access},
};

/// The TeamService implementation.
#[derive(Clone)]
pub struct TeamApi {
    store: Arc<dyn Store>,
    /// Told of account changes, so this instance's session cache never
    /// outlives them.
    authenticator: Authenticator,
}

const USER_PATHS: &[&str] = &[
    "display_name",
    "email",
    "is_admin",
    "disabled",
    "password",
    "preferences",
];
/// What users may change of their own account without being
/// administrators: their profile and preferences, never their rights.
const SELF_PATHS: &[&str] = &["display_name", "email", "preferences"];
const ROLE_PATHS: &[&str] = &["name", "description", "permissions"];
const MAX_PREFERENCES: usize = 100;

impl TeamApi {
    /// Builds the service.
    pub fn new(store: Arc<dyn Store>, authenticator: Authenticator) -> Self {
        Self {
            store,
            authenticator,
        }
    }

    async fn create_user(&self, request: pb::CreateUserRequest) -> Result<pb::User, DomainError> {
        validate::username(&request.username)?;
        validate::max_chars(
            "display_name",
            &request.display_name,
            validate::MAX_NAME_CHARS,
        )?;
        validate::max_chars("email", &request.email, validate::MAX_NAME_CHARS)?;
        validate::password(&request.password)?;
        let display_name = if request.display_name.trim().is_empty() {
            request.username.clone()
        } else {
            request.display_name
        };
        let user = self
            .store
            .create_user(NewUser {
                username: request.username,
                display_name,
                email: request.email,
                password_hash: hash_password(request.password).await?,
                is_admin: request.is_admin,
            })
            .await?;
        Ok(pb::User::from(user))
    }

    async fn update_user(
        &self,
        caller: &Caller,
        request: pb::UpdateUserRequest,
    ) -> Result<pb::User, DomainError> {
        let user = request.user.unwrap_or_default();
        let id = parse_id(&user.id, "user.id")?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        let paths = update_mask::validate(&paths, USER_PATHS)?;
        let own_profile = matches!(caller, Caller::User { user, .. } if user.id == id)
            && paths.iter().all(|path| SELF_PATHS.contains(path));
        if !own_profile {
            rbac::check_caller(Access::ServerAdmin, Some(caller)).map_err(|_| {
                DomainError::permission_denied(
                    "only administrators change other accounts, or anyone's rights and \
                     password (your own password changes with ChangePassword)",
                )
            })?;
        }
        let mut changes = UserChanges::default();
        let mut new_password = None;
        for path in paths {
            match path {
                "display_name" => {
                    validate::name("display_name", &user.display_name)?;
                    changes.display_name = Some(user.display_name.clone());
                }
                "email" => {
                    validate::max_chars("email", &user.email, validate::MAX_NAME_CHARS)?;
                    changes.email = Some(user.email.clone());
                }
                "is_admin" => changes.is_admin = Some(user.is_admin),
                "disabled" => changes.disabled = Some(user.disabled),
                "password" => {
                    validate::password(&request.password)?;
                    new_password = Some(request.password.clone());
                }
                "preferences" => {
                    if user.preferences.len() > MAX_PREFERENCES {
                        return Err(DomainError::invalid_argument(
                            reason::FIELD_TOO_LONG,
                            format!("at most {MAX_PREFERENCES} preferences"),
                        ));
                    }
                    for (key, value) in &user.preferences {
                        validate::name("preference key", key)?;
                        validate::max_chars("preference value", value, validate::MAX_NAME_CHARS)?;
                    }
                    changes.preferences = Some(user.preferences.clone().into_iter().collect());
                }
                _ => unreachable!("update_mask::validate admits only USER_PATHS"),
            }
        }
        if let Some(password) = new_password {
            changes.password_hash = Some(hash_password(password).await?);
        }
        // The store refuses to remove the last active admin (LAST_ADMIN),
        // in the same transaction as the change.
        let updated = self.store.update_user(&id, changes).await?;
        self.authenticator.cache().forget_user(&id);
        Ok(pb::User::from(updated))
    }

    async fn delete_user(&self, id: &str) -> Result<(), DomainError> {
        let id = parse_id(id, "id")?;
        self.store.delete_user(&id).await?;
        self.authenticator.cache().forget_user(&id);
        Ok(())
    }

    async fn create_role(&self, request: pb::CreateRoleRequest) -> Result<pb::Role, DomainError> {
        validate::name("name", &request.name)?;
        validate::max_chars(
            "description",
            &request.description,
            validate::MAX_NAME_CHARS * 10,
        )?;
        let permissions = parse_permissions(&request.permissions)?;
        let role = self
            .store
            .create_role(&request.name, &request.description, &permissions)
            .await?;
        Ok(pb::Role::from(role))
    }

    async fn update_role(&self, request: pb::UpdateRoleRequest) -> Result<pb::Role, DomainError> {
        let role = request.role.unwrap_or_default();
        let id = parse_id(&role.id, "role.id")?;
        let paths = request
            .update_mask
            .map(|mask| mask.paths)
            .unwrap_or_default();
        let mut changes = RoleChanges::default();
        for path in update_mask::validate(&paths, ROLE_PATHS)? {
            match path {
                "name" => {
                    validate::name("name", &role.name)?;
                    changes.name = Some(role.name.clone());
                }
                "description" => {
                    validate::max_chars(
                        "description",
                        &role.description,
                        validate::MAX_NAME_CHARS * 10,
                    )?;
                    changes.description = Some(role.description.clone());
                }
                "permissions" => changes.permissions = Some(parse_permissions(&role.permissions)?),
                _ => unreachable!("update_mask::validate admits only ROLE_PATHS"),
            }
        }
        let role = self.store.update_role(&id, changes).await?;
        self.authenticator.cache().forget_permissions();
        Ok(pb::Role::from(role))
    }
}

#[tonic::async_trait]
impl TeamService for TeamApi {
    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let viewer = Viewer::of(authz::caller(&request).into_status()?);
        let request = request.into_inner();
        let visible_to = viewer.restricted_to();
        let page = PageRequest::parse(
            request.page_size,
            &request.page_token,
            &format!("users:{}", visible_to.unwrap_or("*")),
        )
        .into_status()?;
        let page = self
            .store
            .list_users(visible_to, &page)
            .await
            .into_status()?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page
                .items
                .into_iter()
                .map(|user| viewer.shown(user))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let viewer = Viewer::of(authz::caller(&request).into_status()?);
        let request = request.into_inner();
        let not_found = |what: &str| {
            to_status(DomainError::not_found(
                reason::USER_NOT_FOUND,
                format!("no user {what:?}"),
            ))
        };
        let user = match (request.id.is_empty(), request.username.is_empty()) {
            (false, true) => {
                let id = parse_id(&request.id, "id").into_status()?;
                let user = self.store.get_user(&id).await.into_status()?;
                // Someone this caller shares no project with does not exist
                // for them by id.
                if let Some(me) = viewer.restricted_to()
                    && me != user.id
                    && !self
                        .store
                        .share_a_project(me, &user.id)
                        .await
                        .into_status()?
                {
                    return Err(not_found(&id));
                }
                user
            }
            (true, false) => self
                .store
                .find_credentials(&request.username)
                .await
                .into_status()?
                .map(|found| found.user)
                .ok_or_else(|| not_found(&request.username))?,
            (true, true) => {
                return Err(to_status(DomainError::invalid_argument(
                    reason::FIELD_REQUIRED,
                    "give id or username",
                )));
            }
            (false, false) => {
                return Err(to_status(DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "give id or username, not both",
                )));
            }
        };
        Ok(Response::new(viewer.shown(user)))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        TeamApi::create_user(self, request.into_inner())
            .await
            .into_status()
            .map(Response::new)
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = authz::caller(&request).into_status()?.clone();
        TeamApi::update_user(self, &caller, request.into_inner())
            .await
            .into_status()
            .map(Response::new)
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        TeamApi::delete_user(self, &request.get_ref().id)
            .await
            .into_status()
            .map(|()| Response::new(pb::DeleteUserResponse {}))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let request = request.into_inner();
        let page =
            PageRequest::parse(request.page_size, &request.page_token, "roles").into_status()?;
        let page = self.store.list_roles(&page).await.into_status()?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: page.items.into_iter().map(pb::Role::from).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        TeamApi::create_role(self, request.into_inner())
            .await
            .into_status()
            .map(Response::new)
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::Role>, Status> {
        TeamApi::update_role(self, request.into_inner())
            .await
            .into_status()
            .map(Response::new)
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let id = parse_id(&request.get_ref().id, "id").into_status()?;
        self.store.delete_role(&id).await.into_status()?;
        self.authenticator.cache().forget_permissions();
        Ok(Response::new(pb::DeleteRoleResponse {}))
    }

    async fn list_permissions(
        &self,
        _request: Request<pb::ListPermissionsRequest>,
    ) -> Result<Response<pb::ListPermissionsResponse>, Status> {
        Ok(Response::new(pb::ListPermissionsResponse {
            permissions: Permission::ALL
                .iter()
                .map(|permission| pb::PermissionInfo {
                    name: permission.as_str().into(),
                    description: permission.description().into(),
                })
                .collect(),
        }))
    }
}

/// Who looks at users: server admins see everything; anyone else sees
/// names only, and (in lists) only themselves and those they share a
/// project with.
enum Viewer {
    Admin,
    Member(String),
}

impl Viewer {
    fn of(caller: &Caller) -> Self {
        match caller {
            Caller::User { user, .. } if !user.is_admin => Self::Member(user.id.clone()),
            _ => Self::Admin,
        }
    }

    fn restricted_to(&self) -> Option<&str> {
        match self {
            Self::Admin => None,
            Self::Member(id) => Some(id),
        }
    }

    /// The user as this viewer may see them: another user's email and
    /// preferences are theirs and the admins'.
    fn shown(&self, user: anima_core::model::User) -> pb::User {
        let own = self.restricted_to().is_none_or(|me| me == user.id);
        let mut shown = pb::User::from(user);
        if !own {
            shown.email.clear();
            shown.preferences.clear();
        }
        shown
    }
}
