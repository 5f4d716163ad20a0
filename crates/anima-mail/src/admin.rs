//! Mailbox accounts on the mail server: created when a mailbox is, dropped
//! when it is deleted or rotated away. One trait, two implementations:
//! Stalwart's management REST API (the spec's mail server) and Cyrus (the
//! JMAP server the tests run, and a real choice where Cyrus is the server).
//!
//! anima-mail logs in to each account with a password derived from one
//! configured secret and the address ([`account_password`]), so no
//! per-mailbox secret is stored anywhere: rotating the secret and
//! re-provisioning changes them all.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Creates and removes mailbox accounts on a mail server.
#[async_trait::async_trait]
pub trait MailServerAdmin: Send + Sync {
    /// Creates the account `address` (its login is the address) with
    /// `password`. An account that exists already is someone's, and is left
    /// as it is ([`Provisioned::Exists`]) unless `take_over` (a server admin
    /// adopted it), when its password is set.
    async fn create_account(
        &self,
        address: &str,
        password: &str,
        take_over: bool,
    ) -> anyhow::Result<Provisioned>;
    /// Deletes the account and its mail; an absent account is fine.
    async fn drop_account(&self, address: &str) -> anyhow::Result<()>;
}

/// What [`MailServerAdmin::create_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// The account is Anima's to use: made now, or taken over.
    Ready,
    /// An account with this address exists and was left untouched.
    Exists,
}

/// The password of a mailbox account: HMAC-SHA-256 of the address under
/// the configured secret, hex.
pub fn account_password(secret: &str, address: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(address.to_lowercase().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Stalwart's management API (`/api/principal`, as documented for
/// Stalwart up to 0.15): an `individual` principal per mailbox whose name
/// and only address is the mailbox address.
///
/// Stalwart does not run on these machines: this implementation is tested
/// against the documented request and response shapes only.
pub struct StalwartAdmin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl StalwartAdmin {
    /// `base_url` is the server's HTTP root (`https://mail.example.org`);
    /// `user`/`password` an administrator's.
    pub fn new(base_url: &str, user: &str, password: &str) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: base_url.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The URL of one principal, its name percent-encoded: an address is
    /// never read as a path or a query.
    fn principal_url(&self, address: &str) -> String {
        format!(
            "{}/api/principal/{}",
            self.base,
            crate::jmap::encode(address)
        )
    }

    /// Sends a request; Stalwart reports failures either as an HTTP error
    /// or as `{"error": "...", ...}` in a 200 answer, so both are checked.
    /// Returns the error name, if any.
    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Result<(), String>> {
        let response = request
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .context("Stalwart management API")?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if let Some(error) = body.get("error").and_then(|error| error.as_str()) {
            return Ok(Err(error.to_owned()));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Err("notFound".into()));
        }
        anyhow::ensure!(
            status.is_success(),
            "Stalwart management API answered {status}: {body}"
        );
        Ok(Ok(()))
    }
}

#[async_trait::async_trait]
impl MailServerAdmin for StalwartAdmin {
    async fn create_account(
        &self,
        address: &str,
        password: &str,
        take_over: bool,
    ) -> anyhow::Result<Provisioned> {
        let created =
            self.call(self.http.post(format!("{}/api/principal", self.base)).json(
                &serde_json::json!({
                    "type": "individual",
                    "name": address,
                    "description": "Anima mailbox",
                    "emails": [address],
                    "secrets": [password],
                }),
            ))
            .await?;
        match created {
            Ok(()) => Ok(Provisioned::Ready),
            Err(error) if error == "fieldAlreadyExists" && !take_over => Ok(Provisioned::Exists),
            Err(error) if error == "fieldAlreadyExists" => {
                let reset =
                    self.call(self.http.patch(self.principal_url(address)).json(
                        &serde_json::json!([
                            {"action": "set", "field": "secrets", "value": [password]},
                        ]),
                    ))
                    .await?;
                reset
                    .map(|()| Provisioned::Ready)
                    .map_err(|error| anyhow::anyhow!("resetting {address}: {error}"))
            }
            Err(error) => anyhow::bail!("creating {address}: {error}"),
        }
    }

    async fn drop_account(&self, address: &str) -> anyhow::Result<()> {
        let deleted = self
            .call(self.http.delete(self.principal_url(address)))
            .await?;
        match deleted {
            Ok(()) => Ok(()),
            Err(error) if error == "notFound" => Ok(()),
            Err(error) => anyhow::bail!("deleting {address}: {error}"),
        }
    }
}

/// Cyrus IMAP with `virtdomains: userid` and a SASL database: the account
/// is a sasldb entry (set with Debian's `saslpasswd2`) plus the user's
/// mailbox, created and deleted over IMAP as a Cyrus administrator. It
/// needs the sasldb file on this host, as `saslpasswd2` does.
#[derive(Debug, Clone)]
pub struct CyrusAdmin {
    /// `host:port` of the IMAP service.
    pub imap: String,
    /// An administrator login (`admins:` in imapd.conf).
    pub admin_user: String,
    /// Its password.
    pub admin_password: String,
    /// The sasldb2 file.
    pub sasldb: PathBuf,
    /// `user:group` the sasldb must stay owned by, if any (Cyrus's services
    /// run as `cyrus:mail` and must read it).
    pub sasldb_owner: Option<String>,
}

impl CyrusAdmin {
    /// [`MailServerAdmin::create_account`], on this thread. An account
    /// exists when the SASL database knows the login or Cyrus has its
    /// mailbox; either way it is left alone unless `take_over`.
    pub fn create_account_now(
        &self,
        address: &str,
        password: &str,
        take_over: bool,
    ) -> anyhow::Result<Provisioned> {
        if !take_over && self.has_login(address)? {
            return Ok(Provisioned::Exists);
        }
        let statuses = self.imap_admin(&[format!("CREATE {}", user_mailbox(address))])?;
        let created = &statuses[0];
        let exists = created.contains("ALREADYEXISTS") || created.contains("already exists");
        anyhow::ensure!(
            created.starts_with("OK") || exists,
            "creating the mailbox of {address}: {created}"
        );
        if exists && !take_over {
            return Ok(Provisioned::Exists);
        }
        self.set_password(address, Some(password))?;
        Ok(Provisioned::Ready)
    }

    /// Whether the SASL database has a login for `address`.
    fn has_login(&self, address: &str) -> anyhow::Result<bool> {
        let output = Command::new("sasldblistusers2")
            .arg("-f")
            .arg(&self.sasldb)
            .output()
            .context("starting sasldblistusers2 (Debian package sasl2-bin)")?;
        let listed = String::from_utf8_lossy(&output.stdout);
        Ok(listed.lines().any(|line| {
            line.split_once(':')
                .is_some_and(|(login, _)| login.trim().eq_ignore_ascii_case(address))
        }))
    }

    /// [`MailServerAdmin::drop_account`], on this thread.
    pub fn drop_account_now(&self, address: &str) -> anyhow::Result<()> {
        let mailbox = user_mailbox(address);
        // Administrators may change ACLs but need the `x` right to delete.
        let statuses = self.imap_admin(&[
            format!("SETACL {mailbox} {} x", imap_quoted(&self.admin_user)),
            format!("DELETE {mailbox}"),
        ])?;
        let deleted = &statuses[1];
        anyhow::ensure!(
            deleted.starts_with("OK")
                || deleted.contains("NONEXISTENT")
                || deleted.contains("does not exist"),
            "deleting the mailbox of {address}: {deleted}"
        );
        self.set_password(address, None)
    }

    fn set_password(&self, address: &str, password: Option<&str>) -> anyhow::Result<()> {
        let mut command = Command::new("saslpasswd2");
        match password {
            Some(_) => command.args(["-p", "-c"]),
            None => command.arg("-d"),
        };
        let mut child = command
            .arg("-f")
            .arg(&self.sasldb)
            .arg(address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting saslpasswd2 (Debian package sasl2-bin)")?;
        if let Some(password) = password {
            child
                .stdin
                .take()
                .context("saslpasswd2's stdin")?
                .write_all(password.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // Deleting an absent user is what dropping twice does.
        let absent = password.is_none() && stderr.contains("not found");
        anyhow::ensure!(
            output.status.success() || absent,
            "saslpasswd2 {address}: {stderr}"
        );
        if let Some(owner) = &self.sasldb_owner {
            let status = Command::new("chown")
                .arg(owner)
                .arg(&self.sasldb)
                .status()?;
            anyhow::ensure!(status.success(), "chown {owner} {}", self.sasldb.display());
        }
        Ok(())
    }

    /// Runs IMAP commands as the administrator; returns each one's tagged
    /// status line (`OK …`, `NO …`).
    pub fn imap_admin(&self, commands: &[String]) -> anyhow::Result<Vec<String>> {
        let stream = TcpStream::connect(&self.imap)
            .with_context(|| format!("connecting to Cyrus IMAP at {}", self.imap))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        let mut line = String::new();
        reader.read_line(&mut line)?; // greeting
        let login = format!(
            "LOGIN {} {}",
            imap_quoted(&self.admin_user),
            imap_quoted(&self.admin_password)
        );
        let mut statuses = Vec::new();
        for (index, text) in std::iter::once(&login)
            .chain(commands)
            .chain(std::iter::once(&"LOGOUT".to_owned()))
            .enumerate()
        {
            let tag = format!("a{index}");
            writer.write_all(format!("{tag} {text}\r\n").as_bytes())?;
            let status = loop {
                line.clear();
                anyhow::ensure!(
                    reader.read_line(&mut line)? > 0,
                    "Cyrus closed the IMAP connection"
                );
                if let Some(status) = line.strip_prefix(&format!("{tag} ")) {
                    break status.trim_end().to_owned();
                }
            };
            if index == 0 {
                anyhow::ensure!(status.starts_with("OK"), "Cyrus admin login: {status}");
            } else if index <= commands.len() {
                statuses.push(status);
            }
        }
        Ok(statuses)
    }
}

/// The IMAP name of a user's INBOX under `virtdomains: userid`.
fn user_mailbox(address: &str) -> String {
    imap_quoted(&format!("user/{address}"))
}

/// An IMAP quoted string.
fn imap_quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[async_trait::async_trait]
impl MailServerAdmin for CyrusAdmin {
    async fn create_account(
        &self,
        address: &str,
        password: &str,
        take_over: bool,
    ) -> anyhow::Result<Provisioned> {
        let admin = self.clone();
        let (address, password) = (address.to_owned(), password.to_owned());
        tokio::task::spawn_blocking(move || {
            admin.create_account_now(&address, &password, take_over)
        })
        .await?
    }

    async fn drop_account(&self, address: &str) -> anyhow::Result<()> {
        let admin = self.clone();
        let address = address.to_owned();
        tokio::task::spawn_blocking(move || admin.drop_account_now(&address)).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_passwords_are_per_address_and_secret() {
        let one = account_password("secret", "desk@shop.example");
        assert_eq!(one.len(), 64);
        assert_eq!(one, account_password("secret", "Desk@Shop.Example"));
        assert_ne!(one, account_password("secret", "other@shop.example"));
        assert_ne!(one, account_password("other", "desk@shop.example"));
    }
}
