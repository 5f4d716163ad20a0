//! The session token in a real OS keyring: gnome-keyring's Secret Service
//! on a private D-Bus session bus. The checks run in processes of their own
//! (the `#[ignore]`d tests below, started by the first), since the keyring
//! is chosen once per process from the bus in its environment.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use anima_desktop::{
    cache::Cache,
    session::{Kept, SessionTokens},
};

/// A daemon stopped when the test ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keyring_installed() -> bool {
    let installed = ["/usr/bin/dbus-daemon", "/usr/bin/gnome-keyring-daemon"]
        .iter()
        .all(|program| Path::new(program).exists());
    if !installed {
        assert!(
            std::env::var_os("ANIMA_TEST_REQUIRE_KEYRING").is_none(),
            "gnome-keyring is required here; run scripts/setup-debian --with-test-clients"
        );
        eprintln!("gnome-keyring not installed (scripts/setup-debian); skipped");
    }
    installed
}

/// Runs one of the `#[ignore]`d checks below in a process of its own, on
/// the session bus at `bus`, and requires that it ran and passed.
fn run_checks(name: &str, bus: &str) -> Output {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", name, "--test-threads=1"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .expect("run the checks");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn the_session_token_lives_in_the_keyring_when_one_answers() {
    if !keyring_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon");
    let mut address = String::new();
    BufReader::new(bus.stdout.take().expect("stdout"))
        .read_line(&mut address)
        .expect("the bus address");
    let address = address.trim().to_owned();
    let _bus = Daemon(bus);

    let home = dir.path().join("home");
    let runtime = dir.path().join("run");
    for path in [&home, &runtime] {
        std::fs::create_dir_all(path).expect("dir");
    }
    let mut keyring = Command::new("gnome-keyring-daemon")
        .args(["--foreground", "--unlock", "--components=secrets"])
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gnome-keyring-daemon");
    // The password that makes and unlocks its login keyring.
    keyring
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"keyring password")
        .expect("unlock");
    let _keyring = Daemon(keyring);
    let serving = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        Command::new("dbus-send")
            .arg(format!("--bus={address}"))
            .args([
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Service",
                "string:Collections",
            ])
            .output()
            .is_ok_and(|output| output.status.success())
    });
    assert!(serving, "gnome-keyring answers on the private bus");

    run_checks("with_a_keyring", &address);
    // No bus at all: the cache keeps it.
    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    run_checks("without_a_keyring", &nowhere);
}

const SERVER: &str = "https://anima.test:7433";

/// Whether `token` is anywhere in the cache's files.
fn cache_holds(path: &Path, token: &str) -> bool {
    ["", "-wal"].iter().any(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::read(&name).is_ok_and(|bytes| {
            bytes
                .windows(token.len())
                .any(|window| window == token.as_bytes())
        })
    })
}

#[tokio::test]
#[ignore = "run by the_session_token_lives_in_the_keyring_when_one_answers"]
async fn with_a_keyring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("desktop.sqlite");
    let cache = Cache::open(&path).await.expect("cache");
    let tokens = SessionTokens::new(cache.clone());
    let token = "token-that-only-the-keyring-holds";
    assert_eq!(
        tokens.save(SERVER, token).await.expect("save"),
        Kept::Keyring
    );
    assert!(!cache_holds(&path, token));
    assert_eq!(
        tokens.load(SERVER).await.expect("load").as_deref(),
        Some(token)
    );
    // Another cache (a wiped one) still finds it.
    let other = Cache::open(&dir.path().join("other.sqlite"))
        .await
        .expect("cache");
    assert_eq!(
        SessionTokens::new(other)
            .load(SERVER)
            .await
            .expect("load")
            .as_deref(),
        Some(token)
    );
    tokens.forget(SERVER).await.expect("forget");
    assert_eq!(tokens.load(SERVER).await.expect("load"), None);

    // A token an earlier version left in the cache moves into the keyring,
    // as the token of the server the cache names, and of no other.
    cache
        .set_meta("token", "an-older-token")
        .await
        .expect("meta");
    cache.set_meta("server", SERVER).await.expect("meta");
    assert_eq!(
        tokens.load("https://elsewhere.test").await.expect("load"),
        None
    );
    assert_eq!(
        tokens.load(SERVER).await.expect("load").as_deref(),
        Some("an-older-token")
    );
    for key in ["token", "token:https://anima.test:7433"] {
        assert_eq!(cache.meta(key).await.expect("meta"), None, "{key}");
    }
    tokens.forget(SERVER).await.expect("forget");
}

#[tokio::test]
#[ignore = "run by the_session_token_lives_in_the_keyring_when_one_answers"]
async fn without_a_keyring() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("desktop.sqlite");
    let tokens = SessionTokens::new(Cache::open(&path).await.expect("cache"));
    let token = "token-in-the-private-cache";
    assert_eq!(tokens.save(SERVER, token).await.expect("save"), Kept::Cache);
    assert_eq!(
        tokens.load(SERVER).await.expect("load").as_deref(),
        Some(token)
    );
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the cache");
    tokens.forget(SERVER).await.expect("forget");
    assert_eq!(tokens.load(SERVER).await.expect("load"), None);
}
