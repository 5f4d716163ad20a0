//! Assembling and running the server.

use std::sync::Arc;

use anima_core::{DomainError, model::NewUser};
use anima_db::Store;
use anima_proto::v1::{
    agent_audit_service_server::AgentAuditServiceServer,
    agent_session_service_server::AgentSessionServiceServer, akh_service_server::AkhServiceServer,
    auth_service_server::AuthServiceServer, dashboard_service_server::DashboardServiceServer,
    document_service_server::DocumentServiceServer,
    mail_worker_service_server::MailWorkerServiceServer,
    mailbox_service_server::MailboxServiceServer, plan_service_server::PlanServiceServer,
    project_service_server::ProjectServiceServer,
    repository_service_server::RepositoryServiceServer, skill_service_server::SkillServiceServer,
    team_service_server::TeamServiceServer, thread_service_server::ThreadServiceServer,
    work_item_service_server::WorkItemServiceServer,
    workflow_service_server::WorkflowServiceServer,
};
use anyhow::Context;
use axum::{Router, routing::get};
use tonic::{service::Routes, transport::Channel};

use crate::{
    agents::AgentProvider,
    ai::Ai,
    auth::{Authenticator, LoginThrottle},
    config::ServerConfig,
    events::EventHub,
    forge::ForgeHosts,
    library::{GrpcLibrary, Library, NoLibrary},
    limits::RateLimiter,
    mcp,
    middleware::authorize,
    password::hash_password,
    secrets::SecretStores,
    services::{
        agent::{AgentAuditApi, AgentSessionApi},
        akh::AkhApi,
        auth::AuthApi,
        dashboard::DashboardApi,
        document::DocumentApi,
        mail_worker::MailWorkerApi,
        mailbox::MailboxApi,
        plan::PlanApi,
        project::ProjectApi,
        repository::RepositoryApi,
        skill::SkillApi,
        team::TeamApi,
        thread::ThreadApi,
        work_item::WorkItemApi,
        workflow::WorkflowApi,
    },
    supervisor::Supervisor,
    zones::NetworkZones,
};

/// The largest gRPC message of MailWorkerService, which carries fetched
/// mail with its attachments: the library's limit, with room for the rest
/// of the message.
const MAX_FILE_MESSAGE: usize = anima_core::document::MAX_DOCUMENT_SIZE + 4 * 1024 * 1024;

/// The largest message of SkillService: a whole skill version.
const MAX_SKILL_MESSAGE: usize = anima_core::skill::MAX_SKILL_BYTES + 4 * 1024 * 1024;

/// Internal services hosted in this process (see [`crate::in_process`]),
/// each used instead of its configured URL.
#[derive(Default)]
pub struct Hosted {
    /// anima-ai, instead of `ai_url`.
    pub ai: Option<Channel>,
    /// anima-library, instead of `library_url`.
    pub library: Option<Channel>,
}

/// Builds the whole HTTP router: every API service behind the auth
/// middleware, gRPC health and reflection, `/healthz`. Agent sessions go
/// to `provider` (see [`crate::agents::from_config`]; tests pass a double
/// that records what it is asked). Internal services are never served on
/// the listener.
pub async fn router(
    store: Arc<dyn Store>,
    config: &ServerConfig,
    hosted: Hosted,
    provider: Option<Arc<dyn AgentProvider>>,
) -> anyhow::Result<Router> {
    Ok(api(store, config, hosted, provider).await?.into_router())
}

/// The API's services before any caller is checked; [`Api::into_router`]
/// puts them behind the auth middleware.
pub struct Api {
    routes: Routes,
    authenticator: Authenticator,
    store: Arc<dyn Store>,
    library: Arc<dyn Library>,
    limits: RateLimiter,
}

impl Api {
    /// Every service behind [`authorize`], plus `/healthz` and `/mcp`.
    pub fn into_router(self) -> Router {
        let grpc = self
            .routes
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(
                self.authenticator.clone(),
                authorize,
            ));
        Self::with_http(
            grpc,
            self.store,
            self.library,
            self.limits,
            &self.authenticator,
        )
    }

    /// The same services behind [`trust_every_caller`] instead: for
    /// benchmarks that measure what authentication and RBAC cost. Never
    /// serve this router to a network.
    #[cfg(feature = "trust-every-caller")]
    pub fn into_router_trusting_every_caller(self) -> Router {
        let grpc = self
            .routes
            .into_axum_router()
            .layer(axum::middleware::from_fn(
                crate::middleware::trust_every_caller,
            ));
        Self::with_http(
            grpc,
            self.store,
            self.library,
            self.limits,
            &self.authenticator,
        )
    }

    fn with_http(
        grpc: Router,
        store: Arc<dyn Store>,
        library: Arc<dyn Library>,
        limits: RateLimiter,
        authenticator: &Authenticator,
    ) -> Router {
        let backend = store.backend();
        let http = Router::new().route(
            "/healthz",
            get(move || async move { format!("ok {backend}\n") }),
        );
        let cache = authenticator.cache().clone();
        grpc.merge(http)
            .merge(mcp::router(store, library, limits, cache))
    }
}

/// Builds every service of the API (see [`Api`]), once the documents'
/// bytes kept in the database before the library have moved to it. Without
/// a library (none hosted, no `library_url`) documents are refused.
pub async fn api(
    store: Arc<dyn Store>,
    config: &ServerConfig,
    hosted: Hosted,
    provider: Option<Arc<dyn AgentProvider>>,
) -> anyhow::Result<Api> {
    let authenticator = Authenticator::new(store.clone(), config)?;
    let library: Option<Arc<dyn Library>> = match (hosted.library, config.library_url.as_str()) {
        (Some(channel), _) => Some(Arc::new(GrpcLibrary::hosted(channel))),
        (None, "") => None,
        (None, url) => Some(Arc::new(GrpcLibrary::remote(url, &config.library_token)?)),
    };
    let library: Arc<dyn Library> = match library {
        Some(library) => {
            let moved = crate::library::move_legacy_blobs(&*store, &*library)
                .await
                .context("handing documents' bytes from the database to the library")?;
            if moved > 0 {
                tracing::info!(
                    moved,
                    "documents' bytes moved from the database to the library"
                );
            }
            tokio::spawn(crate::library::sweep_forever(
                store.clone(),
                library.clone(),
            ));
            library
        }
        None => {
            tracing::warn!(
                "no library_url: documents and mail with attachments are refused \
                 (`anima up` hosts a library itself)"
            );
            Arc::new(NoLibrary)
        }
    };
    let hub = EventHub::start(
        store.clone(),
        authenticator.clone(),
        config.stream_lag_limit,
        config.stream_heartbeat(),
        config.rate_limits.open_streams_per_user as usize,
    );
    let throttle = LoginThrottle::new(store.clone(), config);
    let secrets = Arc::new(SecretStores::new(config.secret_stores.clone())?);
    let zones = Arc::new(NetworkZones::new(config.network_zones.clone())?);
    let limits = RateLimiter::new(store.clone(), config.rate_limits);
    let ai = match hosted.ai {
        Some(channel) => Ai::hosted(channel),
        None => Ai::from_config(config)?,
    }
    .metered(limits.clone());
    if let Some(provider) = &provider {
        let resumed = Supervisor::new(store.clone(), provider.clone())
            .start(&hub)
            .await?;
        if resumed > 0 {
            tracing::info!(resumed, "following the agent sessions that were running");
        }
    }

    let (health_reporter, health) = tonic_health::server::health_reporter();
    let auth = AuthServiceServer::new(AuthApi::new(store.clone(), authenticator.clone(), throttle));
    let team = TeamServiceServer::new(TeamApi::new(store.clone(), authenticator.clone()));
    health_reporter
        .set_serving::<AuthServiceServer<AuthApi>>()
        .await;
    health_reporter
        .set_serving::<TeamServiceServer<TeamApi>>()
        .await;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(anima_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let routes = Routes::default()
        .add_service(auth)
        .add_service(team)
        .add_service(ProjectServiceServer::new(ProjectApi::new(
            store.clone(),
            config.project_creators,
        )))
        .add_service(PlanServiceServer::new(PlanApi::new(
            store.clone(),
            ai.clone(),
        )))
        .add_service(WorkItemServiceServer::new(WorkItemApi::new(
            store.clone(),
            ai.clone(),
            secrets.clone(),
            zones.clone(),
        )))
        .add_service(WorkflowServiceServer::new(WorkflowApi::new(store.clone())))
        .add_service(
            SkillServiceServer::new(SkillApi::new(store.clone()))
                .max_decoding_message_size(MAX_SKILL_MESSAGE)
                .max_encoding_message_size(MAX_SKILL_MESSAGE),
        )
        .add_service(ThreadServiceServer::new(ThreadApi::new(
            store.clone(),
            hub.clone(),
            ai.clone(),
            limits.clone(),
        )))
        .add_service(AgentSessionServiceServer::new(AgentSessionApi::new(
            store.clone(),
            hub.clone(),
            provider,
            secrets.clone(),
            zones,
        )))
        .add_service(AgentAuditServiceServer::new(AgentAuditApi::new(
            store.clone(),
        )))
        .add_service(RepositoryServiceServer::new(RepositoryApi::new(
            store.clone(),
            secrets.clone(),
            Arc::new(ForgeHosts::new(&config.forge_hosts)?),
        )))
        .add_service(MailboxServiceServer::new(MailboxApi::new(
            store.clone(),
            library.clone(),
            &config.mail_domains,
        )))
        .add_service(
            MailWorkerServiceServer::new(MailWorkerApi::new(store.clone(), ai, library.clone()))
                .max_decoding_message_size(MAX_FILE_MESSAGE),
        )
        .add_service(
            DocumentServiceServer::new(DocumentApi::new(
                store.clone(),
                library.clone(),
                limits.clone(),
                config.rate_limits.open_uploads_per_user as usize,
            ))
            .max_decoding_message_size(crate::services::document::MAX_CHUNK_MESSAGE),
        )
        .add_service(AkhServiceServer::new(AkhApi::new(store.clone())))
        .add_service(DashboardServiceServer::new(DashboardApi::new(
            store.clone(),
            hub,
        )))
        .add_service(health)
        .add_service(reflection);
    Ok(Api {
        routes,
        authenticator,
        store,
        library,
        limits,
    })
}

/// The administrator created on first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// Login name.
    pub username: String,
    /// The password, to show once; `None` when it came from the environment.
    pub generated_password: Option<String>,
}

/// On an empty database, creates the `admin` account: with `password` if
/// given (e.g. `ANIMA_ADMIN_PASSWORD`), else with a random one that the
/// caller prints once. Returns `None` when users already exist.
pub async fn bootstrap_admin(
    store: &Arc<dyn Store>,
    password: Option<String>,
) -> Result<Option<Bootstrap>, DomainError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password.filter(|p| !p.is_empty()) {
        Some(given) => {
            anima_core::validate::password(&given)?;
            (given, false)
        }
        None => {
            let random = anima_core::secret::new_token();
            (random.clone(), true)
        }
    };
    store
        .create_user(NewUser {
            username: "admin".into(),
            display_name: "Administrator".into(),
            email: String::new(),
            password_hash: hash_password(password.clone()).await?,
            is_admin: true,
        })
        .await?;
    Ok(Some(Bootstrap {
        username: "admin".into(),
        generated_password: generated.then_some(password),
    }))
}
