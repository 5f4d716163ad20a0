//! A private Cyrus IMAP server for tests: its own configuration, spool,
//! SASL database and loopback ports in a temporary directory, with JMAP
//! over HTTP. Debian's `cyrus-imapd`, `cyrus-caldav` and `sasl2-bin` must
//! be installed (`scripts/setup-debian --with-mail-server`) and the tests
//! must run as root, because `cyrmaster` switches to the `cyrus` user.
//! JMAP submissions go through Debian's Exim (which `cyrus-imapd` brings as
//! its MTA) back into the same server.
//!
//! Every service's command line names the configuration file: Cyrus
//! services do not inherit `cyrmaster -C` and would read `/etc/imapd.conf`.

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::admin::CyrusAdmin;

/// The mail domain of test accounts.
pub const DOMAIN: &str = "anima.test";

/// The domain of accounts that stand for people outside Anima (the
/// customer an outbound mail goes to); served by the same server.
pub const EXTERNAL_DOMAIN: &str = "example.org";

/// Debian's Exim, which Cyrus hands JMAP submissions to.
const EXIM: &str = "/usr/sbin/exim4";

/// Password of the `cyrus` administrator of the test server.
const ADMIN_PASSWORD: &str = "cyrus-test-admin";

const CYRMASTER: &str = "/usr/sbin/cyrmaster";
const DELIVER: &str = "/usr/lib/cyrus/bin/deliver";

/// A running private Cyrus; stopped and deleted on drop.
pub struct CyrusServer {
    master: Child,
    dir: tempfile::TempDir,
    imap_port: u16,
    /// `http://127.0.0.1:PORT`, where `/.well-known/jmap` answers.
    pub http_url: String,
}

impl CyrusServer {
    /// Whether this machine can run one (packages installed, running as root).
    pub fn available() -> bool {
        Path::new(CYRMASTER).exists()
            && Path::new(DELIVER).exists()
            && Path::new(EXIM).exists()
            && is_root()
    }

    /// Starts a server and waits until it answers JMAP and IMAP.
    pub fn start() -> anyhow::Result<Self> {
        anyhow::ensure!(
            Self::available(),
            "Cyrus is not installed or this is not root: run scripts/setup-debian --with-mail-server"
        );
        let dir = tempfile::Builder::new().prefix("anima-cyrus-").tempdir()?;
        let root = dir.path();
        for sub in ["conf/socket", "spool", "sieve", "socket", "proc", "lock"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let (imap_port, http_port) = (free_port()?, free_port()?);
        let config = root.join("imapd.conf");
        let path = |sub: &str| root.join(sub).display().to_string();
        std::fs::write(
            &config,
            format!(
                "configdirectory: {conf}\n\
                 partition-default: {spool}\n\
                 sievedir: {sieve}\n\
                 admins: cyrus\n\
                 sasl_pwcheck_method: auxprop\n\
                 sasl_auxprop_plugin: sasldb\n\
                 sasl_sasldb_path: {sasldb}\n\
                 sasl_mech_list: PLAIN\n\
                 allowplaintext: yes\n\
                 httpmodules: jmap\n\
                 conversations: 1\n\
                 conversations_db: twoskip\n\
                 virtdomains: userid\n\
                 loginrealms: {DOMAIN} {EXTERNAL_DOMAIN}\n\
                 sendmail: {sendmail}\n\
                 lmtpsocket: {socket}/lmtp\n\
                 idlesocket: {socket}/idle\n\
                 notifysocket: {socket}/notify\n\
                 proc_path: {proc}\n\
                 mboxname_lockpath: {lock}\n\
                 syslog_prefix: anima-test-cyrus\n",
                conf = path("conf"),
                spool = path("spool"),
                sieve = path("sieve"),
                sasldb = path("sasldb2"),
                sendmail = path("sendmail"),
                socket = path("socket"),
                proc = path("proc"),
                lock = path("lock"),
            ),
        )?;
        let c = config.display();
        std::fs::write(
            root.join("cyrus.conf"),
            format!(
                "START {{\n  recover cmd=\"ctl_cyrusdb -C {c} -r\"\n}}\n\
                 SERVICES {{\n\
                 \x20 imap cmd=\"imapd -C {c}\" listen=\"127.0.0.1:{imap_port}\" prefork=0\n\
                 \x20 http cmd=\"httpd -C {c}\" listen=\"127.0.0.1:{http_port}\" prefork=0\n\
                 \x20 lmtpunix cmd=\"lmtpd -C {c}\" listen=\"{socket}/lmtp\" prefork=0\n\
                 }}\n\
                 EVENTS {{\n  checkpoint cmd=\"ctl_cyrusdb -C {c} -c\" period=30\n}}\n",
                socket = path("socket"),
            ),
        )?;
        write_mta(root)?;
        saslpasswd(root, "cyrus", ADMIN_PASSWORD)?;
        // The services run as cyrus:mail and must own their directories.
        run(Command::new("chown").args(["-R", "cyrus:mail"]).arg(root))?;
        let master = spawn_master(root)?;
        let server = Self {
            master,
            dir,
            imap_port,
            http_url: format!("http://127.0.0.1:{http_port}"),
        };
        server.wait_for_port(http_port)?;
        server.wait_for_port(imap_port)?;
        Ok(server)
    }

    /// Stops the server, keeping its data, as an outage would.
    pub fn stop(&mut self) {
        stop_master(&mut self.master);
    }

    /// Starts the server again on the same data and ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        stop_master(&mut self.master);
        self.master = spawn_master(self.dir.path())?;
        let http_port = self
            .http_url
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .context("the HTTP port")?;
        self.wait_for_port(http_port)?;
        self.wait_for_port(self.imap_port)
    }

    fn wait_for_port(&self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "Cyrus did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Creates the account `name@anima.test` with its INBOX; returns the
    /// login (the address).
    pub fn add_user(&self, name: &str, password: &str) -> anyhow::Result<String> {
        let login = format!("{name}@{DOMAIN}");
        self.admin().create_account_now(&login, password, true)?;
        Ok(login)
    }

    /// The administration of this server's accounts.
    pub fn admin(&self) -> CyrusAdmin {
        CyrusAdmin {
            imap: format!("127.0.0.1:{}", self.imap_port),
            admin_user: "cyrus".into(),
            admin_password: ADMIN_PASSWORD.into(),
            sasldb: self.dir.path().join("sasldb2"),
            sasldb_owner: Some("cyrus:mail".into()),
        }
    }

    /// Delivers a raw RFC 5322 message to `recipient`'s INBOX over LMTP,
    /// as an MTA would.
    pub fn deliver(&self, recipient: &str, sender: &str, message: &[u8]) -> anyhow::Result<()> {
        let mut child = Command::new(DELIVER)
            .arg("-C")
            .arg(self.dir.path().join("imapd.conf"))
            .args(["-a", recipient, "-r", sender, recipient])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting deliver")?;
        child
            .stdin
            .take()
            .context("deliver's stdin")?
            .write_all(message)?;
        let output = child.wait_with_output()?;
        anyhow::ensure!(
            output.status.success(),
            "deliver to {recipient} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The server's directory (configuration, spool).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for CyrusServer {
    fn drop(&mut self) {
        stop_master(&mut self.master);
    }
}

/// The SMTP path of JMAP submissions: Cyrus runs its `sendmail` program
/// with `-bs` and speaks SMTP to it; here that is Exim with its own
/// configuration (run as the `cyrus` user, which `-C` requires), which
/// delivers every recipient back into this Cyrus over LMTP. So sent mail
/// really travels: JMAP, SMTP, an MTA's queue, LMTP, a mailbox.
fn write_mta(root: &Path) -> anyhow::Result<()> {
    let spool = root.join("exim");
    std::fs::create_dir_all(&spool)?;
    let config = root.join("exim.conf");
    std::fs::write(
        &config,
        format!(
            "exim_user = cyrus\nexim_group = mail\nkeep_environment =\n\
             primary_hostname = {DOMAIN}\n\
             spool_directory = {spool}\nlog_file_path = {spool}/%slog\n\
             acl_smtp_rcpt = accept_all\n\
             begin acl\naccept_all:\n  accept\n\
             begin routers\ncyrus:\n  driver = accept\n  transport = cyrus_lmtp\n\
             begin transports\ncyrus_lmtp:\n  driver = lmtp\n  socket = {socket}\n",
            spool = spool.display(),
            socket = root.join("socket/lmtp").display(),
        ),
    )?;
    let wrapper = root.join("sendmail");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# Delivers at once (-odi), so a submission is in the recipient's\n# mailbox when it returns.\nexec {EXIM} -C {} -odi \"$@\"\n",
            config.display()
        ),
    )?;
    run(Command::new("chmod").arg("755").arg(&wrapper))
}

fn spawn_master(root: &Path) -> anyhow::Result<Child> {
    Command::new(CYRMASTER)
        .arg("-C")
        .arg(root.join("imapd.conf"))
        .arg("-M")
        .arg(root.join("cyrus.conf"))
        .arg("-p")
        .arg(root.join("master.pid"))
        // In the foreground, so that it is our child and dies with us.
        .arg("-D")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting cyrmaster")
}

/// SIGTERM lets cyrmaster stop its children; SIGKILL would orphan them.
fn stop_master(master: &mut Child) {
    if let Ok(Some(_)) = master.try_wait() {
        return;
    }
    let _ = Command::new("kill").arg(master.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = master.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = master.kill();
    let _ = master.wait();
}

fn saslpasswd(root: &Path, login: &str, password: &str) -> anyhow::Result<()> {
    let mut child = Command::new("saslpasswd2")
        .args(["-p", "-c", "-f"])
        .arg(root.join("sasldb2"))
        .arg(login)
        .stdin(Stdio::piped())
        .spawn()
        .context("starting saslpasswd2 (Debian package sasl2-bin)")?;
    child
        .stdin
        .take()
        .context("saslpasswd2's stdin")?
        .write_all(password.as_bytes())?;
    anyhow::ensure!(child.wait()?.success(), "saslpasswd2 {login} failed");
    Ok(())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.status()?;
    anyhow::ensure!(status.success(), "{command:?} failed");
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().next())
            == Some("0")
    })
}
