//! The controller: wires the window's callbacks to the gRPC client and the
//! cache on a Tokio runtime, so no I/O runs on the UI thread, and hands
//! results back to the UI thread, where the view models turn them into
//! rows.
//!
//! On start the cached data is shown at once, then refreshed from the
//! server; streams keep the open screen current. With the server down the
//! window shows the cache, read-only, under an offline banner.

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
    ui::{AppWindow, Screen},
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

    /// Shows the cached dashboard and projects.
    async fn show_dashboard(&self) {
        let dashboard: Option<pb::Dashboard> = self
            .cache
            .get(Kind::Dashboard, "dashboard")
            .await
            .ok()
            .flatten();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let names = self.names();
        self.ui(move |window| {
            let dashboard = dashboard.unwrap_or_default();
            window.set_projects(viewmodel::rows(viewmodel::project_rows(
                &projects,
                Some(&dashboard),
            )));
            window.set_decisions(viewmodel::rows(viewmodel::decision_rows(&dashboard)));
            window.set_sessions(viewmodel::rows(viewmodel::session_rows(
                &dashboard.active_sessions,
                &names,
            )));
        });
    }

    /// Refreshes the dashboard whenever something changes in the caller's
    /// projects (the stream only says that something did).
    fn follow_dashboard(self: Arc<Self>, after: i64) {
        let Some(client) = self.client() else { return };
        let controller = self.clone();
        let task = self.runtime.spawn(async move {
            let Ok(mut updates) = client.stream_dashboard(after).await else {
                return;
            };
            while let Ok(Some(update)) = updates.message().await {
                if matches!(update.kind, Some(pb::dashboard_update::Kind::Event(_))) {
                    let dashboard = match client.dashboard().await {
                        Ok(dashboard) => dashboard,
                        Err(_) => break,
                    };
                    controller.announce(&dashboard).await;
                    let _ = controller
                        .cache
                        .replace_records(
                            Kind::Dashboard,
                            "",
                            std::slice::from_ref(&dashboard),
                            dashboard_key,
                        )
                        .await;
                    controller.show_dashboard().await;
                }
            }
            // The stream ended: the server went away (offline until it is
            // back), or ended it (follow again, after a breath).
            match client.who_am_i().await {
                Ok(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    controller.spawn(controller.clone().refresh());
                }
                Err(status) => controller.failed(&status),
            }
        });
        if let Ok(mut state) = self.state.lock()
            && let Some(previous) = state.dashboard.replace(task)
        {
            previous.abort();
        }
    }

    /// Tells the user what they asked to hear of: what is new in
    /// `dashboard` against the cached one.
    async fn announce(&self, dashboard: &pb::Dashboard) {
        let Ok(Some(before)) = self
            .cache
            .get::<pb::Dashboard>(Kind::Dashboard, "dashboard")
            .await
        else {
            return;
        };
        let preferences = self
            .state
            .lock()
            .map(|state| state.preferences)
            .unwrap_or_default();
        let said = viewmodel::announcements(&before, dashboard, preferences, &self.names());
        if !said.is_empty() {
            self.announcement(said.join(" · "));
        }
    }

    fn announcement(&self, text: String) {
        self.ui(move |window| window.set_announcement(text.into()));
    }

    /// Shows the cached account: its name, profile and preferences.
    async fn show_account(&self) {
        let Ok(Some(account)) = self.cache.get::<pb::User>(Kind::Account, "me").await else {
            return;
        };
        let preferences = Preferences::from_map(&account.preferences);
        if let Ok(mut state) = self.state.lock() {
            state.preferences = preferences;
        }
        self.ui(move |window| {
            window
                .set_user_name(format!("{} (@{})", account.display_name, account.username).into());
            window.set_profile_name(account.display_name.into());
            window.set_profile_email(account.email.into());
            window.set_projects_grid(preferences.projects_grid);
            window.set_notify_decisions(preferences.notify_decisions);
            window.set_notify_agents(preferences.notify_agents);
        });
    }

    /// Caches the signed-in account as the server now has it, and shows it.
    async fn account_changed(&self, account: pb::User) {
        if let Err(err) = self
            .cache
            .upsert_record(Kind::Account, "", &account, |_| {
                ("me".into(), String::new())
            })
            .await
        {
            tracing::warn!("cannot cache the account: {err:#}");
        }
        self.show_account().await;
    }

    async fn account(&self) -> Option<pb::User> {
        self.cache.get(Kind::Account, "me").await.ok().flatten()
    }

    async fn save_profile(self: Arc<Self>, display_name: String, email: String) {
        let (Some(client), Some(account)) = (self.client(), self.account().await) else {
            return;
        };
        match client
            .update_profile(&account.id, display_name.trim(), email.trim())
            .await
        {
            Ok(account) => {
                self.notice("");
                self.account_changed(account).await;
                self.announcement("Profile saved.".into());
            }
            Err(status) => self.failed(&status),
        }
    }

    async fn change_password(self: Arc<Self>, current: String, new: String) {
        let Some(client) = self.client() else { return };
        match client.change_password(&current, &new).await {
            Ok(()) => {
                self.notice("");
                self.announcement(
                    "Password changed; your other sessions have been signed out.".into(),
                );
            }
            Err(status) => self.failed(&status),
        }
    }

    /// Saves the preferences on the server (they follow the account);
    /// a refusal puts the switches back as they were.
    async fn save_preferences(self: Arc<Self>, grid: bool, decisions: bool, agents: bool) {
        let (Some(client), Some(mut account)) = (self.client(), self.account().await) else {
            return;
        };
        let preferences = Preferences {
            projects_grid: grid,
            notify_decisions: decisions,
            notify_agents: agents,
        };
        preferences.merge_into(&mut account.preferences);
        match client
            .update_preferences(&account.id, account.preferences)
            .await
        {
            Ok(account) => self.account_changed(account).await,
            Err(status) => {
                self.failed(&status);
                self.show_account().await;
            }
        }
    }

    async fn open_project(self: Arc<Self>, id: String) {
        if let Ok(mut state) = self.state.lock() {
            state.project = Some(id.clone());
        }
        self.ui(|window| window.set_screen(Screen::Project));
        self.show_project(&id).await;
        self.load_project(id).await;
    }

    /// Shows the cached project: its plans, the skills its workflows need,
    /// its work items.
    async fn show_project(&self, id: &str) {
        let open = self
            .state
            .lock()
            .is_ok_and(|state| state.project.as_deref() == Some(id));
        if !open {
            return;
        }
        let project: Option<pb::Project> = self.cache.get(Kind::Project, id).await.ok().flatten();
        let items: Vec<pb::WorkItem> = self
            .cache
            .list(Kind::WorkItem, id)
            .await
            .unwrap_or_default();
        let plans: Vec<pb::Plan> = self.cache.list(Kind::Plan, id).await.unwrap_or_default();
        let workflows: Vec<pb::Workflow> = self
            .cache
            .list(Kind::Workflow, "")
            .await
            .unwrap_or_default();
        let skills: Vec<pb::Skill> = self.cache.list(Kind::Skill, "").await.unwrap_or_default();
        self.ui(move |window| {
            window.set_project_name(project.map(|p| p.name).unwrap_or_default().into());
            window.set_plans(viewmodel::rows(viewmodel::plan_rows(&plans)));
            window.set_skills(viewmodel::rows(viewmodel::project_skill_rows(
                &items, &workflows, &skills,
            )));
            window.set_work_items(viewmodel::rows(viewmodel::work_item_rows(&items)));
        });
    }

    /// Fetches the project's work items and plans, the workflows and the
    /// published skills.
    async fn load_project(self: Arc<Self>, id: String) {
        let Some(client) = self.client() else { return };
        let fetched = tokio::try_join!(
            client.work_items(&id),
            client.plans(&id),
            client.workflows(),
            client.skills(),
        );
        let (items, plans, workflows, skills) = match fetched {
            Ok(fetched) => fetched,
            Err(status) => return self.failed(&status),
        };
        let cached = async {
            self.cache
                .replace_records(Kind::Plan, &id, &plans, |plan| {
                    (plan.id.clone(), plan.title.to_lowercase())
                })
                .await?;
            self.cache
                .replace_records(Kind::WorkItem, &id, &items, |item| {
                    (item.id.clone(), format!("{:020}", key_number(&item.key)))
                })
                .await?;
            self.cache
                .replace_records(Kind::Workflow, "", &workflows, workflow_key)
                .await?;
            self.cache
                .replace_records(Kind::Skill, "", &skills, |skill| {
                    (
                        format!("{}@{}", skill.name, skill.version),
                        skill.name.clone(),
                    )
                })
                .await
        };
        if let Err(err) = cached.await {
            tracing::warn!("cannot cache the project: {err:#}");
        }
        self.show_project(&id).await;
    }

    async fn open_work_item(self: Arc<Self>, id: String) {
        if let Ok(mut state) = self.state.lock() {
            state.work_item = Some(id.clone());
        }
        self.ui(|window| window.set_screen(Screen::WorkItem));
        self.show_item(&id).await;
        self.show_thread(&id).await;
        self.clone().load_item(id.clone()).await;
        self.load_thread(id).await;
    }

    fn is_open(&self, work_item_id: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|state| state.work_item.as_deref() == Some(work_item_id))
    }

    /// Shows the cached work item: its fields, phase strip, capabilities,
    /// sessions and description history.
    async fn show_item(&self, id: &str) {
        if !self.is_open(id) {
            return;
        }
        let item: pb::WorkItem = self
            .cache
            .get(Kind::WorkItem, id)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let workflow: Option<pb::Workflow> = self
            .cache
            .get(Kind::Workflow, &item.workflow_id)
            .await
            .ok()
            .flatten();
        let revisions: Vec<pb::DescriptionRevision> = self
            .cache
            .list(Kind::Revision, id)
            .await
            .unwrap_or_default();
        let sessions: Vec<pb::AgentSession> =
            self.cache.list(Kind::Session, id).await.unwrap_or_default();
        let names = self.names();
        self.ui(move |window| {
            let phases = viewmodel::phase_chips(workflow.as_ref(), &item.phase_id);
            window.set_item_phases(viewmodel::rows(phases));
            window.set_item_capabilities(viewmodel::rows(viewmodel::capability_rows(
                &item.capabilities,
            )));
            window.set_item_sessions(viewmodel::rows(viewmodel::session_rows(
                sessions.iter().rev(),
                &names,
            )));
            window.set_item_revisions(viewmodel::rows(viewmodel::revision_rows(
                &revisions,
                &item.description_revision_id,
                &names,
            )));
            window.set_item_key(item.key.into());
            window.set_item_title(item.title.into());
            window.set_item_description(item.description.into());
            window.set_item_status(viewmodel::work_item_status(item.status).into());
            window.set_item_phase(item.phase_id.into());
        });
    }

    /// Fetches the work item with its history, sessions and workflow.
    async fn load_item(self: Arc<Self>, id: String) {
        let Some(client) = self.client() else { return };
        let fetched = tokio::try_join!(
            client.work_item(&id),
            client.revisions(&id),
            client.sessions(&id),
            client.workflows(),
        );
        let (item, revisions, sessions, workflows) = match fetched {
            Ok(fetched) => fetched,
            Err(status) => return self.failed(&status),
        };
        let cached = async {
            self.cache
                .upsert_record(Kind::WorkItem, &item.project_id, &item, |item| {
                    (item.id.clone(), format!("{:020}", key_number(&item.key)))
                })
                .await?;
            self.cache
                .replace_records(Kind::Revision, &id, &revisions, |revision| {
                    (revision.id.clone(), format!("{:020}", revision.number))
                })
                .await?;
            self.cache
                .replace_records(Kind::Session, &id, &sessions, |session| {
                    (session.id.clone(), session.id.clone())
                })
                .await?;
            self.cache
                .replace_records(Kind::Workflow, "", &workflows, workflow_key)
                .await
        };
        if let Err(err) = cached.await {
            tracing::warn!("cannot cache the work item: {err:#}");
        }
        self.show_item(&id).await;
    }

    /// Restores an earlier description of the open work item.
    async fn revert(self: Arc<Self>, revision_id: String) {
        let work_item = self
            .state
            .lock()
            .ok()
            .and_then(|state| state.work_item.clone());
        let (Some(client), Some(work_item)) = (self.client(), work_item) else {
            return;
        };
        let base = self
            .cache
            .get::<pb::WorkItem>(Kind::WorkItem, &work_item)
            .await
            .ok()
            .flatten()
            .map(|item| item.description_revision_id)
            .unwrap_or_default();
        match client.revert(&work_item, &revision_id, &base).await {
            Ok(_) => self.load_item(work_item).await,
            Err(status) => self.failed(&status),
        }
    }

    /// Shows the cached thread of `work_item_id` if it is still open.
    async fn show_thread(&self, work_item_id: &str) {
        if !self.is_open(work_item_id) {
            return;
        }
        let messages: Vec<pb::Message> = self
            .cache
            .list(Kind::Message, work_item_id)
            .await
            .unwrap_or_default();
        let names = self.names();
        self.ui(move |window| {
            window.set_messages(viewmodel::rows(viewmodel::message_rows(&messages, &names)));
            window.set_emails(viewmodel::rows(viewmodel::email_rows(&messages, &names)));
        });
    }

    async fn cache_message(&self, message: &pb::Message) {
        if let Err(err) = self
            .cache
            .upsert_record(Kind::Message, &message.work_item_id, message, message_key)
            .await
        {
            tracing::warn!("cannot cache a message: {err:#}");
        }
    }

    /// Fetches the thread, caches and shows it, and follows it live.
    async fn load_thread(self: Arc<Self>, work_item_id: String) {
        let Some(client) = self.client() else { return };
        let messages = match client.thread(&work_item_id).await {
            Ok(messages) => messages,
            Err(status) => return self.failed(&status),
        };
        if let Err(err) = self
            .cache
            .replace_records(Kind::Message, &work_item_id, &messages, message_key)
            .await
        {
            tracing::warn!("cannot cache the thread: {err:#}");
        }
        self.show_thread(&work_item_id).await;

        let controller = self.clone();
        let following = work_item_id.clone();
        let task = self.runtime.spawn(async move {
            let Ok(mut events) = client.stream_thread(&following, 0).await else {
                return;
            };
            while let Ok(Some(event)) = events.message().await {
                if let Some(pb::thread_event::Kind::Message(message)) = event.kind {
                    controller.cache_message(&message).await;
                    controller.show_thread(&following).await;
                }
            }
        });
        if let Ok(mut state) = self.state.lock()
            && let Some(previous) = state.following.replace(task)
        {
            previous.abort();
        }
    }

    async fn post(self: Arc<Self>, text: String) {
        let text = text.trim().to_owned();
        let work_item = self
            .state
            .lock()
            .ok()
            .and_then(|state| state.work_item.clone());
        let (Some(client), Some(work_item), false) = (self.client(), work_item, text.is_empty())
        else {
            return;
        };
        match client.post(&work_item, &text).await {
            Ok(message) => {
                self.cache_message(&message).await;
                self.show_thread(&work_item).await;
            }
            Err(status) => self.failed(&status),
        }
    }

    async fn answer(self: Arc<Self>, id: String, answer: String) {
        let Some(client) = self.client() else { return };
        match client.resolve_decision(&id, answer.trim()).await {
            Ok(_) => self.refresh().await,
            Err(status) => self.failed(&status),
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

    async fn show_library(&self) {
        let documents: Vec<pb::Document> = self
            .cache
            .list_all(Kind::Document)
            .await
            .unwrap_or_default();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let search = self
            .state
            .lock()
            .map(|state| state.search.clone())
            .unwrap_or_default();
        self.ui(move |window| {
            window.set_documents(viewmodel::rows(viewmodel::document_rows(
                &documents, &projects, &search,
            )))
        });
    }

    /// Every project's documents.
    async fn load_library(self: Arc<Self>) {
        self.show_library().await;
        let Some(client) = self.client() else { return };
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        for project in projects {
            let documents = match client.documents(&project.id).await {
                Ok(documents) => documents,
                Err(status) => return self.failed(&status),
            };
            if let Err(err) = self
                .cache
                .replace_records(Kind::Document, &project.id, &documents, |document| {
                    (document.id.clone(), document.title.to_lowercase())
                })
                .await
            {
                tracing::warn!("cannot cache documents: {err:#}");
            }
        }
        self.show_library().await;
    }

    async fn search(self: Arc<Self>, text: String) {
        if let Ok(mut state) = self.state.lock() {
            state.search = text;
        }
        self.show_library().await;
    }

    fn show_workflows(&self, workflows: Vec<pb::Workflow>) {
        self.ui(move |window| {
            window.set_workflows(viewmodel::rows(viewmodel::workflow_rows(&workflows)))
        });
    }

    async fn load_workflows(self: Arc<Self>) {
        self.show_workflows(
            self.cache
                .list(Kind::Workflow, "")
                .await
                .unwrap_or_default(),
        );
        let Some(client) = self.client() else { return };
        let workflows = match client.workflows().await {
            Ok(workflows) => workflows,
            Err(status) => return self.failed(&status),
        };
        if let Err(err) = self
            .cache
            .replace_records(Kind::Workflow, "", &workflows, workflow_key)
            .await
        {
            tracing::warn!("cannot cache workflows: {err:#}");
        }
        self.show_workflows(workflows);
    }

    async fn create_workflow(self: Arc<Self>, name: String, phases: String) {
        let Some(client) = self.client() else { return };
        let created = client
            .create_workflow(name.trim(), viewmodel::parse_phases(&phases))
            .await;
        self.workflow_saved(created).await;
    }

    /// Fills the workflow form with a custom workflow to edit.
    async fn edit_workflow(self: Arc<Self>, id: String) {
        let Ok(Some(workflow)) = self.cache.get::<pb::Workflow>(Kind::Workflow, &id).await else {
            return;
        };
        let phases = viewmodel::phases_text(&workflow);
        self.ui(move |window| {
            window.set_workflow_editing(workflow.id.into());
            window.set_workflow_name(workflow.name.into());
            window.set_workflow_phases(phases.into());
        });
    }

    async fn save_workflow(self: Arc<Self>, id: String, name: String, phases: String) {
        let Some(client) = self.client() else { return };
        let saved = client
            .update_workflow(&id, name.trim(), viewmodel::parse_phases(&phases))
            .await;
        self.workflow_saved(saved).await;
    }

    /// After a create or save: an empty form and the fresh list, or why not.
    async fn workflow_saved(self: Arc<Self>, outcome: Result<pb::Workflow, tonic::Status>) {
        match outcome {
            Ok(_) => {
                self.ui(|window| {
                    window.set_notice("".into());
                    window.set_workflow_editing("".into());
                    window.set_workflow_name("".into());
                    window.set_workflow_phases("".into());
                });
                self.load_workflows().await;
            }
            Err(status) => self.failed(&status),
        }
    }

    async fn show_team(&self) {
        let users: Vec<pb::User> = self.cache.list(Kind::User, "").await.unwrap_or_default();
        let members: Vec<pb::ProjectMember> =
            self.cache.list_all(Kind::Member).await.unwrap_or_default();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        self.ui(move |window| {
            window.set_people(viewmodel::rows(viewmodel::people_rows(
                &users, &members, &projects,
            )))
        });
    }

    /// The accounts and every project's members.
    async fn load_team(self: Arc<Self>) {
        self.show_team().await;
        let Some(client) = self.client() else { return };
        let users = match client.users().await {
            Ok(users) => users,
            Err(status) => return self.failed(&status),
        };
        if let Err(err) = self
            .cache
            .replace_records(Kind::User, "", &users, |user| {
                (user.id.clone(), user.username.clone())
            })
            .await
        {
            tracing::warn!("cannot cache users: {err:#}");
        }
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        for project in projects {
            let members = match client.members(&project.id).await {
                Ok(members) => members,
                Err(status) => return self.failed(&status),
            };
            let key = |member: &pb::ProjectMember| {
                (
                    format!("{}:{}", member.project_id, member.user_id),
                    member.username.clone(),
                )
            };
            if let Err(err) = self
                .cache
                .replace_records(Kind::Member, &project.id, &members, key)
                .await
            {
                tracing::warn!("cannot cache members: {err:#}");
            }
        }
        self.show_team().await;
    }

    /// Adds a user to a project with a role (or changes it), or removes
    /// them; each is named as a person would (username, project name, role
    /// name).
    async fn change_member(
        self: Arc<Self>,
        username: String,
        project: String,
        role: String,
        remove: bool,
    ) {
        let Some(client) = self.client() else { return };
        let users: Vec<pb::User> = self.cache.list(Kind::User, "").await.unwrap_or_default();
        let projects: Vec<pb::Project> =
            self.cache.list(Kind::Project, "").await.unwrap_or_default();
        let (username, project, role) = (username.trim(), project.trim(), role.trim());
        let Some(user) = users.iter().find(|user| user.username == username) else {
            return self.notice(format!("no user is named {username:?}"));
        };
        let Some(project) = projects
            .iter()
            .find(|candidate| candidate.name.eq_ignore_ascii_case(project))
        else {
            return self.notice(format!("no project is named {project:?}"));
        };
        let changed = if remove {
            client.remove_member(&project.id, &user.id).await
        } else {
            let roles = match client.roles().await {
                Ok(roles) => roles,
                Err(status) => return self.failed(&status),
            };
            let Some(role) = roles
                .iter()
                .find(|candidate| candidate.name.eq_ignore_ascii_case(role))
            else {
                return self.notice(format!("no role is named {role:?}"));
            };
            client
                .add_member(&project.id, &user.id, &role.id)
                .await
                .map(drop)
        };
        match changed {
            Ok(()) => {
                self.notice("");
                self.load_team().await;
            }
            Err(status) => self.failed(&status),
        }
    }

    async fn send_email(self: Arc<Self>, to: String, subject: String, body: String) {
        let work_item = self
            .state
            .lock()
            .ok()
            .and_then(|state| state.work_item.clone());
        let (Some(client), Some(work_item)) = (self.client(), work_item) else {
            return;
        };
        let to: Vec<String> = to
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_owned)
            .collect();
        match client
            .send_email(&work_item, to, subject.trim(), &body)
            .await
        {
            Ok(message) => {
                self.notice("");
                self.cache_message(&message).await;
                self.show_thread(&work_item).await;
            }
            Err(status) => self.failed(&status),
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

/// The dashboard's cache key: there is one.
fn dashboard_key(_: &pb::Dashboard) -> Key {
    ("dashboard".into(), String::new())
}

/// A thread message's cache key: its id, and its place by sequence.
fn message_key(message: &pb::Message) -> Key {
    (message.id.clone(), format!("{:020}", message.sequence))
}

/// The number in a `WI-<n>` key.
fn key_number(key: &str) -> u64 {
    key.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
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
