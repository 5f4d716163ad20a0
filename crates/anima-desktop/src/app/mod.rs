//! The controller: wires the window's callbacks to the gRPC client and the
//! cache on a Tokio runtime, so no I/O runs on the UI thread, and hands
//! results back to the UI thread, where the view models turn them into
//! rows.
//!
//! On start the cached data is shown at once, then refreshed from the
//! server; streams keep the open screen current. With the server down the
//! window shows the cache, read-only, under an offline banner.

mod dashboard;
mod email;
mod library;
mod project;
mod settings;
mod team;
mod work_item;
mod workflows;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anima_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use slint::ComponentHandle;
use tokio::task::JoinHandle;

use crate::{
    cache::{Cache, Key, Kind},
    client::{Client, describe},
    session::SessionTokens,
    ui::{AppWindow, DocumentText, Screen},
    viewmodel::{self, Names, Preferences},
};

/// Where the client keeps its cache, and which server it offers first.
#[derive(Debug, Clone)]
pub struct Options {
    /// The SQLite cache file.
    pub cache: PathBuf,
    /// The server address shown on the login screen when none is cached.
    pub server: Option<String>,
    /// PEM file of the CA that signed an https:// server's certificate
    /// (a private CA); without it, the system's trusted roots.
    pub ca_cert: Option<PathBuf>,
}

/// The window; its callbacks hold the controller.
pub struct App {
    window: AppWindow,
}

/// Names cached beside the records, so an offline thread still says who
/// wrote what.
#[derive(Debug, Default, Serialize, Deserialize)]
struct CachedNames {
    users: Vec<(String, String)>,
    akhs: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    client: Option<Client>,
    names: Names,
    /// The open project and work item.
    project: Option<String>,
    work_item: Option<String>,
    /// The live thread of the open work item.
    following: Option<JoinHandle<()>>,
    /// The live dashboard updates.
    dashboard: Option<JoinHandle<()>>,
    /// What the library is filtered by.
    search: String,
    /// What the server found for it (titles and text), once it answered.
    search_hits: Option<(String, Vec<pb::SearchHit>)>,
    /// The signed-in user's preferences.
    preferences: Preferences,
    /// Whether a loop is waiting for the server to answer again.
    reconnecting: bool,
}

struct Controller {
    runtime: tokio::runtime::Handle,
    window: slint::Weak<AppWindow>,
    cache: Cache,
    tokens: SessionTokens,
    /// See [`Options::ca_cert`].
    ca_cert: Option<PathBuf>,
    state: Mutex<State>,
}

impl App {
    /// Makes the window, opens the cache, and starts: cached data first,
    /// then the server. Runs its I/O on `runtime`.
    pub fn start(options: Options, runtime: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let cache = runtime.block_on(Cache::open(&options.cache))?;
        let window = AppWindow::new()?;
        window.set_cache_path(options.cache.display().to_string().into());
        if let Some(server) = &options.server {
            window.set_server(server.as_str().into());
        }
        let controller = Arc::new(Controller {
            runtime,
            window: window.as_weak(),
            tokens: SessionTokens::new(cache.clone()),
            cache,
            ca_cert: options.ca_cert,
            state: Mutex::new(State::default()),
        });
        controller.wire(&window);
        controller.spawn({
            let controller = controller.clone();
            async move { controller.resume().await }
        });
        Ok(Self { window })
    }

    /// The window.
    pub fn window(&self) -> &AppWindow {
        &self.window
    }

    /// Shows the window and runs the UI until it closes.
    pub fn run(&self) -> anyhow::Result<()> {
        self.window.run()?;
        Ok(())
    }
}

impl Controller {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(task);
    }

    /// Runs `update` on the UI thread with the window.
    fn ui(&self, update: impl FnOnce(&AppWindow) + Send + 'static) {
        if let Err(err) = self
            .window
            .upgrade_in_event_loop(move |window| update(&window))
        {
            tracing::debug!(%err, "the window is gone");
        }
    }

    fn notice(&self, text: impl Into<String>) {
        let text = text.into();
        self.ui(move |window| window.set_notice(text.into()));
    }

    fn client(&self) -> Option<Client> {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.client.clone())
    }

    /// The id of the work item on screen, if one is.
    fn open_item_id(&self) -> Option<String> {
        self.state
            .lock()
            .ok()
            .and_then(|state| state.work_item.clone())
    }

    fn names(&self) -> Names {
        self.state
            .lock()
            .map(|state| state.names.clone())
            .unwrap_or_default()
    }

    /// Each window callback runs its controller method on the runtime,
    /// with the callback's arguments converted (`SharedString` → `String`).
    fn wire(self: &Arc<Self>, window: &AppWindow) {
        macro_rules! wire {
            ($($on:ident => $method:ident($($arg:ident),*);)*) => {$({
                let controller = self.clone();
                window.$on(move |$($arg),*| {
                    let task = controller.clone();
                    controller.spawn(async move { task.$method($($arg.into()),*).await });
                });
            })*};
        }
        wire! {
            on_login => login(server, username, password);
            on_open_project => open_project(id);
            on_open_work_item => open_work_item(id);
            on_post => post(text);
            on_answer => answer(id, answer);
            on_refresh => refresh();
            on_opened => opened(screen);
            on_send_email => send_email(to, subject, body);
            on_search_documents => search(text);
            on_open_document => open_document(id);
            on_close_document => close_document();
            on_create_workflow => create_workflow(name, phases);
            on_edit_workflow => edit_workflow(id);
            on_save_workflow => save_workflow(id, name, phases);
            on_change_member => change_member(user, project, role, remove);
            on_revert => revert(revision_id);
            on_sign_out => sign_out();
            on_wipe_cache => wipe();
            on_save_profile => save_profile(display_name, email);
            on_change_password => change_password(current, new);
            on_save_preferences => save_preferences(grid, decisions, agents);
        }
    }

    /// On start: a remembered login shows the cached dashboard at once,
    /// then refreshes it.
    async fn resume(self: Arc<Self>) {
        let server = self.cache.meta("server").await.ok().flatten();
        let token = match &server {
            Some(server) => self.tokens.load(server).await.unwrap_or_else(|err| {
                tracing::warn!("cannot read the session token: {err:#}");
                None
            }),
            None => None,
        };
        if let Ok(Some(names)) = self.cache.meta("names").await
            && let Ok(cached) = serde_json::from_str::<CachedNames>(&names)
            && let Ok(mut state) = self.state.lock()
        {
            state.names = Names {
                users: cached.users.into_iter().collect(),
                akhs: cached.akhs.into_iter().collect(),
            };
        }
        let (Some(server), Some(token)) = (server, token) else {
            return;
        };
        self.show_account().await;
        {
            let server = server.clone();
            self.ui(move |window| {
                window.set_server(server.into());
                window.set_screen(Screen::Dashboard);
            });
        }
        self.show_dashboard().await;
        match Client::with_token(&server, self.ca_cert.as_deref(), &token) {
            Ok(client) => {
                if let Ok(mut state) = self.state.lock() {
                    state.client = Some(client);
                }
                self.refresh().await;
            }
            Err(err) => self.notice(format!("{err:#}")),
        }
    }

    async fn login(self: Arc<Self>, server: String, username: String, password: String) {
        self.ui(|window| window.set_busy(true));
        match Client::login(
            server.trim(),
            self.ca_cert.as_deref(),
            username.trim(),
            &password,
        )
        .await
        {
            Ok(client) => {
                let remembered = async {
                    // One server's token at a time; the token before the
                    // server that names it.
                    let previous = self.cache.meta("server").await?;
                    if let Some(previous) = previous.filter(|p| p != server.trim()) {
                        self.tokens.forget(&previous).await?;
                    }
                    self.tokens.save(server.trim(), client.token()).await?;
                    self.cache.set_meta("server", server.trim()).await
                };
                if let Err(err) = remembered.await {
                    tracing::warn!("cannot remember the login: {err:#}");
                }
                if let Ok(mut state) = self.state.lock() {
                    state.client = Some(client);
                }
                self.ui(|window| {
                    window.set_notice("".into());
                    window.set_screen(Screen::Dashboard);
                });
                self.show_dashboard().await;
                self.clone().refresh().await;
            }
            Err(err) => self.notice(format!("{err:#}")),
        }
        self.ui(|window| window.set_busy(false));
    }

    /// Whether a failed call means the server cannot be reached.
    fn unreachable(status: &tonic::Status) -> bool {
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        )
    }

    /// Handles a failed call: offline (until the server answers again),
    /// logged out, or an error to show.
    fn failed(self: &Arc<Self>, status: &tonic::Status) {
        if Self::unreachable(status) {
            let text = describe(status);
            self.ui(move |window| {
                window.set_offline(true);
                window.set_notice(format!("The server cannot be reached ({text}).").into());
            });
            self.reconnect();
        } else if status.code() == tonic::Code::Unauthenticated {
            self.ui(|window| {
                window.set_screen(Screen::Login);
                window.set_notice("Your session ended; sign in again.".into());
            });
        } else {
            self.notice(describe(status));
        }
    }

    /// Asks the server, with growing pauses, until it answers, then
    /// refreshes everything (which ends the offline banner and follows the
    /// streams again). One such loop at a time; signing out ends it.
    fn reconnect(self: &Arc<Self>) {
        match self.state.lock() {
            Ok(mut state) if !state.reconnecting && state.client.is_some() => {
                state.reconnecting = true;
            }
            _ => return,
        }
        let controller = self.clone();
        self.spawn(async move {
            let mut pause = Duration::from_millis(500);
            while let Some(client) = controller.client() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                match client.who_am_i().await {
                    Err(status) if Self::unreachable(&status) => continue,
                    _ => break,
                }
            }
            if let Ok(mut state) = controller.state.lock() {
                state.reconnecting = false;
            }
            controller.refresh().await;
        });
    }

    /// Fetches the dashboard, projects and names, caches them, and shows
    /// them; then the open project and work item.
    async fn refresh(self: Arc<Self>) {
        let Some(client) = self.client() else { return };
        let fetched = async {
            let me = client.who_am_i().await?;
            let dashboard = client.dashboard().await?;
            let projects = client.projects().await?;
            let names = fetch_names(&client).await?;
            Ok::<_, tonic::Status>((me, dashboard, projects, names))
        };
        let (me, dashboard, projects, names) = match fetched.await {
            Ok(fetched) => fetched,
            Err(status) => return self.failed(&status),
        };
        self.ui(move |window| {
            window.set_offline(false);
            window.set_notice("".into());
        });
        if let Some(user) = me.user {
            self.account_changed(user).await;
        }
        let cached = async {
            self.cache
                .replace_records(
                    Kind::Dashboard,
                    "",
                    std::slice::from_ref(&dashboard),
                    dashboard_key,
                )
                .await?;
            self.cache
                .replace_records(Kind::Project, "", &projects, |project| {
                    (project.id.clone(), project.name.to_lowercase())
                })
                .await?;
            let names = CachedNames {
                users: names.users.clone().into_iter().collect(),
                akhs: names.akhs.clone().into_iter().collect(),
            };
            self.cache
                .set_meta("names", &serde_json::to_string(&names)?)
                .await
        };
        if let Err(err) = cached.await {
            tracing::warn!("cannot cache the dashboard: {err:#}");
        }
        let (project, work_item) = match self.state.lock() {
            Ok(mut state) => {
                state.names = names;
                (state.project.clone(), state.work_item.clone())
            }
            Err(_) => (None, None),
        };
        self.show_dashboard().await;
        self.clone().follow_dashboard(dashboard.as_of_event_id);
        if let Some(project) = project {
            self.clone().load_project(project).await;
        }
        if let Some(work_item) = work_item {
            self.clone().load_thread(work_item).await;
        }
    }

    /// A screen that loads its data when it is opened.
    async fn opened(self: Arc<Self>, screen: Screen) {
        match screen {
            Screen::Library => self.load_library().await,
            Screen::Workflows => self.load_workflows().await,
            Screen::Team => self.load_team().await,
            _ => {}
        }
    }

    /// Forgets the session; the cache stays until wiped.
    async fn sign_out(self: Arc<Self>) {
        if let Some(client) = self.client()
            && let Err(status) = client.logout().await
        {
            // Offline: the token stays valid on the server until it expires.
            tracing::warn!("the server did not end the session: {}", describe(&status));
        }
        let server = self.cache.meta("server").await.ok().flatten();
        let mut problem = String::new();
        if let Some(server) = server
            && let Err(err) = self.tokens.forget(&server).await
        {
            problem = format!("Signed out, but {err:#}");
        }
        if let Ok(mut state) = self.state.lock() {
            state.client = None;
            for task in [state.following.take(), state.dashboard.take()]
                .into_iter()
                .flatten()
            {
                task.abort();
            }
        }
        self.ui(move |window| {
            window.set_notice(problem.into());
            window.set_screen(Screen::Login);
        });
    }

    /// Forgets the cache and rebuilds it from the server.
    async fn wipe(self: Arc<Self>) {
        if let Err(err) = self.cache.wipe().await {
            return self.notice(format!("cannot wipe the cache: {err:#}"));
        }
        self.show_dashboard().await;
        self.refresh().await;
    }
}

/// A workflow's cache key: by name.
fn workflow_key(workflow: &pb::Workflow) -> Key {
    (workflow.id.clone(), workflow.name.to_lowercase())
}

/// The number in a `WI-<n>` key.
fn key_number(key: &str) -> u64 {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The dashboard's cache key: there is one.
fn dashboard_key(_: &pb::Dashboard) -> Key {
    ("dashboard".into(), String::new())
}

/// Who the ids in threads and sessions are.
async fn fetch_names(client: &Client) -> Result<Names, tonic::Status> {
    let users = client.users().await?;
    let akhs = client.akhs().await?;
    Ok(Names {
        users: users
            .into_iter()
            .map(|user| {
                let name = if user.display_name.is_empty() {
                    user.username
                } else {
                    user.display_name
                };
                (user.id, name)
            })
            .collect(),
        akhs: akhs.into_iter().map(|akh| (akh.id, akh.name)).collect(),
    })
}
