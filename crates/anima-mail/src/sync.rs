//! One synchronisation pass of a mailbox: what arrived since the saved
//! JMAP state is downloaded, parsed, routed and handed to a [`Sink`]; the
//! new state is saved only after every mail of the pass was handed over.
//!
//! Exactly once: a crash between fetch and save repeats the pass, and the
//! sink recognises a mail it already has by mailbox and Message-ID, so the
//! repeat changes nothing. A mail fetched twice (listed again after a
//! resync) is recognised the same way.

use futures_util::StreamExt;

use crate::{
    jmap::{JmapClient, JmapError},
    parse::{InboundMail, parse},
    route::{Mailbox, Route, RoutingContext, route, routes_by_reference},
};

/// Messages listed per `Email/get`.
pub const BATCH: usize = 50;

/// Downloads in flight while earlier mail is routed: a download is a round
/// trip to the mail server, routing a few to anima-server, and neither
/// needs the other's turn.
pub const DOWNLOADS_IN_FLIGHT: usize = 8;

/// Where routed mail goes (anima-server, through its service token).
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Records `mail` as `route` says. Returns `false` when this mailbox
    /// already had a mail with this Message-ID, which is then left as it was.
    async fn deliver(
        &self,
        mailbox_id: &str,
        mail: &InboundMail,
        route: &Route,
    ) -> anyhow::Result<bool>;
}

/// Where each mailbox's JMAP state is kept between passes and restarts.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// The saved state, if any.
    async fn load(&self, mailbox_id: &str) -> anyhow::Result<Option<String>>;
    /// Saves the state to resume from.
    async fn save(&self, mailbox_id: &str, state: &str) -> anyhow::Result<()>;
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// New messages the server listed.
    pub fetched: usize,
    /// Handed to the sink for the first time.
    pub delivered: usize,
    /// Already known to the sink (a repeat after a crash or a resync).
    pub repeated: usize,
}

/// What a pass talks to besides the mail server.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// Lookups for routing.
    pub context: &'a dyn RoutingContext,
    /// Where routed mail goes.
    pub sink: &'a dyn Sink,
    /// Where JMAP states are kept.
    pub states: &'a dyn StateStore,
}

/// The mailbox's identity and routing rules, with its JMAP login.
pub struct FollowedMailbox<'a> {
    /// Its id in anima-server.
    pub id: &'a str,
    /// Routing rules and projects.
    pub mailbox: &'a Mailbox,
    /// Logged-in JMAP account.
    pub client: &'a JmapClient,
}

/// Runs one pass; see the module documentation.
pub async fn sync_once(
    followed: &FollowedMailbox<'_>,
    services: Services<'_>,
) -> anyhow::Result<Pass> {
    let states = services.states;
    let client = followed.client;
    let (ids, new_state) = match states.load(followed.id).await? {
        Some(state) => match client.email_changes(&state).await {
            Ok(changes) => (changes.created, changes.new_state),
            Err(JmapError::CannotCalculateChanges(_)) => {
                tracing::warn!(
                    mailbox = followed.id,
                    "saved JMAP state too old; resynchronising"
                );
                client.all_email_ids().await?
            }
            Err(err) => return Err(err.into()),
        },
        None => client.all_email_ids().await?,
    };
    let mut pass = Pass {
        fetched: ids.len(),
        ..Pass::default()
    };
    // Mail that can only find its thread by reference waits until the
    // rest of the pass is in: what it answers may be in this very pass,
    // and the server's listing does not promise arrival order.
    let mut replies = Vec::new();
    // Only what arrives in the Inbox: the account's Sent folder holds the
    // copies of what Anima sent.
    let inbox = client
        .mailbox_with_role("inbox")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the account has no Inbox"))?;
    for chunk in ids.chunks(BATCH) {
        let mut emails = client.email_refs(chunk).await?;
        emails.retain(|email| email.mailbox_ids.contains_key(&inbox));
        let downloads: Vec<_> = emails
            .iter()
            .map(|email| client.download(&email.blob_id))
            .collect();
        let mut downloads = futures_util::stream::iter(downloads).buffered(DOWNLOADS_IN_FLIGHT);
        // `buffered` yields in order, one download per email.
        for email in &emails {
            let Some(raw) = downloads.next().await else {
                break;
            };
            let mail = parse(&raw?);
            if routes_by_reference(followed.mailbox, &mail) {
                replies.push(email.blob_id.clone());
            } else {
                hand_over(followed, services, &mail, &mut pass).await?;
            }
        }
    }
    for blob_id in replies {
        let mail = parse(&client.download(&blob_id).await?);
        hand_over(followed, services, &mail, &mut pass).await?;
    }
    states.save(followed.id, &new_state).await?;
    Ok(pass)
}

/// Routes one mail and hands it to the sink, counting what happened.
async fn hand_over(
    followed: &FollowedMailbox<'_>,
    services: Services<'_>,
    mail: &InboundMail,
    pass: &mut Pass,
) -> anyhow::Result<()> {
    let route = route(followed.mailbox, mail, services.context).await?;
    if services.sink.deliver(followed.id, mail, &route).await? {
        pass.delivered += 1;
    } else {
        pass.repeated += 1;
    }
    Ok(())
}

/// How a follower paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Between passes while all is well.
    pub poll_interval: std::time::Duration,
    /// The longest wait after repeated failures (the wait doubles from
    /// `poll_interval` up to this).
    pub max_backoff: std::time::Duration,
}

/// Follows a mailbox until `stop` resolves: a pass every `poll_interval`,
/// backing off while the server or the sink fails, and never losing what
/// a failed pass had fetched (its state was not saved, so the next pass
/// fetches it again). Connects (and reconnects after failures) itself.
///
/// Push by JMAP EventSource is not used yet: the Cyrus 3.6 used in tests
/// answers its EventSource URL with 204, so polling is what works there.
pub async fn follow<Connecting>(
    connect: impl Fn() -> Connecting,
    id: &str,
    mailbox: &Mailbox,
    services: Services<'_>,
    pacing: Pacing,
    stop: impl std::future::Future<Output = ()>,
) where
    Connecting: std::future::Future<Output = Result<JmapClient, JmapError>>,
{
    tokio::pin!(stop);
    let mut client: Option<JmapClient> = None;
    let mut wait = pacing.poll_interval;
    loop {
        let outcome = async {
            if client.is_none() {
                client = Some(connect().await?);
            }
            let client = client
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("not connected"))?;
            let followed = FollowedMailbox {
                id,
                mailbox,
                client,
            };
            sync_once(&followed, services).await
        }
        .await;
        match outcome {
            Ok(pass) => {
                if pass.fetched > 0 {
                    tracing::info!(mailbox = id, ?pass, "mail routed");
                }
                wait = pacing.poll_interval;
            }
            Err(err) => {
                // Reconnect next time: the session may be what broke.
                client = None;
                wait = (wait * 2).min(pacing.max_backoff);
                tracing::warn!(mailbox = id, error = %format!("{err:#}"), retry_in = ?wait, "mailbox pass failed");
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
