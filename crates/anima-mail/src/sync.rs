//! One synchronisation pass of a mailbox: what arrived since the saved
//! JMAP state is downloaded, parsed, routed and handed to a [`Sink`]; the
//! new state is saved only after every mail of the pass was handed over.
//!
//! Exactly once: a crash between fetch and save repeats the pass, and the
//! sink recognises a mail it already has by mailbox and Message-ID, so the
//! repeat changes nothing. A mail fetched twice (listed again after a
//! resync) is recognised the same way.

use std::collections::HashSet;

use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::sync::mpsc;

use crate::{
    jmap::{EmailRef, JmapClient, JmapError},
    parse::{InboundMail, parse},
    route::{Mailbox, Route, RoutingContext, route, routes_by_reference},
};

/// Messages listed per `Email/get`.
pub const BATCH: usize = 50;

/// Downloads in flight: each is a round trip to the mail server.
pub const DOWNLOADS_IN_FLIGHT: usize = 8;

/// Mails routed and handed over at once: each is a few round trips to
/// anima-server and a write there, which do not depend on one another
/// (mail that can only find its thread by reference waits for the mails
/// of the pass it refers to).
pub const ROUTES_IN_FLIGHT: usize = 8;

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

impl Pass {
    fn count(&mut self, first_time: bool) {
        if first_time {
            self.delivered += 1;
        } else {
            self.repeated += 1;
        }
    }
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
///
/// After the listing, downloading and routing run side by side: the
/// downloads feed a bounded queue that [`ROUTES_IN_FLIGHT`] routes drain,
/// so neither waits for the other's round trips.
pub async fn sync_once(
    followed: &FollowedMailbox<'_>,
    services: Services<'_>,
) -> anyhow::Result<Pass> {
    let states = services.states;
    let client = followed.client;
    // A full listing (a first run, or a resync) takes only mail received
    // since the mailbox's start, unless it asked for the account's history.
    let (ids, new_state, full_listing) = match states.load(followed.id).await? {
        Some(state) => match client.email_changes(&state).await {
            Ok(changes) => (changes.created, changes.new_state, false),
            Err(JmapError::CannotCalculateChanges(_)) => {
                tracing::warn!(
                    mailbox = followed.id,
                    "saved JMAP state too old; resynchronising"
                );
                let (ids, state) = client.all_email_ids().await?;
                (ids, state, true)
            }
            Err(err) => return Err(err.into()),
        },
        None => {
            let (ids, state) = client.all_email_ids().await?;
            (ids, state, true)
        }
    };
    // Only what arrives in the Inbox: the account's Sent folder holds the
    // copies of what Anima sent.
    let inbox = client
        .mailbox_with_role("inbox")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the account has no Inbox"))?;
    let history_from = followed
        .mailbox
        .history_from
        .as_deref()
        .filter(|_| full_listing);
    // The whole listing first: its Message-IDs tell a reply which mails of
    // this pass it must wait for.
    let mut emails = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        let mut listed = client.email_refs(chunk).await?;
        listed.retain(|email| {
            email.mailbox_ids.contains_key(&inbox)
                && history_from.is_none_or(|from| received_since(&email.received_at, from))
        });
        emails.extend(listed);
    }
    let unrouted = emails
        .iter()
        .flat_map(|email| email.message_id.iter().flatten().cloned())
        .collect();
    let (downloaded, arrivals) = mpsc::channel(DOWNLOADS_IN_FLIGHT + ROUTES_IN_FLIGHT);
    let fetch = fetch_into(client, &emails, followed.mailbox.max_size, downloaded);
    let mut pass = Pass {
        fetched: ids.len(),
        ..Pass::default()
    };
    let route = route_arrivals(followed, services, arrivals, unrouted, &mut pass);
    // A failed route drops the queue, which ends the fetch.
    let ((), routed) = tokio::join!(fetch, route);
    routed?;
    states.save(followed.id, &new_state).await?;
    Ok(pass)
}

/// Whether a JMAP UTCDate (`receivedAt`) is at or after `from`, another
/// one: both are UTC with a `Z`, so their second-precision prefixes
/// compare as text.
fn received_since(received_at: &str, from: &str) -> bool {
    let second = |date: &str| date.get(..19).unwrap_or(date).to_owned();
    second(received_at) >= second(from)
}

/// A fetched mail, parsed.
type Downloaded = Result<InboundMail, JmapError>;

/// Routes and hands over what arrives, [`ROUTES_IN_FLIGHT`] at a time,
/// counting into `pass`. `unrouted` holds the Message-IDs of the pass not
/// handed over yet: a mail that can only find its thread by reference
/// waits while it refers to one of them (the server's listing does not
/// promise arrival order), and is routed once they are.
async fn route_arrivals(
    followed: &FollowedMailbox<'_>,
    services: Services<'_>,
    mut arrivals: mpsc::Receiver<Downloaded>,
    mut unrouted: HashSet<String>,
    pass: &mut Pass,
) -> anyhow::Result<()> {
    let waits = |mail: &InboundMail, unrouted: &HashSet<String>| {
        routes_by_reference(followed.mailbox, mail)
            && mail
                .referenced_ids()
                .any(|id| id != mail.message_id && unrouted.contains(id))
    };
    let mut waiting: Vec<InboundMail> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        if !open && in_flight.is_empty() {
            if waiting.is_empty() {
                return Ok(());
            }
            // What it waits for cannot come (references in a circle, or a
            // Message-ID the server read otherwise): route it as it is.
            in_flight.push(hand_over(followed, services, waiting.remove(0)));
        }
        tokio::select! {
            arrival = arrivals.recv(), if open && in_flight.len() < ROUTES_IN_FLIGHT => {
                let Some(arrival) = arrival else {
                    open = false;
                    continue;
                };
                let mail = arrival?;
                if waits(&mail, &unrouted) {
                    waiting.push(mail);
                } else {
                    in_flight.push(hand_over(followed, services, mail));
                }
            }
            Some(handed_over) = in_flight.next(), if !in_flight.is_empty() => {
                let (message_id, first_time) = handed_over?;
                pass.count(first_time);
                unrouted.remove(&message_id);
                let mut index = 0;
                while index < waiting.len() && in_flight.len() < ROUTES_IN_FLIGHT {
                    if waits(&waiting[index], &unrouted) {
                        index += 1;
                    } else {
                        in_flight.push(hand_over(followed, services, waiting.remove(index)));
                    }
                }
            }
        }
    }
}

/// Downloads the listed mails a few at a time, in order, and parses them
/// into `downloaded`; stops at the first error, which it passes on, or when
/// the receiving side is gone. A mail larger than `max_size` (by the
/// listing's size, or by what arrives) is not downloaded: it goes on as
/// its listed headers, to be held as too large.
async fn fetch_into(
    client: &JmapClient,
    emails: &[EmailRef],
    max_size: usize,
    downloaded: mpsc::Sender<Downloaded>,
) {
    let limit = u64::try_from(max_size).unwrap_or(u64::MAX);
    let downloads: Vec<_> = emails
        .iter()
        .map(|email| async move {
            if email.size > limit {
                return Ok(oversized(email));
            }
            Ok(
                match client.download_at_most(&email.blob_id, limit).await? {
                    Some(raw) => parse(&raw),
                    None => oversized(email),
                },
            )
        })
        .collect();
    let mut downloads = futures_util::stream::iter(downloads).buffered(DOWNLOADS_IN_FLIGHT);
    while let Some(download) = downloads.next().await {
        let failed = download.is_err();
        if downloaded.send(download).await.is_err() || failed {
            return;
        }
    }
}

/// A mail too large to fetch, as the listing describes it: routing holds it
/// for its size, and it stays on the mail server.
fn oversized(email: &EmailRef) -> InboundMail {
    let ids = |ids: &Option<Vec<String>>| ids.clone().unwrap_or_default();
    InboundMail {
        from: email
            .from
            .iter()
            .flatten()
            .find_map(|address| address.email.clone())
            .unwrap_or_default(),
        subject: email.subject.clone().unwrap_or_default(),
        message_id: ids(&email.message_id)
            .into_iter()
            .next()
            .unwrap_or_else(|| format!("jmap-{}@anima.invalid", email.id)),
        in_reply_to: ids(&email.in_reply_to),
        references: ids(&email.references),
        body: email
            .attachments
            .iter()
            .flatten()
            .enumerate()
            .fold(
                format!(
                    "[this mail has {} bytes, more than its mailbox takes; it stays on the mail server]",
                    email.size
                ),
                |mut body, (n, part)| {
                    body.push_str(&format!(
                        "\n[attachment left on the mail server: {} ({}, {} bytes)]",
                        part.name.clone().unwrap_or_else(|| format!("attachment-{}", n + 1)),
                        part.media_type,
                        part.size
                    ));
                    body
                },
            ),
        size: usize::try_from(email.size).unwrap_or(usize::MAX),
        ..InboundMail::default()
    }
}

/// Routes one mail and hands it to the sink; its Message-ID, and whether
/// it was new there.
async fn hand_over(
    followed: &FollowedMailbox<'_>,
    services: Services<'_>,
    mail: InboundMail,
) -> anyhow::Result<(String, bool)> {
    let route = route(followed.id, followed.mailbox, &mail, services.context).await?;
    let first_time = services.sink.deliver(followed.id, &mail, &route).await?;
    Ok((mail.message_id, first_time))
}

/// How a follower paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Between passes while all is well and the server does not push.
    pub poll_interval: std::time::Duration,
    /// The longest wait after repeated failures (the wait doubles from
    /// `poll_interval` up to this).
    pub max_backoff: std::time::Duration,
}

/// The ping interval asked of a push connection; a connection silent for
/// twice as long counts as dead.
const PUSH_PING: std::time::Duration = std::time::Duration::from_secs(30);

/// With push, a pass still runs this often: a lost event costs at most
/// this much delay.
const PUSH_SAFETY_PASS: std::time::Duration = std::time::Duration::from_secs(300);

/// Follows a mailbox until `stop` resolves, backing off while the server
/// or the sink fails, and never losing what a failed pass had fetched (its
/// state was not saved, so the next pass fetches it again). Connects (and
/// reconnects after failures) itself.
///
/// Where the server pushes (JMAP EventSource), a pass runs on each change
/// it announces; otherwise one runs every `poll_interval`. The push
/// connection is opened before the pass, so a change during the pass
/// wakes the next one.
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
    let mut push = Push::Untried;
    let mut wait = pacing.poll_interval;
    loop {
        let outcome = async {
            if client.is_none() {
                client = Some(connect().await?);
                push = Push::Untried;
            }
            let client = client
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("not connected"))?;
            if matches!(push, Push::Untried) {
                push = match client.push(PUSH_PING).await {
                    Ok(Some(stream)) => Push::Open(stream),
                    Ok(None) => Push::NotOffered,
                    // Push is a shortcut; mail still comes by polling.
                    Err(err) => {
                        tracing::warn!(mailbox = id, error = %err, "no push connection; polling");
                        Push::NotOffered
                    }
                };
            }
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
        let next_pass = async {
            match &mut push {
                Push::Open(stream) if client.is_some() => {
                    match tokio::time::timeout(PUSH_SAFETY_PASS, stream.changed()).await {
                        // A change, or the safety pass is due.
                        Ok(Ok(())) | Err(_) => {}
                        Ok(Err(err)) => {
                            tracing::debug!(mailbox = id, error = %err, "push connection lost; catching up");
                            push = Push::Untried;
                        }
                    }
                }
                _ => tokio::time::sleep(wait).await,
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = next_pass => {}
        }
    }
}

/// Whether the followed server pushes changes.
enum Push {
    /// Not asked yet on this connection.
    Untried,
    /// It answered without an event stream: poll.
    NotOffered,
    /// An open push connection.
    Open(crate::jmap::PushStream),
}
