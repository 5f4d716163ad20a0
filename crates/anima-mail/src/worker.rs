//! The worker: follows every mailbox anima-server knows and sends the
//! queued outbound mail ([`crate::outbound`]). A supervisor lists the
//! mailboxes every poll interval; each active one gets its account on
//! the mail server ([`MailServerAdmin`]) and a follower task ([`follow`]);
//! a mailbox whose settings changed gets a new follower; a dropping one
//! loses its follower and its account, then anima-server forgets it.
//!
//! Followers are stopped by aborting them, even mid-pass: a pass is
//! exactly-once however it ends (see [`crate::sync`]).

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use anima_core::mail::{Address, ScreeningRules};
use anima_proto::v1 as pb;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::{
    admin::{CyrusAdmin, MailServerAdmin, Provisioned, StalwartAdmin, account_password},
    jmap::JmapClient,
    outbound::{Retries, Sender},
    route::Mailbox,
    server::{SavedState, ServerLink},
    sync::{Pacing, Services, follow},
};

/// `[mail]` of `anima.toml`: what the worker reads at start. Every key is
/// also an `ANIMA_MAIL_*` variable (see [`anima_core::config`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// anima-server (`http://host:port`); `anima up` fills it in.
    pub server_url: String,
    /// The service token anima-mail presents to anima-server; `anima up`
    /// makes its own.
    pub service_token: String,
    /// The mail server's HTTP root, where `/.well-known/jmap` answers;
    /// none, and no mail is followed.
    pub jmap_url: String,
    /// The secret each mailbox account's password is derived from.
    pub account_secret: String,
    /// Between passes over a mailbox, in milliseconds.
    pub poll_interval_ms: u64,
    /// Longest wait between failed passes, in seconds.
    pub max_backoff_secs: u64,
    /// Attempts to send a mail before it fails for good.
    pub send_attempts: i64,
    /// Wait after a failed send, in milliseconds; doubles after each.
    pub send_retry_ms: u64,
    /// How mailbox accounts are created and dropped (`[mail.admin]`).
    pub admin: AdminConfig,
}

/// `[mail.admin]`: the mail server's administration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Which administration (see [`AdminKind`]).
    pub kind: AdminKind,
    /// Stalwart: its HTTP root.
    pub url: String,
    /// Cyrus: `host:port` of IMAP.
    pub imap: String,
    /// Stalwart and Cyrus: an administrator.
    pub user: String,
    /// The administrator's password.
    pub password: String,
    /// Cyrus: the sasldb2 file.
    pub sasldb: String,
    /// Cyrus: `user:group` to keep the sasldb owned by; empty leaves the
    /// owner as it is.
    pub sasldb_owner: String,
}

/// Who creates and drops mailbox accounts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AdminKind {
    /// Accounts are managed by hand: they must exist with the derived
    /// password (`anima-mail password ADDRESS` prints it).
    #[default]
    Manual,
    /// Stalwart's management API (`url`, `user`, `password`).
    Stalwart,
    /// Cyrus IMAP with a local SASL database (`imap`, `user`, `password`,
    /// `sasldb`).
    Cyrus,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            server_url: String::new(),
            service_token: String::new(),
            jmap_url: String::new(),
            account_secret: String::new(),
            poll_interval_ms: 2_000,
            max_backoff_secs: 60,
            send_attempts: 5,
            send_retry_ms: 30_000,
            admin: AdminConfig::default(),
        }
    }
}

impl MailConfig {
    /// The `[mail]` section of `anima.toml` (if given) with its
    /// `ANIMA_MAIL_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        #[derive(Default, Serialize, Deserialize)]
        #[serde(default)]
        struct MailSection {
            mail: MailConfig,
        }
        let section: MailSection = anima_core::config::read(file)?;
        Ok(section.mail)
    }

    /// Whether a mail server is configured at all.
    pub fn is_enabled(&self) -> bool {
        !self.jmap_url.is_empty()
    }

    /// Refuses a configuration the worker cannot run with.
    pub fn check(&self) -> anyhow::Result<()> {
        self.check_settings()?;
        anyhow::ensure!(
            !self.server_url.is_empty() && !self.service_token.is_empty(),
            "anima-mail needs server_url and service_token to reach anima-server"
        );
        Ok(())
    }

    /// [`MailConfig::check`] but for the way to anima-server, which
    /// `anima up` fills in itself.
    pub fn check_settings(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.jmap_url.is_empty(), "no mail server: set jmap_url");
        anyhow::ensure!(
            self.account_secret.len() >= 16,
            "account_secret must be at least 16 characters"
        );
        self.admin().map(drop)
    }

    fn admin(&self) -> anyhow::Result<Option<Arc<dyn MailServerAdmin>>> {
        let admin = &self.admin;
        let require = |value: &str, key: &str| {
            anyhow::ensure!(
                !value.is_empty(),
                "[mail.admin] kind = {:?} needs {key}",
                admin.kind
            );
            Ok(())
        };
        Ok(match admin.kind {
            AdminKind::Manual => None,
            AdminKind::Stalwart => {
                require(&admin.url, "url")?;
                require(&admin.user, "user")?;
                require(&admin.password, "password")?;
                Some(Arc::new(StalwartAdmin::new(
                    &admin.url,
                    &admin.user,
                    &admin.password,
                )?))
            }
            AdminKind::Cyrus => {
                require(&admin.imap, "imap")?;
                require(&admin.user, "user")?;
                require(&admin.password, "password")?;
                require(&admin.sasldb, "sasldb")?;
                Some(Arc::new(CyrusAdmin {
                    imap: admin.imap.clone(),
                    admin_user: admin.user.clone(),
                    admin_password: admin.password.clone(),
                    sasldb: admin.sasldb.as_str().into(),
                    sasldb_owner: Some(admin.sasldb_owner.clone())
                        .filter(|owner| !owner.is_empty()),
                }))
            }
        })
    }
}

/// A running follower and the settings it was started with.
struct Follower {
    settings: pb::Mailbox,
    task: JoinHandle<()>,
}

/// Runs the worker until `stop` completes.
pub async fn run(
    config: MailConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    config.check()?;
    let link = ServerLink::new(&config.server_url, &config.service_token)?;
    let admin = config.admin()?;
    let pacing = Pacing {
        poll_interval: Duration::from_millis(config.poll_interval_ms.max(100)),
        max_backoff: Duration::from_secs(config.max_backoff_secs.max(1)),
    };
    let mut followers: HashMap<String, Follower> = HashMap::new();
    let mut sender = Sender::new(
        link.clone(),
        &config.jmap_url,
        &config.account_secret,
        Retries {
            attempts: config.send_attempts.max(1),
            first_wait: Duration::from_millis(config.send_retry_ms),
        },
    );
    tokio::pin!(stop);
    loop {
        match link.mailboxes().await {
            Ok(mailboxes) => {
                supervise(
                    &config,
                    &link,
                    admin.as_deref(),
                    pacing,
                    &mut followers,
                    mailboxes,
                )
                .await;
            }
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "cannot list mailboxes"),
        }
        if let Err(err) = sender.send_due().await {
            tracing::warn!(error = %format!("{err:#}"), "cannot send queued mail");
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(pacing.poll_interval) => {}
        }
    }
    for follower in followers.into_values() {
        follower.task.abort();
    }
    Ok(())
}

/// Brings the followers in line with the server's mailboxes.
async fn supervise(
    config: &MailConfig,
    link: &ServerLink,
    admin: Option<&dyn MailServerAdmin>,
    pacing: Pacing,
    followers: &mut HashMap<String, Follower>,
    mailboxes: Vec<pb::FollowedMailbox>,
) {
    let listed: Vec<String> = mailboxes
        .iter()
        .filter_map(|followed| followed.mailbox.as_ref().map(|mailbox| mailbox.id.clone()))
        .collect();
    followers.retain(|id, follower| {
        let keep = listed.contains(id);
        if !keep {
            follower.task.abort();
        }
        keep
    });
    for followed in mailboxes {
        let Some(settings) = followed.mailbox else {
            continue;
        };
        let id = settings.id.clone();
        // Dropping or refused (until a server admin adopts it): not followed.
        if settings.state != pb::MailboxState::Active as i32 {
            if let Some(follower) = followers.remove(&id) {
                follower.task.abort();
            }
            if settings.state == pb::MailboxState::Dropping as i32
                && let Err(err) = drop_mailbox(link, admin, &settings).await
            {
                tracing::warn!(mailbox = %settings.address, error = %format!("{err:#}"), "cannot drop mailbox yet");
            }
            continue;
        }
        let current = followers
            .get(&id)
            .is_some_and(|follower| follower.settings == settings && !follower.task.is_finished());
        if current {
            continue;
        }
        if let Some(follower) = followers.remove(&id) {
            follower.task.abort();
        }
        let password = account_password(&config.account_secret, &settings.address);
        if let Some(admin) = admin {
            match provision(link, admin, &settings, &password).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(mailbox = %settings.address, error = %format!("{err:#}"), "cannot provision mailbox yet");
                    continue;
                }
            }
        }
        match start_follower(
            config,
            link,
            pacing,
            &settings,
            followed.jmap_state,
            password,
        ) {
            Ok(task) => {
                tracing::info!(mailbox = %settings.address, "following mailbox");
                followers.insert(id, Follower { settings, task });
            }
            Err(err) => {
                tracing::warn!(mailbox = %settings.address, error = %format!("{err:#}"), "cannot follow mailbox");
            }
        }
    }
}

/// Makes sure the mailbox's account is Anima's to use: one Anima made (as
/// the server recorded) or a server admin adopted gets the derived
/// password; else the account is created, and confirmed to the server,
/// unless the address already has one (someone's), when the mailbox is
/// refused instead. Whether to follow it.
async fn provision(
    link: &ServerLink,
    admin: &dyn MailServerAdmin,
    settings: &pb::Mailbox,
    password: &str,
) -> anyhow::Result<bool> {
    let take_over = settings.adopted || settings.provisioned;
    match admin
        .create_account(&settings.address, password, take_over)
        .await?
    {
        Provisioned::Ready => {
            if !take_over {
                link.confirm_mailbox_account(&settings.id).await?;
            }
            Ok(true)
        }
        Provisioned::Exists => {
            tracing::warn!(mailbox = %settings.address, "refused: the address has an account Anima did not create");
            link.refuse_mailbox(
                &settings.id,
                &format!(
                    "MAILBOX_EXISTS: {} already has an account on the mail server that Anima did not \
                     create; a server administrator may adopt it (anima mailbox adopt {}), or delete this mailbox",
                    settings.address, settings.id
                ),
            )
            .await?;
            Ok(false)
        }
    }
}

async fn drop_mailbox(
    link: &ServerLink,
    admin: Option<&dyn MailServerAdmin>,
    settings: &pb::Mailbox,
) -> anyhow::Result<()> {
    // Only an account Anima made (and confirmed) goes with its mailbox: a
    // refused or never-provisioned mailbox's account was never Anima's, an
    // adopted one was someone's.
    let anima_made = settings.provisioned && !settings.adopted;
    if let Some(admin) = admin.filter(|_| anima_made) {
        admin.drop_account(&settings.address).await?;
    }
    link.remove_mailbox(&settings.id).await?;
    tracing::info!(mailbox = %settings.address, "mailbox dropped");
    Ok(())
}

fn start_follower(
    config: &MailConfig,
    link: &ServerLink,
    pacing: Pacing,
    settings: &pb::Mailbox,
    jmap_state: String,
    password: String,
) -> anyhow::Result<JoinHandle<()>> {
    let rules = settings.rules.clone().unwrap_or_default();
    let mailbox = Mailbox {
        address: Address::parse(&settings.address)
            .with_context(|| format!("mailbox address {:?}", settings.address))?,
        projects: settings.project_ids.clone(),
        rules: ScreeningRules {
            deny: rules.deny,
            allow: rules.allow,
            trusted_authserv_id: rules.trusted_authserv_id,
        },
        max_size: usize::try_from(settings.max_size_bytes).unwrap_or(usize::MAX),
        // From the second the mailbox was made, unless its history is
        // asked for.
        history_from: (!settings.import_history)
            .then(|| {
                settings.create_time.map(|time| {
                    prost_types::Timestamp {
                        seconds: time.seconds,
                        nanos: 0,
                    }
                    .to_string()
                })
            })
            .flatten(),
    };
    let link = link.clone();
    let jmap_url = config.jmap_url.clone();
    let (id, login) = (settings.id.clone(), settings.address.clone());
    let saved = (!jmap_state.is_empty()).then_some(jmap_state);
    Ok(tokio::spawn(async move {
        let states = SavedState::new(link.clone(), saved);
        let services = Services {
            context: &link,
            sink: &link,
            states: &states,
        };
        let connect = || JmapClient::connect(&jmap_url, &login, &password);
        follow(
            connect,
            &id,
            &mailbox,
            services,
            pacing,
            std::future::pending(),
        )
        .await;
    }))
}
