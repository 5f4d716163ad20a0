//! The `mail` scenario: how many mails per second anima-mail routes, on a
//! private Cyrus (needs Debian's cyrus-imapd and root, like the mail
//! tests) and `anima up` (anima-server with anima-ai) on the seeded
//! database; the worker runs in this process, as in `anima up`.
//!
//! Mails of mixed kinds are delivered first (not timed); then one
//! synchronisation pass takes them all: JMAP listing and download, parsing,
//! routing (plus-address, reply, classification, screening lookups) and the
//! write of each record and thread message. The same mails are then routed
//! again from memory into a second mailbox, which leaves JMAP out (and the
//! first classification of each unaddressed mail: anima-ai caches its
//! vectors); JMAP is also timed alone.

use std::time::Instant;

use anima_core::{
    mail::{Address, NewMailbox, ScreeningRules},
    model::NewUser,
    planning::{Actor, NewWorkItem, Priority},
};
use anima_db::testing::TempDatabase;
use anima_mail::{
    jmap::JmapClient,
    parse::parse,
    route::{Mailbox, route},
    server::{SavedState, ServerLink},
    sync::{BATCH, DOWNLOADS_IN_FLIGHT, FollowedMailbox, Services, Sink, sync_once},
    testing::{CyrusServer, DOMAIN},
};
use anyhow::Context;
use futures_util::StreamExt;

use crate::{Options, Outcome};

const ITEMS: usize = 10;

/// The mails: most to a work item's plus-address from a member, some
/// replies by reference, some only classification can place, some from
/// strangers (held).
fn mails(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let key = i % ITEMS + 1;
            let (to, extra, from) = match i % 10 {
                0 if i >= 10 => (
                    format!("desk@{DOMAIN}"),
                    format!("In-Reply-To: <m{}@example.org>\r\n", i - 9),
                    "ann@example.org",
                ),
                1 => (format!("desk@{DOMAIN}"), String::new(), "ann@example.org"),
                2 => (format!("desk+WI-{key}@{DOMAIN}"), String::new(), "someone@example.net"),
                _ => (format!("desk+WI-{key}@{DOMAIN}"), String::new(), "ann@example.org"),
            };
            format!(
                "From: {from}\r\nTo: {to}\r\nSubject: Item {key}: export report {i}\r\n\
                 Message-ID: <m{i}@example.org>\r\n{extra}Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n\
                 The export of item {key} failed again at row {i}; log attached below.\r\n"
            )
            .into_bytes()
        })
        .collect()
}

pub async fn scenario(options: &Options) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        CyrusServer::available(),
        "the mail scenario needs Cyrus (scripts/setup-debian --with-mail-server) and root"
    );
    let count = if options.quick { 300 } else { 2_000 };
    let cyrus = CyrusServer::start()?;
    let db = match options.backend() {
        crate::Backend::Sqlite => TempDatabase::sqlite(),
        crate::Backend::Postgres => TempDatabase::postgres().await,
    };
    let store = db.open().await;

    let owner = store
        .create_user(NewUser {
            username: "ann".into(),
            display_name: "Ann".into(),
            email: "ann@example.org".into(),
            password_hash: String::new(),
            is_admin: false,
        })
        .await?;
    let project = store.create_project("Mail", "", &owner.id).await?;
    for n in 0..ITEMS {
        store
            .create_work_item(NewWorkItem {
                project_id: project.id.clone(),
                plan_id: None,
                title: format!("Item {}: export report", n + 1),
                description: format!("Exports of item {} fail.", n + 1),
                priority: Priority::Medium,
                workflow_id: None,
                author: Actor::User {
                    id: owner.id.clone(),
                },
            })
            .await?;
    }
    let new_mailbox = |address: &str| NewMailbox {
        address: address.into(),
        display_name: "Desk".into(),
        project_ids: [project.id.clone()].into(),
        rules: ScreeningRules::default(),
        max_size: 25 * 1024 * 1024,
        adopted: false,
        // The mail is in the account before the pass that is measured.
        import_history: true,
    };
    let followed = store
        .create_mailbox(new_mailbox(&format!("desk@{DOMAIN}")))
        .await?;
    let replayed = store
        .create_mailbox(new_mailbox(&format!("replay@{DOMAIN}")))
        .await?;
    let routing = Mailbox {
        address: Address::parse(&followed.address).context("address")?,
        projects: vec![project.id.clone()],
        rules: ScreeningRules::default(),
        max_size: 25 * 1024 * 1024,
        history_from: None,
    };

    let backend = store.backend();
    drop(store);
    // `anima up` on the seeded database; the worker reaches it with a
    // service token of its own, as in `anima up`.
    let token = anima_core::secret::new_token();
    let server = crate::ServerUnderTest::anima(
        &db.url,
        &[],
        &[("ANIMA_SERVICE_TOKENS", &format!("anima-mail={token}"))],
    )?;
    let link = ServerLink::new(&server.url, &token)?;

    let login = cyrus.add_user("desk", "desk-password")?;
    let mails = mails(count);
    eprintln!("delivering {count} mails to Cyrus");
    for mail in &mails {
        cyrus.deliver(&login, "sender@example.org", mail)?;
    }
    let client = JmapClient::connect(&cyrus.http_url, &login, "desk-password").await?;
    let states = SavedState::new(link.clone(), None);
    let services = Services {
        context: &link,
        sink: &link,
        states: &states,
    };
    // The first classification loads the model; that is not routing.
    let warm = parse(&mails[1]);
    route(&followed.id, &routing, &warm, &link).await?;

    // JMAP alone, as the pass fetches it: listing, then downloads in flight.
    let started = Instant::now();
    let (ids, _) = client.all_email_ids().await?;
    let mut refs = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        refs.extend(client.email_refs(chunk).await?);
    }
    let downloads: Vec<_> = refs
        .iter()
        .map(|email| client.download(&email.blob_id))
        .collect();
    let mut downloads = futures_util::stream::iter(downloads).buffered(DOWNLOADS_IN_FLIGHT);
    while let Some(raw) = downloads.next().await {
        raw?;
    }
    let fetching = started.elapsed();

    let started = Instant::now();
    let pass = sync_once(
        &FollowedMailbox {
            id: &followed.id,
            mailbox: &routing,
            client: &client,
        },
        services,
    )
    .await?;
    let end_to_end = started.elapsed();
    anyhow::ensure!(pass.delivered == count, "routed {pass:?} of {count}");

    let started = Instant::now();
    for raw in &mails {
        let mail = parse(raw);
        let decision = route(&replayed.id, &routing, &mail, &link).await?;
        link.deliver(&replayed.id, &mail, &decision).await?;
    }
    let in_memory = started.elapsed();

    let rate = |elapsed: std::time::Duration| count as f64 / elapsed.as_secs_f64();
    let (end_to_end_rate, in_memory_rate) = (rate(end_to_end), rate(in_memory));
    let fetch_rate = rate(fetching);
    Ok(Outcome {
        scenario: "mail",
        stats: Vec::new(),
        ratio: Some((
            "mails routed per second, JMAP to thread".into(),
            end_to_end_rate,
            "≥ 200",
        )),
        notes: vec![
            format!(
                "{count} mails in one pass: {:.2} s, {end_to_end_rate:.0} mails/s (JMAP listing and download, parse, route, record and post)",
                end_to_end.as_secs_f64()
            ),
            format!(
                "the same mails from memory: {:.2} s, {in_memory_rate:.0} mails/s (parse, route, record and post)",
                in_memory.as_secs_f64()
            ),
            format!(
                "JMAP alone (listing, download): {:.2} s, {fetch_rate:.0} mails/s",
                fetching.as_secs_f64()
            ),
            "downloads and routing overlap; what the pass costs beyond JMAP is mostly first-time \
             classification of the unaddressed mails"
                .to_owned(),
            format!("backend: {backend}"),
        ],
    })
}
