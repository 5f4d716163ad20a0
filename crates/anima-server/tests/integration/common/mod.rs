//! An in-process server on a loopback port, over a throw-away database, and
//! helpers to call it as different users.

use std::{net::SocketAddr, sync::Arc};

use anima_client::Services;
use anima_core::model::NewUser;
use anima_db::{Store, testing::TempDatabase};
use anima_proto::v1 as pb;
use anima_server::{
    ServerConfig,
    agents::{AgentProvider, ProvisionRequest},
};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;

/// Password of every user the helpers create.
pub const PASSWORD: &str = "correct horse battery";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub channel: Channel,
    /// The blobs of the library the server uses, hosted in process.
    pub blobs: anima_library::BlobStore,
    /// The channel the server reaches that library by.
    pub library: Channel,
    /// Where those blobs (and the library's index, in `index/`) are.
    pub library_dir: tempfile::TempDir,
    pub db: TempDatabase,
    _server: tokio::task::JoinHandle<()>,
}

/// How a test server's library finds documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// By their words alone: no anima-ai, so no model is loaded.
    ByWords,
    /// By words and meaning, with vectors from anima-ai (the real model
    /// where it is installed) hosted in process.
    ByMeaning,
}

/// A library in a temporary directory, hosted in process: its blobs and
/// the channel a server reaches it by.
pub async fn hosted_library(
    search: Search,
) -> (anima_library::BlobStore, Channel, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("library directory");
    let blobs =
        anima_library::BlobStore::in_directory(dir.path(), anima_library::DEFAULT_MAX_BLOB_BYTES)
            .expect("library");
    let ai = (search == Search::ByMeaning).then(|| {
        let ai = anima_ai::service(anima_ai::AiConfig::default()).expect("anima-ai");
        anima_library::Embeddings::hosted(anima_server::in_process::channel(
            tonic::service::Routes::new(ai),
        ))
    });
    let indexer = anima_library::LibrarySettings::default()
        .open_index(Some(&dir.path().join("index")), ai)
        .await
        .expect("index");
    tokio::spawn(indexer.clone().embed_forever());
    let channel = anima_server::in_process::channel(tonic::service::Routes::new(
        // This test binary serves no PDF readers: PDFs are kept unsearched.
        anima_library::service(blobs.clone(), None, indexer),
    ));
    (blobs, channel, dir)
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, ServerConfig::default()).await
    }

    pub async fn start_with(backend: Backend, config: ServerConfig) -> Self {
        Self::start_with_provider(backend, config, None).await
    }

    pub async fn start_with_provider(
        backend: Backend,
        config: ServerConfig,
        provider: Option<Arc<dyn AgentProvider>>,
    ) -> Self {
        Self::launch(backend, config, provider, Some(Search::ByWords)).await
    }

    /// A server whose library finds documents by meaning too.
    pub async fn start_searching_by_meaning(backend: Backend) -> Self {
        Self::launch(
            backend,
            ServerConfig::default(),
            None,
            Some(Search::ByMeaning),
        )
        .await
    }

    /// A server with no library (a standalone anima-server without
    /// `library_url`).
    pub async fn start_without_library(backend: Backend) -> Self {
        Self::launch(backend, ServerConfig::default(), None, None).await
    }

    async fn launch(
        backend: Backend,
        mut config: ServerConfig,
        provider: Option<Arc<dyn AgentProvider>>,
        library_search: Option<Search>,
    ) -> Self {
        let db = match backend {
            Backend::Sqlite => TempDatabase::sqlite(),
            Backend::Postgres => TempDatabase::postgres().await,
        };
        let store = db.open().await;
        config.listen = "127.0.0.1:0".parse().expect("addr");
        let (blobs, library, library_dir) =
            hosted_library(library_search.unwrap_or(Search::ByWords)).await;
        let hosted = anima_server::Hosted {
            ai: None,
            library: library_search.map(|_| library.clone()),
        };
        let router = anima_server::router(store.clone(), &config, hosted, provider)
            .await
            .expect("router");
        let listener = anima_server::Listener::bind(&config).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = anima_server::serve(listener, router, std::future::pending()).await;
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        Self {
            addr,
            store,
            channel,
            blobs,
            library,
            library_dir,
            db,
            _server: server,
        }
    }

    /// Id of the newest outbox event, once every committed event is
    /// readable: unchanged means nothing changed.
    pub async fn last_event_id(&self) -> i64 {
        anima_db::testing::settle_events(&*self.store).await;
        self.store.last_event().await.expect("last event").id
    }

    /// Creates a user directly in the store (fast: hashes once per test
    /// run) and returns its id.
    pub async fn user(&self, username: &str, is_admin: bool) -> String {
        let hash = password_hash().await;
        self.store
            .create_user(NewUser {
                username: username.into(),
                display_name: username.into(),
                email: String::new(),
                password_hash: hash,
                is_admin,
            })
            .await
            .expect("create user")
            .id
    }

    /// Logs in through the API and returns the token.
    pub async fn login(&self, username: &str) -> String {
        self.auth()
            .login(pb::LoginRequest {
                username: username.into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("login")
            .into_inner()
            .token
    }
}

async fn password_hash() -> String {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_init(|| async {
        anima_server::password::hash_password(PASSWORD.into())
            .await
            .expect("hash")
    })
    .await
    .clone()
}

/// An upload that starts with `first` and then sends 1 MiB chunks for
/// ever: only a refusal while it streams ends the call.
pub fn endless_upload(
    first: pb::UploadDocumentRequest,
) -> impl tokio_stream::Stream<Item = pb::UploadDocumentRequest> {
    tokio_stream::iter(std::iter::once(first).chain(std::iter::repeat_with(|| {
        pb::UploadDocumentRequest {
            content: vec![1; 1024 * 1024],
            ..Default::default()
        }
    })))
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// The code and ErrorInfo reason of a failed call.
pub fn failure<T: std::fmt::Debug>(result: Result<T, Status>) -> (Code, String) {
    code_and_reason(&result.expect_err("the call must fail"))
}

/// The code and ErrorInfo reason of a status.
pub fn code_and_reason(status: &Status) -> (Code, String) {
    let reason = status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default();
    (status.code(), reason)
}

/// Test double of an agent provider: provisions nothing and records what
/// it was asked, including each session's MCP token.
#[derive(Default)]
pub struct RecordingProvider {
    pub provisioned: std::sync::Mutex<Vec<ProvisionRequest>>,
    pub destroyed: std::sync::Mutex<Vec<String>>,
    /// When set, it has lost every sandbox (as a restarted provider has).
    pub lost: std::sync::atomic::AtomicBool,
}

impl RecordingProvider {
    /// The MCP token handed over for a session.
    pub fn token_of(&self, session_id: &str) -> String {
        self.provisioned
            .lock()
            .expect("lock")
            .iter()
            .find(|request| request.session.id == session_id)
            .map(|request| request.mcp_token.clone())
            .expect("the session was provisioned")
    }
}

#[async_trait::async_trait]
impl AgentProvider for RecordingProvider {
    async fn provision(
        &self,
        request: ProvisionRequest,
    ) -> Result<String, anima_core::DomainError> {
        let vm_id = format!("recorded-{}", request.session.id);
        self.provisioned.lock().expect("lock").push(request);
        Ok(vm_id)
    }

    async fn destroy(
        &self,
        session: &anima_core::agent::AgentSession,
    ) -> Result<(), anima_core::DomainError> {
        self.destroyed
            .lock()
            .expect("lock")
            .push(session.id.clone());
        Ok(())
    }

    async fn state(
        &self,
        vm_id: &str,
    ) -> Result<anima_server::agents::AgentState, anima_core::DomainError> {
        if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            Err(anima_core::DomainError::not_found(
                anima_core::error::reason::VM_NOT_FOUND,
                format!("no sandbox {vm_id}"),
            ))
        } else {
            Ok(anima_server::agents::AgentState::Unknown)
        }
    }

    async fn login_credentials(
        &self,
        vm_id: &str,
        _user_id: &str,
    ) -> Result<anima_proto::v1::LoginCredentials, anima_core::DomainError> {
        Ok(anima_proto::v1::LoginCredentials {
            host: "127.0.0.1".into(),
            port: 22,
            username: format!("login-{}", anima_core::id::new_id()),
            private_key_pem: format!("key of {vm_id}"),
            command: String::new(),
            host_public_key: "ssh-ed25519 AAAA".into(),
            expire_time: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: 0,
            }),
        })
    }
}

/// Generates one test per backend from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

impl anima_client::Services for TestServer {
    fn channel(&self) -> Channel {
        self.channel.clone()
    }
}
