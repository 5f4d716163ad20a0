//! The desktop client against a real `anima up` process, driven through
//! Slint's testing backend (no display): log in, open a project and a work
//! item, post a message and see it in the thread; search the library by
//! words and by meaning and open what it finds; see a message posted
//! elsewhere arrive live and a new decision announced; keep preferences and
//! the profile on the server; then, with the server gone, open again from
//! the cache, read-only, under the offline banner, and come back online by
//! itself when the server returns.
//!
//! The testing backend can be set up once per process, so this file holds
//! one test.

use std::{cell::RefCell, rc::Rc, time::Duration};

use anima_desktop::{
    app::{App, Options},
    ui::Screen,
};
use i_slint_backend_testing::ElementHandle;
use slint::{ComponentHandle, Model, platform::Key};

mod common;

use common::{Up, cli, found_first};

/// Waits on the UI thread's executor without blocking it: a timer on the
/// Tokio runtime wakes the UI task.
async fn pause(runtime: &tokio::runtime::Handle) {
    let (done, wait) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = done.send(());
    });
    let _ = wait.await;
}

/// Polls `condition` for up to 20 seconds.
async fn until(
    runtime: &tokio::runtime::Handle,
    what: &str,
    mut condition: impl FnMut() -> bool,
) -> Result<(), String> {
    for _ in 0..400 {
        if condition() {
            return Ok(());
        }
        pause(runtime).await;
    }
    Err(format!("timed out waiting until {what}"))
}

fn element(
    root: &impl i_slint_backend_testing::ElementRoot,
    label: &str,
) -> Result<ElementHandle, String> {
    ElementHandle::find_by_accessible_label(root, label)
        .next()
        .ok_or_else(|| format!("no element labelled {label:?}"))
}

/// Presses `keys` together (held in order, released in reverse), as a
/// keyboard would send them.
fn press(window: &anima_desktop::ui::AppWindow, keys: &[slint::SharedString]) {
    use slint::platform::WindowEvent;
    for key in keys {
        window
            .window()
            .dispatch_event(WindowEvent::KeyPressed { text: key.clone() });
    }
    for key in keys.iter().rev() {
        window
            .window()
            .dispatch_event(WindowEvent::KeyReleased { text: key.clone() });
    }
}

fn bodies(app: &App) -> Vec<String> {
    app.window()
        .get_messages()
        .iter()
        .map(|message| message.body.to_string())
        .collect()
}

/// The first run: log in, navigate, post, see a live message.
async fn online(
    app: &App,
    runtime: &tokio::runtime::Handle,
    password: String,
    elsewhere: impl FnOnce(),
) -> Result<(), String> {
    let window = app.window();
    element(window, "username")?.set_accessible_value("admin");
    element(window, "password")?.set_accessible_value(password);
    element(window, "sign in")?.invoke_accessible_default_action();
    until(runtime, "the dashboard shows the project", || {
        window.get_screen() == Screen::Dashboard && window.get_projects().row_count() == 1
    })
    .await?;

    // The keyboard alone: Ctrl+2 to the projects, Tab past the grid and
    // list toggles to the first row, Enter to open it; Ctrl+1 back.
    press(window, &[Key::Control.into(), "2".into()]);
    until(runtime, "Ctrl+2 shows the projects", || {
        window.get_screen() == Screen::Projects
    })
    .await?;
    for _ in 0..3 {
        press(window, &[Key::Tab.into()]);
    }
    press(window, &[Key::Return.into()]);
    until(runtime, "Tab and Enter open the project", || {
        window.get_screen() == Screen::Project
    })
    .await?;
    press(window, &[Key::Control.into(), "1".into()]);
    until(runtime, "Ctrl+1 shows the dashboard", || {
        window.get_screen() == Screen::Dashboard
    })
    .await?;

    element(window, "Projects")?.invoke_accessible_default_action();
    until(runtime, "the project list shows", || {
        window.get_screen() == Screen::Projects
    })
    .await?;
    element(window, "project Desk")?.invoke_accessible_default_action();
    until(
        runtime,
        "the project's work items, repositories and skills load",
        || {
            window.get_screen() == Screen::Project
                && window.get_work_items().row_count() == 2
                && window
                    .get_repositories()
                    .iter()
                    .map(|repository| (repository.name.to_string(), repository.forge.to_string()))
                    .eq([("desk".to_owned(), "GitHub".to_owned())])
                && window
                    .get_skills()
                    .iter()
                    .any(|skill| skill.name == "code-reading" && skill.version == "not published")
        },
    )
    .await?;
    element(window, "work item WI-1")?.invoke_accessible_default_action();
    until(runtime, "the thread loads", || {
        window.get_screen() == Screen::WorkItem
            && bodies(app).contains(&"Seeded from the CLI".to_owned())
    })
    .await?;
    if window.get_item_title() != "Paint the window" {
        return Err(format!("work item title {:?}", window.get_item_title()));
    }
    until(runtime, "the phase strip and the history load", || {
        window.get_item_phases().row_count() == 3 && window.get_item_revisions().row_count() == 2
    })
    .await?;
    let current: Vec<String> = window
        .get_item_phases()
        .iter()
        .filter(|phase| phase.current)
        .map(|phase| phase.name.to_string())
        .collect();
    if current != ["Analysis"] || window.get_item_description() != "Second thoughts" {
        return Err(format!(
            "phase {current:?}, description {:?}",
            window.get_item_description()
        ));
    }
    element(window, "restore revision 1")?.invoke_accessible_default_action();
    until(runtime, "the first draft is restored as revision 3", || {
        window.get_item_description() == "First draft"
            && window.get_item_revisions().row_count() == 3
    })
    .await?;

    element(window, "message draft")?.set_accessible_value("Posted from the desktop");
    element(window, "post")?.invoke_accessible_default_action();
    until(runtime, "the posted message is in the thread", || {
        bodies(app).contains(&"Posted from the desktop".to_owned())
    })
    .await?;

    elsewhere();
    until(runtime, "a message posted elsewhere arrives live", || {
        bodies(app).contains(&"Posted from the terminal".to_owned())
    })
    .await?;
    until(runtime, "the decision asked elsewhere is announced", || {
        window
            .get_announcement()
            .contains("A decision waits for you: Paint it blue?")
    })
    .await?;
    element(window, "dismiss announcement")?.invoke_accessible_default_action();
    if !window.get_announcement().is_empty() {
        return Err("the announcement stays after dismissing it".into());
    }
    let authors: Vec<String> = window
        .get_messages()
        .iter()
        .map(|message| message.author.to_string())
        .collect();
    if !authors.iter().all(|author| author == "Administrator") {
        return Err(format!("authors {authors:?}"));
    }
    element(window, "email mode")?.invoke_accessible_default_action();
    until(runtime, "email mode opens", || {
        window.get_screen() == Screen::Email
    })
    .await?;
    element(window, "thread mode")?.invoke_accessible_default_action();
    until(runtime, "the thread is back", || {
        window.get_screen() == Screen::WorkItem
    })
    .await?;

    element(window, "Library")?.invoke_accessible_default_action();
    until(runtime, "the library lists the document", || {
        window
            .get_documents()
            .iter()
            .any(|document| document.title == "Window spec.md")
    })
    .await?;
    // Words only the text holds: the server's search finds them, and the
    // row shows the text around them.
    element(window, "search documents")?.set_accessible_value("four PANES");
    until(runtime, "the search finds the words in the text", || {
        window.get_documents().row_data(0).is_some_and(|first| {
            first.title == "Window spec.md" && first.snippet.contains("Four panes")
        })
    })
    .await?;
    // A question that shares no word with the rota finds it by meaning
    // (once the library has its vectors), and the row opens it.
    element(window, "search documents")?
        .set_accessible_value("who is on duty during the winter vacation");
    until(runtime, "the search finds the rota by meaning", || {
        window
            .get_documents()
            .row_data(0)
            .is_some_and(|first| first.title == "Holiday rota.md")
    })
    .await?;
    element(window, "open document Holiday rota.md")?.invoke_accessible_default_action();
    until(runtime, "the rota opens on its text", || {
        let reading = window.get_reading();
        reading.title == "Holiday rota.md"
            && reading.text.contains("Christmas break")
            && reading.about.starts_with("Desk · ")
    })
    .await?;
    element(window, "back to the library")?.invoke_accessible_default_action();
    until(runtime, "the list is back", || {
        window.get_reading().id.is_empty()
    })
    .await?;

    element(window, "Workflows")?.invoke_accessible_default_action();
    until(runtime, "the workflows list the built-ins", || {
        window
            .get_workflows()
            .iter()
            .any(|workflow| workflow.builtin)
    })
    .await?;
    element(window, "workflow name")?.set_accessible_value("Desk flow");
    element(window, "workflow phases")?.set_accessible_value("Draft:writing; Review");
    element(window, "create workflow")?.invoke_accessible_default_action();
    until(runtime, "the new workflow is listed", || {
        window.get_workflows().iter().any(|workflow| {
            workflow.name == "Desk flow" && workflow.phases == "Draft (writing)  →  Review"
        })
    })
    .await?;
    element(window, "edit workflow Desk flow")?.invoke_accessible_default_action();
    until(runtime, "the form holds the workflow", || {
        window.get_workflow_phases() == "Draft:writing; Review"
    })
    .await?;
    element(window, "workflow phases")?.set_accessible_value("Draft:writing@1; Review; Ship");
    element(window, "save workflow")?.invoke_accessible_default_action();
    until(runtime, "the edited workflow is listed", || {
        window.get_workflows().iter().any(|workflow| {
            workflow.name == "Desk flow"
                && workflow.phases == "Draft (writing@1)  →  Review  →  Ship"
        }) && window.get_workflow_editing().is_empty()
    })
    .await?;

    element(window, "Team")?.invoke_accessible_default_action();
    until(runtime, "the team shows the admin's role", || {
        window
            .get_people()
            .iter()
            .any(|person| person.username == "admin" && person.roles == "Desk: Owner")
    })
    .await?;
    let roles_of = |username: &str| {
        window
            .get_people()
            .iter()
            .find(|person| person.username == username)
            .map(|person| person.roles.to_string())
            .unwrap_or_default()
    };
    element(window, "member username")?.set_accessible_value("grace");
    element(window, "member project")?.set_accessible_value("desk");
    element(window, "member role")?.set_accessible_value("Viewer");
    element(window, "add member")?.invoke_accessible_default_action();
    until(runtime, "grace joins Desk as a viewer", || {
        roles_of("grace") == "Desk: Viewer"
    })
    .await?;
    element(window, "remove member")?.invoke_accessible_default_action();
    until(runtime, "grace leaves Desk", || {
        roles_of("grace") == "no project"
    })
    .await?;

    // Preferences and the profile are the account's, kept by the server.
    element(window, "Projects")?.invoke_accessible_default_action();
    element(window, "projects as grid")?.invoke_accessible_default_action();
    until(runtime, "the server keeps the grid layout", || {
        window.get_screen() == Screen::Projects && window.get_projects_grid()
    })
    .await?;
    element(window, "project Desk")?.invoke_accessible_default_action();
    until(runtime, "a tile opens its project", || {
        window.get_screen() == Screen::Project
    })
    .await?;
    press(window, &[Key::Control.into(), "6".into()]);
    element(window, "display name")?.set_accessible_value("Desk Admin");
    element(window, "email")?.set_accessible_value("desk@example.org");
    element(window, "save profile")?.invoke_accessible_default_action();
    until(runtime, "the new name shows", || {
        window.get_user_name() == "Desk Admin (@admin)"
    })
    .await?;
    element(window, "current password")?.set_accessible_value("not the password");
    element(window, "new password")?.set_accessible_value("another long password");
    element(window, "change password")?.invoke_accessible_default_action();
    until(runtime, "a wrong current password is refused", || {
        window.get_notice().contains("INVALID_CREDENTIALS")
    })
    .await?;
    Ok(())
}

/// The second run, with the server gone: the cache, read-only.
async fn offline(app: &App, runtime: &tokio::runtime::Handle) -> Result<(), String> {
    let window = app.window();
    until(runtime, "the cached dashboard shows", || {
        window.get_screen() == Screen::Dashboard && window.get_projects().row_count() == 1
    })
    .await?;
    until(runtime, "the offline banner shows", || window.get_offline()).await?;
    element(window, "Projects")?.invoke_accessible_default_action();
    until(runtime, "the project list shows", || {
        window.get_screen() == Screen::Projects
    })
    .await?;
    element(window, "project Desk")?.invoke_accessible_default_action();
    until(
        runtime,
        "the cached work items and repositories show",
        || window.get_work_items().row_count() == 2 && window.get_repositories().row_count() == 1,
    )
    .await?;
    element(window, "work item WI-1")?.invoke_accessible_default_action();
    until(runtime, "the cached thread shows", || {
        bodies(app).contains(&"Posted from the terminal".to_owned())
    })
    .await?;
    if element(window, "post")?.accessible_enabled() != Some(false) {
        return Err("posting is not disabled offline".into());
    }
    Ok(())
}

/// The server is back: the window leaves the cache by itself and follows
/// the open thread live again.
async fn back_online(
    app: &App,
    runtime: &tokio::runtime::Handle,
    post_elsewhere: impl FnOnce(),
) -> Result<(), String> {
    let window = app.window();
    until(runtime, "the offline banner goes", || !window.get_offline()).await?;
    if element(window, "post")?.accessible_enabled() != Some(true) {
        return Err("posting is still disabled online".into());
    }
    post_elsewhere();
    until(runtime, "the thread is live again", || {
        bodies(app).contains(&"Back online".to_owned())
    })
    .await
}

/// Runs `script` on the UI thread's event loop until it finishes.
fn drive<F>(script: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>> + 'static,
{
    let outcome = Rc::new(RefCell::new(Err("the script did not run".to_owned())));
    let kept = outcome.clone();
    slint::spawn_local(async move {
        *kept.borrow_mut() = script.await;
        let _ = slint::quit_event_loop();
    })
    .map_err(|err| err.to_string())?;
    slint::run_event_loop_until_quit().map_err(|err| err.to_string())?;
    outcome.replace(Ok(()))
}

#[test]
fn the_desktop_client_works_against_a_real_server_and_offline() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(&dir.path().join("data"), None);
    let config = dir.path().join("config");
    up.login_admin(&config);
    cli(&config, &["project", "create", "Desk"], "");
    cli(
        &config,
        &[
            "repo",
            "add",
            "git@github.com:team/desk.git",
            "--forge",
            "github",
            "--project",
            "Desk",
        ],
        "",
    );
    cli(
        &config,
        &["user", "create", "grace", "--password-stdin"],
        "a long enough password",
    );
    for title in ["Paint the window", "Hang the door"] {
        cli(
            &config,
            &[
                "workitem",
                "create",
                "--project",
                "Desk",
                title,
                "--description",
                "First draft",
            ],
            "",
        );
    }
    cli(
        &config,
        &[
            "workitem",
            "edit",
            "WI-1",
            "--project",
            "Desk",
            "--description",
            "Second thoughts",
        ],
        "",
    );
    cli(
        &config,
        &[
            "thread",
            "post",
            "WI-1",
            "--project",
            "Desk",
            "Seeded from the CLI",
        ],
        "",
    );
    for (title, text) in [
        ("Window spec.md", "# The window\n\nFour panes."),
        (
            "Holiday rota.md",
            "# Holiday rota\n\nWho covers the support desk over the Christmas break: \
             Ada until the 27th, then Grace.",
        ),
    ] {
        let path = dir.path().join(title);
        std::fs::write(&path, text).expect("a document");
        cli(
            &config,
            &[
                "doc",
                "upload",
                path.to_str().expect("path"),
                "--project",
                "Desk",
            ],
            "",
        );
    }
    // The desktop asks once per query: the vectors are there before it does.
    found_first(
        &config,
        "Desk",
        "who is on duty during the winter vacation",
        "Holiday rota.md",
    );
    let cache = dir.path().join("desktop.sqlite");

    {
        let app = App::start(
            Options {
                cache: cache.clone(),
                server: Some(up.address.clone()),
                ca_cert: None,
            },
            runtime.handle().clone(),
        )
        .expect("app");
        let app = Rc::new(app);
        let handle = runtime.handle().clone();
        let script_app = app.clone();
        let config = config.clone();
        let password = up.admin_password.clone();
        let outcome = drive(async move {
            online(&script_app, &handle, password, move || {
                cli(
                    &config,
                    &[
                        "thread",
                        "post",
                        "WI-1",
                        "--project",
                        "Desk",
                        "Posted from the terminal",
                    ],
                    "",
                );
                cli(
                    &config,
                    &[
                        "ask",
                        "WI-2",
                        "--project",
                        "Desk",
                        "Paint it blue?",
                        "--input",
                        "Colour",
                        "--choice",
                        "yes",
                        "--choice",
                        "no",
                    ],
                    "",
                );
            })
            .await
        });
        outcome.expect("online");
    }

    let users: serde_json::Value =
        serde_json::from_str(&cli(&config, &["user", "list", "--json"], "")).expect("json");
    let admin = users
        .as_array()
        .and_then(|users| users.iter().find(|user| user["username"] == "admin"))
        .expect("the admin is listed");
    assert_eq!(admin["display_name"], "Desk Admin");
    assert_eq!(admin["email"], "desk@example.org");
    assert_eq!(admin["preferences"]["desktop.projects_layout"], "grid");

    let (address, password) = (up.address.clone(), up.admin_password.clone());
    drop(up);
    let app = Rc::new(
        App::start(
            Options {
                cache,
                server: None,
                ca_cert: None,
            },
            runtime.handle().clone(),
        )
        .expect("app"),
    );
    let handle = runtime.handle().clone();
    let script_app = app.clone();
    drive(async move { offline(&script_app, &handle).await }).expect("offline");

    let _up = Up::restart(&dir.path().join("data"), &address, &password);
    let handle = runtime.handle().clone();
    drive(async move {
        back_online(&app, &handle, move || {
            cli(
                &config,
                &["thread", "post", "WI-1", "--project", "Desk", "Back online"],
                "",
            );
        })
        .await
    })
    .expect("back online");
}
