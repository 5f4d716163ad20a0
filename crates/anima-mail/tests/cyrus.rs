//! The JMAP client against a real Cyrus: mail delivered over LMTP is seen
//! through `Email/changes` from a saved state, exactly once, and its raw
//! bytes come back intact.

use anima_core::{
    mail::{Address, Addressed, addressed_work_item},
    planning::WorkItemKey,
};
use anima_mail::{
    jmap::{JmapClient, JmapError},
    parse::parse,
    testing::CyrusServer,
};

fn message(n: usize, to: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@example.org>\r\n\
         To: {to}\r\n\
         Subject: Export report {n}\r\n\
         Message-ID: <report-{n}@example.org>\r\n\
         Date: Wed, 25 Nov 2026 10:00:{n:02} +0000\r\n\
         \r\n\
         Report number {n}: the export crashed again.\r\n"
    )
    .into_bytes()
}

/// Skips (with a note) where Cyrus cannot run, unless the suite requires it.
fn server() -> Option<CyrusServer> {
    if !CyrusServer::available() {
        assert!(
            std::env::var("ANIMA_TEST_REQUIRE_MAIL_SERVER").as_deref() != Ok("1"),
            "Cyrus is required here but not available"
        );
        eprintln!("Cyrus not installed or not root; skipped");
        return None;
    }
    Some(CyrusServer::start().expect("start Cyrus"))
}

#[tokio::test]
async fn changes_resume_from_a_saved_state() {
    let Some(cyrus) = server() else { return };
    let login = cyrus.add_user("support", "support-password").expect("user");
    let to = format!("support+WI-12@{}", anima_mail::testing::DOMAIN);
    cyrus
        .deliver(&login, "bob@example.org", &message(1, &to))
        .expect("deliver");

    let client = JmapClient::connect(&cyrus.http_url, &login, "support-password")
        .await
        .expect("session");
    assert_eq!(client.account_id(), login);
    // Debian's Cyrus advertises push but, built without WebSocket support,
    // answers its EventSource URL with 204: followers poll it.
    assert!(client.event_source_url().is_some());
    assert!(
        client
            .push(std::time::Duration::from_secs(30))
            .await
            .expect("eventsource")
            .is_none(),
        "this Cyrus does not push"
    );
    let (ids, state) = client.all_email_ids().await.expect("listing");
    assert_eq!(ids.len(), 1);

    for n in 2..=4 {
        cyrus
            .deliver(&login, "bob@example.org", &message(n, &to))
            .expect("deliver");
    }
    // A restarted worker reconnects and resumes from the state it saved.
    let restarted = JmapClient::connect(&cyrus.http_url, &login, "support-password")
        .await
        .expect("session");
    let changes = restarted.email_changes(&state).await.expect("changes");
    assert_eq!(changes.created.len(), 3, "{changes:?}");
    assert!(changes.destroyed.is_empty());
    let again = restarted
        .email_changes(&changes.new_state)
        .await
        .expect("changes");
    assert!(again.created.is_empty(), "nothing is seen twice: {again:?}");

    let refs = restarted.email_refs(&changes.created).await.expect("refs");
    let raw = restarted
        .download(&refs[0].blob_id)
        .await
        .expect("download");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Message-ID: <report-2@example.org>"),
        "{text}"
    );
    assert!(
        text.contains(&format!("To: {to}")),
        "plus-address kept: {text}"
    );
    assert_eq!(refs[0].size as usize, raw.len());
    // A download stops as soon as it passes its limit, whatever the
    // listing said; the listing alone names sender and subject.
    let exact = refs[0].size;
    assert_eq!(
        restarted
            .download_at_most(&refs[0].blob_id, exact)
            .await
            .expect("download")
            .map(|bytes| bytes.len() as u64),
        Some(exact)
    );
    assert_eq!(
        restarted
            .download_at_most(&refs[0].blob_id, exact - 1)
            .await
            .expect("download"),
        None
    );
    assert!(
        refs[0]
            .subject
            .as_deref()
            .is_some_and(|subject| !subject.is_empty())
    );
    assert_eq!(
        refs[0]
            .from
            .as_ref()
            .and_then(|from| from[0].email.as_deref()),
        Some("bob@example.org")
    );

    // What routing will use: the parsed mail names WI-12 by plus-address.
    let mail = parse(&raw);
    assert_eq!(mail.message_id, "report-2@example.org");
    let mailbox = Address::parse(&login).expect("mailbox address");
    assert_eq!(
        addressed_work_item(&mailbox, mail.recipients()),
        Addressed::WorkItem(WorkItemKey(12))
    );
}

#[tokio::test]
async fn wrong_passwords_and_bad_states_are_told_apart() {
    let Some(cyrus) = server() else { return };
    let login = cyrus.add_user("triage", "right-password").expect("user");
    let err = JmapClient::connect(&cyrus.http_url, &login, "wrong-password")
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, JmapError::Unauthorized(_)), "{err}");

    let client = JmapClient::connect(&cyrus.http_url, &login, "right-password")
        .await
        .expect("session");
    let err = client
        .email_changes("not-a-state")
        .await
        .expect_err("bad state");
    assert!(
        matches!(
            err,
            JmapError::CannotCalculateChanges(_) | JmapError::Protocol(_)
        ),
        "{err}"
    );
}

mod pass {
    use std::{collections::HashMap, sync::Mutex};

    use anima_core::{mail::Address, planning::WorkItemKey};
    use anima_mail::{
        jmap::JmapClient,
        parse::InboundMail,
        route::{
            Classified, HoldReason, ItemInfo, Mailbox, Referenced, Route, RoutingContext,
            TriageReason,
        },
        sync::{FollowedMailbox, Pacing, Pass, Services, Sink, StateStore, follow, sync_once},
        testing::{CyrusServer, DOMAIN},
    };

    /// Items WI-1..WI-3 of project p1; only bob is known.
    struct Context;

    #[async_trait::async_trait]
    impl RoutingContext for Context {
        async fn work_item(
            &self,
            _: &[String],
            key: WorkItemKey,
        ) -> anyhow::Result<Option<ItemInfo>> {
            Ok((1..=3).contains(&key.0).then(|| ItemInfo {
                id: format!("wi-{}", key.0),
                project_id: "p1".into(),
                writable: true,
            }))
        }
        async fn referenced(&self, _: &str, _: &[&str]) -> anyhow::Result<Referenced> {
            Ok(Referenced::Nothing)
        }
        async fn knows_sender(&self, _: &ItemInfo, sender: &str) -> anyhow::Result<bool> {
            Ok(sender == "bob@example.org")
        }
        async fn classify(&self, _: &str, _: &InboundMail) -> anyhow::Result<Classified> {
            Ok(Classified::Unsure(None))
        }
    }

    /// Keeps routed mail by (mailbox, Message-ID); can fail once after a
    /// number of new deliveries, as a crash would.
    #[derive(Default)]
    struct MemorySink {
        mails: Mutex<HashMap<(String, String), Route>>,
        crash_after: Mutex<Option<usize>>,
    }

    #[async_trait::async_trait]
    impl Sink for MemorySink {
        async fn deliver(
            &self,
            mailbox: &str,
            mail: &InboundMail,
            route: &Route,
        ) -> anyhow::Result<bool> {
            let mut mails = self.mails.lock().expect("lock");
            let key = (mailbox.to_owned(), mail.message_id.clone());
            if mails.contains_key(&key) {
                return Ok(false);
            }
            let mut crash = self.crash_after.lock().expect("lock");
            if let Some(left) = crash.as_mut() {
                if *left == 0 {
                    *crash = None;
                    anyhow::bail!("simulated crash");
                }
                *left -= 1;
            }
            mails.insert(key, route.clone());
            Ok(true)
        }
    }

    #[derive(Default)]
    struct MemoryStates(Mutex<HashMap<String, String>>);

    #[async_trait::async_trait]
    impl StateStore for MemoryStates {
        async fn load(&self, mailbox: &str) -> anyhow::Result<Option<String>> {
            Ok(self.0.lock().expect("lock").get(mailbox).cloned())
        }
        async fn save(&self, mailbox: &str, state: &str) -> anyhow::Result<()> {
            self.0
                .lock()
                .expect("lock")
                .insert(mailbox.into(), state.into());
            Ok(())
        }
    }

    /// The routing rules of a test account: project p1, no screening.
    fn mailbox_of(login: &str) -> Mailbox {
        Mailbox {
            address: Address::parse(login).expect("address"),
            projects: vec!["p1".into()],
            rules: anima_core::mail::ScreeningRules::default(),
            max_size: 1 << 20,
            // These tests deliver before they follow.
            history_from: None,
        }
    }

    fn deliver_mixed(cyrus: &CyrusServer, login: &str, from: usize, count: usize) {
        for n in from..from + count {
            let (sender, to) = match n % 4 {
                0 => (
                    "eve@example.org".to_owned(),
                    format!("support+WI-1@{DOMAIN}"),
                ),
                1 => ("bob@example.org".to_owned(), format!("support@{DOMAIN}")),
                _ => (
                    "bob@example.org".to_owned(),
                    format!("support+WI-{}@{DOMAIN}", n % 3 + 1),
                ),
            };
            let raw = format!(
                "From: {sender}\r\nTo: {to}\r\nSubject: mail {n}\r\nMessage-ID: <mail-{n}@example.org>\r\n\r\nbody {n}\r\n"
            );
            cyrus
                .deliver(login, &sender, raw.as_bytes())
                .expect("deliver");
        }
    }

    #[tokio::test]
    async fn every_mail_lands_exactly_once_across_a_crash() {
        let Some(cyrus) = super::server() else { return };
        let login = cyrus.add_user("support", "pw").expect("user");
        deliver_mixed(&cyrus, &login, 0, 20);
        let client = JmapClient::connect(&cyrus.http_url, &login, "pw")
            .await
            .expect("session");
        let mailbox = mailbox_of(&login);
        let followed = FollowedMailbox {
            id: "mb1",
            mailbox: &mailbox,
            client: &client,
        };
        let (sink, states) = (MemorySink::default(), MemoryStates::default());
        let services = Services {
            context: &Context,
            sink: &sink,
            states: &states,
        };

        *sink.crash_after.lock().expect("lock") = Some(7);
        sync_once(&followed, services)
            .await
            .expect_err("crashed mid-pass");
        assert_eq!(
            states.load("mb1").await.expect("load"),
            None,
            "no state saved"
        );

        let pass = sync_once(&followed, services).await.expect("pass");
        assert_eq!((pass.fetched, pass.delivered, pass.repeated), (20, 13, 7));

        deliver_mixed(&cyrus, &login, 20, 5);
        let pass = sync_once(&followed, services).await.expect("pass");
        assert_eq!((pass.fetched, pass.delivered, pass.repeated), (5, 5, 0));
        let pass = sync_once(&followed, services).await.expect("pass");
        assert_eq!(pass.fetched, 0);

        let mails = sink.mails.lock().expect("lock");
        assert_eq!(mails.len(), 25, "each mail once");
        let count =
            |wanted: fn(&Route) -> bool| mails.values().filter(|route| wanted(route)).count();
        // n % 4: 0 from a stranger (held), 1 without a plus-address
        // (classifier unsure: triage), 2 and 3 from bob to WI-1..3 (posted).
        assert_eq!(count(|r| matches!(r, Route::Post(_))), 12);
        assert_eq!(
            count(|r| matches!(
                r,
                Route::Held {
                    reason: HoldReason::UnknownSender,
                    ..
                }
            )),
            7
        );
        assert_eq!(
            count(|r| matches!(r, Route::Triage(TriageReason::Unsure { .. }))),
            6
        );
    }

    /// Finds threads through what the sink has posted, and takes its time
    /// to record mail: routes of one pass run side by side.
    struct Threads<'a>(&'a MemorySink);

    #[async_trait::async_trait]
    impl RoutingContext for Threads<'_> {
        async fn work_item(
            &self,
            projects: &[String],
            key: WorkItemKey,
        ) -> anyhow::Result<Option<ItemInfo>> {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            Context.work_item(projects, key).await
        }
        async fn referenced(&self, _: &str, ids: &[&str]) -> anyhow::Result<Referenced> {
            let mails = self.0.mails.lock().expect("lock");
            Ok(mails
                .iter()
                .find_map(|((_, message_id), route)| match route {
                    Route::Post(item) if ids.contains(&message_id.as_str()) => {
                        Some(Referenced::Thread(item.clone()))
                    }
                    _ => None,
                })
                .unwrap_or(Referenced::Nothing))
        }
        async fn knows_sender(&self, item: &ItemInfo, sender: &str) -> anyhow::Result<bool> {
            Context.knows_sender(item, sender).await
        }
        async fn classify(&self, project: &str, mail: &InboundMail) -> anyhow::Result<Classified> {
            Context.classify(project, mail).await
        }
    }

    #[tokio::test]
    async fn a_reply_listed_before_its_original_waits_for_it() {
        let Some(cyrus) = super::server() else { return };
        let login = cyrus.add_user("desk", "pw").expect("user");
        let mails = [
            (
                "reply",
                format!("To: desk@{DOMAIN}\r\nIn-Reply-To: <original@example.org>\r\n"),
            ),
            ("original", format!("To: desk+WI-2@{DOMAIN}\r\n")),
            ("other", format!("To: desk+WI-3@{DOMAIN}\r\n")),
        ];
        for (id, headers) in &mails {
            let raw = format!(
                "From: bob@example.org\r\n{headers}Subject: {id}\r\nMessage-ID: <{id}@example.org>\r\n\r\n{id}\r\n"
            );
            cyrus
                .deliver(&login, "bob@example.org", raw.as_bytes())
                .expect("deliver");
        }
        let client = JmapClient::connect(&cyrus.http_url, &login, "pw")
            .await
            .expect("session");
        let (pass, sink) = one_pass(&client, &mailbox_of(&login)).await;
        assert_eq!(pass.delivered, 3);
        let mails = sink.mails.lock().expect("lock");
        let route_of = |id: &str| mails[&("mb1".to_owned(), format!("{id}@example.org"))].clone();
        let Route::Post(item) = route_of("reply") else {
            panic!("the reply went to {:?}", route_of("reply"));
        };
        assert_eq!(item.id, "wi-2", "into its original's thread");
    }

    /// One pass of mailbox `mb1` from no saved state, into a fresh sink.
    async fn one_pass(client: &JmapClient, mailbox: &Mailbox) -> (Pass, MemorySink) {
        let (sink, states) = (MemorySink::default(), MemoryStates::default());
        let threads = Threads(&sink);
        let services = Services {
            context: &threads,
            sink: &sink,
            states: &states,
        };
        let followed = FollowedMailbox {
            id: "mb1",
            mailbox,
            client,
        };
        let pass = sync_once(&followed, services).await.expect("pass");
        (pass, sink)
    }

    /// Issue 21: a new mailbox's first pass took everything the account
    /// ever held. Now it takes mail from the mailbox's creation on, unless
    /// it asked for the history.
    #[tokio::test]
    async fn a_new_mailbox_takes_mail_from_its_creation_on() {
        let Some(cyrus) = super::server() else { return };
        let login = cyrus.add_user("fresh", "pw").expect("user");
        deliver_mixed(&cyrus, &login, 0, 1);
        // The mailbox is made a second later; what follows it is new.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        let created = prost_types::Timestamp {
            seconds: i64::try_from(now.as_secs()).expect("seconds"),
            nanos: 0,
        }
        .to_string();
        deliver_mixed(&cyrus, &login, 1, 1);
        let client = JmapClient::connect(&cyrus.http_url, &login, "pw")
            .await
            .expect("session");
        for (history_from, expected) in [(Some(created), 1), (None, 2)] {
            let mailbox = Mailbox {
                history_from,
                ..mailbox_of(&login)
            };
            let (pass, sink) = one_pass(&client, &mailbox).await;
            assert_eq!(pass.delivered, expected, "{:?}", mailbox.history_from);
            if expected == 1 {
                let mails = sink.mails.lock().expect("lock");
                assert!(mails.contains_key(&("mb1".to_owned(), "mail-1@example.org".to_owned())));
            }
        }
    }

    /// Waits (up to a generous bound, not a speed requirement) until the
    /// sink holds `count` mails.
    async fn until_routed(sink: &MemorySink, count: usize) {
        for _ in 0..600 {
            if sink.mails.lock().expect("lock").len() >= count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "only {} of {count} mails were routed",
            sink.mails.lock().expect("lock").len()
        );
    }

    #[tokio::test]
    async fn a_follower_rides_out_a_server_restart() {
        let Some(mut cyrus) = super::server() else {
            return;
        };
        let login = cyrus.add_user("support", "pw").expect("user");
        let mailbox = mailbox_of(&login);
        let (sink, states) = (MemorySink::default(), MemoryStates::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let url = cyrus.http_url.clone();
        let pacing = Pacing {
            poll_interval: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_millis(800),
        };
        let follower = follow(
            || JmapClient::connect(&url, &login, "pw"),
            "mb1",
            &mailbox,
            Services {
                context: &Context,
                sink: &sink,
                states: &states,
            },
            pacing,
            async {
                let _ = stop_rx.await;
            },
        );
        let scenario = async {
            deliver_mixed(&cyrus, &login, 0, 10);
            until_routed(&sink, 10).await;
            cyrus.stop();
            // The follower fails and backs off while the server is down.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            cyrus.restart().expect("restart");
            deliver_mixed(&cyrus, &login, 10, 10);
            until_routed(&sink, 20).await;
            let _ = stop_tx.send(());
        };
        tokio::join!(follower, scenario);
        let mails = sink.mails.lock().expect("lock");
        assert_eq!(mails.len(), 20, "each of the 20 mails once");
    }
}

#[tokio::test]
async fn a_sent_mail_travels_to_its_recipient_with_its_headers() {
    let Some(cyrus) = server() else { return };
    let desk = cyrus.add_user("desk", "desk-pw").expect("desk");
    // Right after an account is made, this Cyrus now and then refuses to
    // create a mailbox in it (`invalidProperties` on `parentId`) for the
    // life of that HTTP connection; an account in use is made earlier.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let sender = JmapClient::connect(&cyrus.http_url, &desk, "desk-pw")
        .await
        .expect("desk session");
    let customer = format!("customer@{}", anima_mail::testing::EXTERNAL_DOMAIN);
    cyrus
        .admin()
        .create_account_now(&customer, "customer-pw", true)
        .expect("customer");
    let mailbox = Address::parse(&desk).expect("address");
    let headers = anima_core::thread::EmailHeaders {
        to: vec![customer.clone()],
        subject: "Your export".into(),
        message_id: "0199-outbound@anima".into(),
        ..Default::default()
    };
    let compose = |headers: &anima_core::thread::EmailHeaders| {
        anima_mail::compose::compose(&anima_mail::compose::Outbound {
            mailbox: &mailbox,
            sender_name: "Shop desk",
            work_item: WorkItemKey(7),
            project_id: "project-1",
            headers,
            body: "The fix is live.",
        })
        .expect("compose")
    };
    let raw = compose(&headers);
    let second = compose(&anima_core::thread::EmailHeaders {
        message_id: "0199-second@anima".into(),
        ..headers.clone()
    });
    assert!(
        !sender
            .was_submitted("0199-outbound@anima")
            .await
            .expect("asked"),
        "nothing sent yet"
    );
    sender
        .send(&raw, &desk, std::slice::from_ref(&customer))
        .await
        .expect("send");
    assert!(
        sender
            .was_submitted("0199-outbound@anima")
            .await
            .expect("asked"),
        "a sender that lost its lease finds the submission"
    );
    assert!(
        !sender
            .was_submitted("0199-second@anima")
            .await
            .expect("asked")
    );
    // Another mail reuses the Sent mailbox made by the first; the first
    // again (a retry) is sent as the copy already in Sent, and the
    // recipient's server keeps one of two deliveries with one Message-ID.
    for mail in [&second, &raw] {
        sender
            .send(mail, &desk, std::slice::from_ref(&customer))
            .await
            .expect("send again");
    }

    let inbox = JmapClient::connect(&cyrus.http_url, &customer, "customer-pw")
        .await
        .expect("customer session");
    let (ids, _) = inbox.all_email_ids().await.expect("listing");
    assert_eq!(ids.len(), 2, "both mails arrived");
    let refs = inbox.email_refs(&ids).await.expect("refs");
    let mut email = &refs[0];
    for candidate in &refs {
        let arrived = parse(&inbox.download(&candidate.blob_id).await.expect("download"));
        if arrived.message_id == "0199-outbound@anima" {
            email = candidate;
        }
    }
    let arrived = parse(&inbox.download(&email.blob_id).await.expect("download"));
    assert_eq!(arrived.message_id, "0199-outbound@anima");
    assert_eq!(arrived.subject, "Your export");
    assert_eq!(arrived.anima_work_item.as_deref(), Some("WI-7"));
    assert_eq!(arrived.from, desk);
    let raw_text =
        String::from_utf8_lossy(&inbox.download(&email.blob_id).await.expect("raw")).into_owned();
    assert!(
        raw_text.contains(&format!(
            "Reply-To: <desk+WI-7@{}>",
            anima_mail::testing::DOMAIN
        )),
        "{raw_text}"
    );
}
