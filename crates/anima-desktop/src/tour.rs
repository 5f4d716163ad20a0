//! The screenshot tour: signs in, visits every screen in turn once its data
//! has arrived, and saves each as a PNG (`anima-desktop --screenshots
//! DIR`). `scripts/screenshots` runs it in a real window under Xvfb with
//! seeded data, for the README.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use slint::{ComponentHandle, Model};

use crate::{
    app::App,
    ui::{AppWindow, Screen},
};

/// Who the tour signs in as.
pub struct Credentials {
    /// Server address.
    pub server: String,
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// Lets the UI thread run for a while (rendering, callbacks) without
/// blocking it: a timer on the runtime wakes this task.
async fn pause(runtime: &tokio::runtime::Handle, millis: u64) {
    let (done, wait) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        let _ = done.send(());
    });
    let _ = wait.await;
}

async fn until(
    runtime: &tokio::runtime::Handle,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    for _ in 0..300 {
        if ready() {
            // Let the last change paint.
            pause(runtime, 300).await;
            return Ok(());
        }
        pause(runtime, 50).await;
    }
    anyhow::bail!("timed out waiting until {what}")
}

fn save(window: &AppWindow, dir: &std::path::Path, name: &str) -> anyhow::Result<()> {
    let snapshot = window.window().take_snapshot()?;
    let path = dir.join(format!("{name}.png"));
    let file = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut encoder = png::Encoder::new(file, snapshot.width(), snapshot.height());
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()?
        .write_image_data(snapshot.as_bytes())?;
    println!("{}", path.display());
    Ok(())
}

/// Visits every screen and saves it into `dir`.
async fn visit(
    app: &App,
    runtime: &tokio::runtime::Handle,
    credentials: &Credentials,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let window = app.window();
    pause(runtime, 500).await;
    window.set_server(credentials.server.as_str().into());
    save(window, dir, "01-login")?;
    window.invoke_login(
        credentials.server.as_str().into(),
        credentials.username.as_str().into(),
        credentials.password.as_str().into(),
    );
    until(runtime, "the dashboard has data", || {
        window.get_screen() == Screen::Dashboard && window.get_projects().row_count() > 0
    })
    .await?;
    save(window, dir, "02-dashboard")?;

    window.set_screen(Screen::Projects);
    pause(runtime, 300).await;
    save(window, dir, "03-projects")?;

    let project = window
        .get_projects()
        .iter()
        .max_by_key(|project| project.open)
        .context("no project")?;
    window.invoke_open_project(project.id.clone());
    until(runtime, "the project has work items", || {
        window.get_screen() == Screen::Project && window.get_work_items().row_count() > 0
    })
    .await?;
    save(window, dir, "04-project-detail")?;

    let item = window
        .get_work_items()
        .row_data(0)
        .context("no work item")?;
    window.invoke_open_work_item(item.id.clone());
    until(runtime, "the thread has messages", || {
        window.get_screen() == Screen::WorkItem && window.get_messages().row_count() > 0
    })
    .await?;
    save(window, dir, "05-work-item")?;

    window.set_screen(Screen::Email);
    pause(runtime, 300).await;
    save(window, dir, "06-work-item-email")?;

    for (screen, name, ready) in [
        (
            Screen::Library,
            "07-library",
            (|w: &AppWindow| w.get_documents().row_count() > 0) as fn(&AppWindow) -> bool,
        ),
        (Screen::Workflows, "08-workflows", |w: &AppWindow| {
            w.get_workflows().row_count() > 0
        }),
        (Screen::Team, "09-team", |w: &AppWindow| {
            w.get_people().row_count() > 0
        }),
        (Screen::Settings, "10-settings", |_: &AppWindow| true),
    ] {
        window.set_screen(screen);
        window.invoke_opened(screen);
        until(runtime, name, || ready(window)).await?;
        save(window, dir, name)?;
    }
    Ok(())
}

/// Runs the tour in `app`'s window, then closes it.
pub fn run(
    app: App,
    runtime: tokio::runtime::Handle,
    credentials: Credentials,
    dir: PathBuf,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let app = std::rc::Rc::new(app);
    let outcome = std::rc::Rc::new(std::cell::RefCell::new(Ok(())));
    let (tour_app, kept) = (app.clone(), outcome.clone());
    slint::spawn_local(async move {
        let result = visit(&tour_app, &runtime, &credentials, &dir).await;
        *kept.borrow_mut() = result;
        let _ = slint::quit_event_loop();
    })?;
    app.window().show()?;
    slint::run_event_loop()?;
    outcome.replace(Ok(()))
}
