//! AuthService: login, logout, who-am-I, password change.

use std::sync::Arc;

use anima_core::{DomainError, ErrorCode, error::reason, model::UserChanges, validate};
use anima_db::Store;
use anima_proto::convert;
use anima_proto::v1::{self as pb, auth_service_server::AuthService};
use tonic::{Request, Response, Status};

use crate::{
    auth::{Authenticator, Caller, LoginThrottle},
    authz,
    error::IntoStatus,
    password::{hash_password, verify_password},
};

/// The AuthService implementation.
#[derive(Clone)]
pub struct AuthApi {
    store: Arc<dyn Store>,
    authenticator: Authenticator,
    throttle: LoginThrottle,
    /// Checked when the username is unknown, so that a wrong username costs
    /// as much time as a wrong password and reveals nothing.
    dummy_hash: Arc<tokio::sync::OnceCell<String>>,
}

impl AuthApi {
    /// Builds the service.
    pub fn new(
        store: Arc<dyn Store>,
        authenticator: Authenticator,
        throttle: LoginThrottle,
    ) -> Self {
        Self {
            store,
            authenticator,
            throttle,
            dummy_hash: Arc::default(),
        }
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<pb::LoginResponse, DomainError> {
        let peer = authz::peer(&request);
        let pb::LoginRequest { username, password } = request.into_inner();
        let invalid = || {
            DomainError::unauthenticated(reason::INVALID_CREDENTIALS, "wrong username or password")
        };
        if username.is_empty()
            || username.len() > validate::MAX_NAME_CHARS * 4
            || password.is_empty()
            || password.len() > validate::MAX_PASSWORD_CHARS * 4
        {
            return Err(invalid());
        }
        // Counted before the expensive check: parallel guesses are each an
        // attempt.
        self.throttle.attempt(&username, peer).await?;
        let credentials = self.store.find_credentials(&username).await?;
        let hash = match &credentials {
            Some(found) => found.password_hash.clone(),
            None => self
                .dummy_hash
                .get_or_try_init(|| hash_password(anima_core::secret::new_token()))
                .await?
                .clone(),
        };
        let matches = verify_password(password, hash).await?;
        let user = match credentials {
            Some(found) if matches => found.user,
            _ => return Err(invalid()),
        };
        if user.disabled {
            return Err(DomainError::permission_denied("this account is disabled"));
        }
        self.throttle.succeeded(&username, peer).await?;
        let token = self.authenticator.open_session(&user.id).await?;
        tracing::info!(user = %user.username, "login");
        Ok(pb::LoginResponse {
            token,
            user: Some(pb::User::from(user)),
            idle_timeout_seconds: self.authenticator.idle_timeout_secs(),
        })
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<(), DomainError> {
        let Caller::User {
            user, token_hash, ..
        } = authz::caller(&request)?.clone()
        else {
            return Err(DomainError::failed_precondition(
                reason::INVALID_FIELD,
                "services have no password",
            ));
        };
        let peer = authz::peer(&request);
        let pb::ChangePasswordRequest {
            current_password,
            new_password,
        } = request.into_inner();
        validate::password(&new_password)?;
        self.throttle.attempt(&user.username, peer).await?;
        let stored = self
            .store
            .find_credentials(&user.username)
            .await?
            .ok_or_else(|| {
                DomainError::not_found(reason::USER_NOT_FOUND, "the account no longer exists")
            })?;
        if !verify_password(current_password, stored.password_hash).await? {
            return Err(DomainError::new(
                ErrorCode::PermissionDenied,
                reason::INVALID_CREDENTIALS,
                "the current password is wrong",
            ));
        }
        self.throttle.succeeded(&user.username, peer).await?;
        let hash = hash_password(new_password).await?;
        self.store
            .update_user(
                &user.id,
                UserChanges {
                    password_hash: Some(hash),
                    keep_session: Some(token_hash),
                    ..UserChanges::default()
                },
            )
            .await?;
        self.authenticator.cache().forget_user(&user.id);
        Ok(())
    }
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        AuthApi::login(self, request)
            .await
            .into_status()
            .map(Response::new)
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        if let Caller::User { token_hash, .. } = authz::caller(&request).into_status()? {
            self.store.delete_session(token_hash).await.into_status()?;
            self.authenticator.cache().forget_session(token_hash);
        }
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let response = match authz::caller(&request).into_status()? {
            Caller::User {
                user,
                session_created_at,
                ..
            } => pb::WhoAmIResponse {
                user: Some(pb::User::from(user.clone())),
                service: String::new(),
                session_created: convert::timestamp(*session_created_at),
            },
            Caller::Service { .. } => {
                return Err(Status::permission_denied("only people have an account"));
            }
            #[cfg(feature = "trust-every-caller")]
            Caller::Unchecked => {
                return Err(Status::permission_denied("only people have an account"));
            }
        };
        Ok(Response::new(response))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        AuthApi::change_password(self, request)
            .await
            .into_status()
            .map(|()| Response::new(pb::ChangePasswordResponse {}))
    }
}
