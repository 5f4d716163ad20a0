//! Mail end to end: a private Cyrus with JMAP, and `anima up` following it
//! with the mail worker in-process. 200 mails of mixed kinds are delivered;
//! `anima up` is killed (SIGKILL) in the middle of the burst and started
//! again on the same data. Every mail must end up exactly once: posted in
//! the right thread, held, or in triage, as its kind says. Mailbox
//! accounts are made, rotated and dropped on the real server.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anima_client::{Services, Session};
use anima_mail::testing::{CyrusServer, DOMAIN, EXTERNAL_DOMAIN};
use anima_proto::v1 as pb;

mod common;

use common::{ANIMA, cli, found_first};
const ADMIN_PASSWORD: &str = "mail-test-admin-password";
const ITEMS: usize = 10;
const TITLES: [&str; ITEMS] = [
    "Export to CSV crashes on empty rows",
    "Login page rejects valid passwords",
    "Invoice PDF shows wrong VAT rate",
    "Search ignores German umlauts",
    "Nightly backup job times out",
    "Dark mode colours unreadable in settings",
    "Webhook retries flood the partner API",
    "Password reset mail never arrives",
    "Dashboard counts include archived items",
    "Mobile upload fails for large photos",
];

/// `anima up` with the mail worker, on a data directory that survives it.
struct Up {
    child: Child,
    address: String,
}

impl Up {
    fn start(data_dir: &Path, config: &Path) -> Self {
        let mut child = Command::new(ANIMA)
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .env("ANIMA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("ANIMA_MAIL_DOMAINS", DOMAIN)
            .env_remove("ANIMA_DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start anima up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut address = None;
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.strip_prefix("anima is up at ") {
                address = rest.split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            address: address.expect("anima up printed its address"),
        }
    }

    /// SIGKILL: no shutdown, as a crash.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs in to the server at `address`.
async fn login(address: &str, username: &str, password: &str) -> Session {
    let channel = anima_client::connect(address, None).await.expect("connect");
    Session::login(channel, username, password)
        .await
        .expect("login")
}

/// Signs in as the admin.
async fn admin_session(address: &str) -> Session {
    login(address, "admin", ADMIN_PASSWORD).await
}

/// Every mail a mailbox received, in any state.
async fn inbound(api: &Session, mailbox_id: &str) -> Vec<pb::InboundMail> {
    api.list(pb::ListInboundMailRequest {
        mailbox_id: mailbox_id.into(),
        ..Default::default()
    })
    .await
    .expect("list inbound")
}

/// A work item's thread.
async fn thread(api: &Session, work_item_id: &str) -> Vec<pb::Message> {
    api.list(pb::GetThreadRequest {
        work_item_id: work_item_id.into(),
        ..Default::default()
    })
    .await
    .expect("thread")
}

/// What a delivered mail must become.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Posted(usize),
    Held,
    Triage,
    /// Classified: its item, or triage when the classifier is unsure.
    PostedOrTriage(usize),
}

struct Mail {
    mailbox: &'static str,
    message_id: String,
    bytes: Vec<u8>,
    expect: Expect,
}

fn mail(from: &str, to: &str, subject: &str, message_id: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

/// 200 mails: plus-addressed from a member, from a stranger, from a denied
/// domain, our own mail looping back, replies without a plus-address,
/// unknown work items, a gather mailbox with and without plus-addresses,
/// HTML-only and encoded-word mail, and mail only classification can place.
fn mails() -> Vec<Mail> {
    let desk = |tag: &str| format!("desk+{tag}@{DOMAIN}");
    let mut mails = Vec::new();
    for i in 0..200 {
        let item = i % ITEMS;
        let key = format!("WI-{}", item + 1);
        let id = format!("m{i}@example.org");
        let (mailbox, bytes, expect) = match i % 10 {
            0..=2 => (
                "desk",
                mail(
                    "ann@example.org",
                    &desk(&key),
                    "Update",
                    &id,
                    "",
                    "More details.",
                ),
                Expect::Posted(item),
            ),
            3 => (
                "desk",
                mail(
                    "stranger@example.net",
                    &desk(&key),
                    "Hi",
                    &id,
                    "",
                    "Who reads this?",
                ),
                Expect::Held,
            ),
            4 => {
                // A reply to mail 4 earlier (kind 0), without a plus-address.
                let original = format!("m{}@example.org", i - 4);
                let extra = format!("In-Reply-To: <{original}>\r\nReferences: <{original}>\r\n");
                (
                    "desk",
                    mail(
                        "ann@example.org",
                        &format!("desk@{DOMAIN}"),
                        "Re: Update",
                        &id,
                        &extra,
                        "Thanks.",
                    ),
                    Expect::Posted((i - 4) % ITEMS),
                )
            }
            5 => (
                "desk",
                mail(
                    "ann@example.org",
                    &desk("WI-999"),
                    "Lost",
                    &id,
                    "",
                    "Which item?",
                ),
                Expect::Triage,
            ),
            6 => (
                "desk",
                mail("bot@spam.example", &desk(&key), "Win", &id, "", "Buy now."),
                Expect::Held,
            ),
            7 => (
                "desk",
                mail(
                    "ann@example.org",
                    &desk(&key),
                    "Loop",
                    &id,
                    &format!("X-Anima-WorkItem: {key}\r\n"),
                    "Echo.",
                ),
                Expect::Held,
            ),
            8 => (
                "gather",
                mail(
                    "ann@example.org",
                    &format!("gather@{DOMAIN}"),
                    "No address",
                    &id,
                    "",
                    "Hello.",
                ),
                Expect::Triage,
            ),
            _ => (
                "gather",
                mail(
                    "ann@example.org",
                    &format!("gather+{key}@{DOMAIN}"),
                    "Gathered",
                    &id,
                    "",
                    "Via gather.",
                ),
                Expect::Posted(item),
            ),
        };
        mails.push(Mail {
            mailbox,
            message_id: id,
            bytes,
            expect,
        });
    }
    // Some of the above, replaced by the awkward kinds.
    mails[10].bytes = format!(
        "From: ann@example.org\r\nTo: {}\r\nSubject: html\r\nMessage-ID: <m10@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p>Only <b>HTML</b> here.</p></body></html>\r\n",
        desk("WI-1")
    )
    .into_bytes();
    mails[20].bytes = mail(
        "ann@example.org",
        &desk("WI-1"),
        "=?UTF-8?B?w5xiZXJzaWNodCBmw7xyIGRpZSBXb2NoZQ==?=",
        "m20@example.org",
        "",
        "Encoded subject.",
    );
    // 30 MB with its attachment: over the 25 MiB default, so held.
    let attachment =
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\r\n"
            .repeat(30 * 1024 * 1024 / 78);
    mails[35] = Mail {
        mailbox: "desk",
        message_id: "m35@example.org".into(),
        bytes: format!(
            "From: ann@example.org\r\nTo: {}\r\nSubject: Logs\r\nMessage-ID: <m35@example.org>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nThe logs.\r\n\
             --b\r\nContent-Type: application/octet-stream; name=logs.bin\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{attachment}--b--\r\n",
            desk("WI-1")
        )
        .into_bytes(),
        expect: Expect::Held,
    };
    for (slot, item) in [(15, 0), (25, 4)] {
        mails[slot] = Mail {
            mailbox: "desk",
            message_id: format!("m{slot}@example.org"),
            bytes: mail(
                "ann@example.org",
                &format!("desk@{DOMAIN}"),
                TITLES[item],
                &format!("m{slot}@example.org"),
                "",
                &format!("{} — it happened again this morning.", TITLES[item]),
            ),
            expect: Expect::PostedOrTriage(item),
        };
    }
    mails
}

/// Base64 in lines of 76 characters, as mail carries it.
fn base64_lines(bytes: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut lines = String::with_capacity(encoded.len() + encoded.len() / 38);
    for line in encoded.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(line).unwrap_or_default());
        lines.push_str("\r\n");
    }
    lines
}

/// What the mail worker derives each account's password from.
const ACCOUNT_SECRET: &str = "a-test-secret-of-some-length";

fn write_config(dir: &Path, cyrus: &CyrusServer) -> std::path::PathBuf {
    let admin = cyrus.admin();
    let path = dir.join("anima.toml");
    std::fs::write(
        &path,
        format!(
            "[mail]\njmap_url = \"{}\"\naccount_secret = \"{ACCOUNT_SECRET}\"\npoll_interval_ms = 200\n\
             send_attempts = 20\nsend_retry_ms = 200\n\
             [mail.admin]\nkind = \"cyrus\"\nimap = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\nsasldb = \"{}\"\nsasldb_owner = \"cyrus:mail\"\n",
            cyrus.http_url,
            admin.imap,
            admin.admin_user,
            admin.admin_password,
            admin.sasldb.display()
        ),
    )
    .expect("mail config");
    path
}

/// Delivers, retrying while the worker has not yet made the account.
fn deliver(cyrus: &CyrusServer, login: &str, sender: &str, bytes: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match cyrus.deliver(login, sender, bytes) {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Err(err) => panic!("deliver to {login}: {err:#}"),
        }
    }
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Skips (with a note) where Cyrus cannot run, unless the suite requires it.
fn cyrus() -> Option<CyrusServer> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_mails_land_once_across_a_crash() {
    let Some(cyrus) = cyrus() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &cyrus);
    let up = Up::start(dir.path(), &config);
    let api = admin_session(&up.address).await;

    // A project with ten items and a member, ann, whose mail is known; a
    // second, empty project so that the gather mailbox serves two.
    let mut projects = api.projects();
    let project = projects
        .create_project(api.request(pb::CreateProjectRequest {
            name: "Shop".into(),
            description: String::new(),
        }))
        .await
        .expect("project")
        .into_inner();
    let other = projects
        .create_project(api.request(pb::CreateProjectRequest {
            name: "Other".into(),
            description: String::new(),
        }))
        .await
        .expect("project")
        .into_inner();
    let ann = api
        .team()
        .create_user(api.request(pb::CreateUserRequest {
            username: "ann".into(),
            display_name: "Ann".into(),
            email: "ann@example.org".into(),
            password: "ann-password-long".into(),
            is_admin: false,
        }))
        .await
        .expect("ann")
        .into_inner();
    projects
        .add_project_member(api.request(pb::AddProjectMemberRequest {
            project_id: project.id.clone(),
            user_id: ann.id,
            role_id: anima_core::permission::DEFAULT_ROLES[2].id.into(),
        }))
        .await
        .expect("member");
    let mut item_ids = Vec::new();
    for title in TITLES {
        let item = api
            .work_items()
            .create_work_item(api.request(pb::CreateWorkItemRequest {
                project_id: project.id.clone(),
                title: title.into(),
                description: format!("{title}. Reported by customers."),
                ..Default::default()
            }))
            .await
            .expect("item")
            .into_inner();
        item_ids.push(item.id);
    }
    let mut mailboxes = api.mailboxes();
    let desk = mailboxes
        .create_mailbox(api.request(pb::CreateMailboxRequest {
            address: format!("desk@{DOMAIN}"),
            project_ids: vec![project.id.clone()],
            rules: Some(pb::ScreeningRules {
                deny: vec!["spam.example".into()],
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("desk")
        .into_inner();
    let gather = mailboxes
        .create_mailbox(api.request(pb::CreateMailboxRequest {
            address: format!("gather@{DOMAIN}"),
            project_ids: vec![project.id.clone(), other.id.clone()],
            ..Default::default()
        }))
        .await
        .expect("gather")
        .into_inner();
    assert!(gather.gather);
    let mailbox_ids = HashMap::from([("desk", desk.id.clone()), ("gather", gather.id.clone())]);

    // The burst; anima up dies after the first half and the rest arrives
    // while it is down.
    let mails = mails();
    for mail in &mails[..100] {
        deliver(
            &cyrus,
            &format!("{}@{DOMAIN}", mail.mailbox),
            "sender@example.org",
            &mail.bytes,
        );
    }
    up.kill();
    for mail in &mails[100..] {
        deliver(
            &cyrus,
            &format!("{}@{DOMAIN}", mail.mailbox),
            "sender@example.org",
            &mail.bytes,
        );
    }
    // The same mail once more: a duplicate Message-ID.
    deliver(
        &cyrus,
        &format!("desk@{DOMAIN}"),
        "sender@example.org",
        &mails[0].bytes,
    );
    let up = Up::start(dir.path(), &config);
    let api = admin_session(&up.address).await;

    wait_for("every mail recorded", async || {
        inbound(&api, &desk.id).await.len() + inbound(&api, &gather.id).await.len() >= mails.len()
    })
    .await;
    // A little longer: nothing more may appear.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut records = HashMap::new();
    for (name, id) in &mailbox_ids {
        for record in inbound(&api, id).await {
            let message_id = record.email.clone().unwrap_or_default().message_id;
            assert!(
                records
                    .insert(message_id.clone(), (*name, record))
                    .is_none(),
                "{message_id} recorded twice"
            );
        }
    }
    assert_eq!(records.len(), mails.len(), "one record per mail");
    let mut threads = HashMap::new();
    for id in &item_ids {
        threads.insert(id.clone(), thread(&api, id).await);
    }
    let posts_of = |message_id: &str| -> Vec<&String> {
        threads
            .iter()
            .flat_map(|(item, messages)| {
                messages
                    .iter()
                    .filter(move |m| m.email.as_ref().is_some_and(|e| e.message_id == message_id))
                    .map(move |_| item)
            })
            .collect()
    };
    let state =
        |record: &pb::InboundMail| pb::InboundMailState::try_from(record.state).expect("state");
    for mail in &mails {
        let (mailbox, record) = &records[&mail.message_id];
        assert_eq!(*mailbox, mail.mailbox, "{}", mail.message_id);
        let posts = posts_of(&mail.message_id);
        match mail.expect {
            Expect::Posted(item) => {
                assert_eq!(
                    state(record),
                    pb::InboundMailState::Posted,
                    "{}: {}",
                    mail.message_id,
                    record.reason
                );
                assert_eq!(
                    posts,
                    [&item_ids[item]],
                    "{} posted once, in its thread",
                    mail.message_id
                );
            }
            Expect::Held | Expect::Triage => {
                let wanted = if mail.expect == Expect::Held {
                    pb::InboundMailState::Held
                } else {
                    pb::InboundMailState::Triage
                };
                assert_eq!(
                    state(record),
                    wanted,
                    "{}: {}",
                    mail.message_id,
                    record.reason
                );
                assert!(!record.reason.is_empty());
                assert!(posts.is_empty(), "{} is not in a thread", mail.message_id);
            }
            Expect::PostedOrTriage(item) => match state(record) {
                pb::InboundMailState::Posted => assert_eq!(posts, [&item_ids[item]]),
                pb::InboundMailState::Triage => assert!(posts.is_empty()),
                other => panic!("{}: {other:?}", mail.message_id),
            },
        }
    }
    let too_large = &records["m35@example.org"].1;
    assert!(
        too_large.reason.contains("too large"),
        "{}",
        too_large.reason
    );
    assert!(
        too_large
            .body
            .contains("attachment left on the mail server: logs.bin"),
        "{}",
        too_large.body
    );
    assert!(too_large.attachments.is_empty(), "not kept in the library");
    let html = &records["m10@example.org"].1;
    assert!(
        html.body.contains("Only HTML here") || html.body.contains("Only **HTML** here"),
        "{}",
        html.body
    );
    let encoded = records["m20@example.org"]
        .1
        .email
        .clone()
        .unwrap_or_default();
    assert_eq!(encoded.subject, "Übersicht für die Woche");

    // A human assigns a triaged mail; it lands once, and not twice.
    let triaged = records["m5@example.org"].1.id.clone();
    let assigned = api
        .mailboxes()
        .assign_inbound_mail(api.request(pb::AssignInboundMailRequest {
            id: triaged.clone(),
            work_item_id: item_ids[0].clone(),
        }))
        .await
        .expect("assign")
        .into_inner();
    assert_eq!(assigned.state, pb::InboundMailState::Posted as i32);
    let again = api
        .mailboxes()
        .assign_inbound_mail(api.request(pb::AssignInboundMailRequest {
            id: triaged,
            work_item_id: item_ids[0].clone(),
        }))
        .await
        .expect_err("settled");
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    let posted: Vec<_> = thread(&api, &item_ids[0])
        .await
        .into_iter()
        .filter(|m| {
            m.email
                .as_ref()
                .is_some_and(|e| e.message_id == "m5@example.org")
        })
        .collect();
    assert_eq!(posted.len(), 1);

    // Rotating the gather address: the old account is dropped from Cyrus
    // and the mailbox removed; mail to the new address is followed.
    let rotated = api
        .mailboxes()
        .rotate_mailbox(api.request(pb::RotateMailboxRequest {
            id: gather.id.clone(),
            new_address: format!("gather2@{DOMAIN}"),
        }))
        .await
        .expect("rotate")
        .into_inner();
    wait_for("the old mailbox removed", async || {
        api.mailboxes()
            .get_mailbox(api.request(pb::GetMailboxRequest {
                id: gather.id.clone(),
            }))
            .await
            .is_err_and(|status| status.code() == tonic::Code::NotFound)
    })
    .await;
    assert!(
        cyrus
            .deliver(
                &format!("gather@{DOMAIN}"),
                "x@example.org",
                &mails[9].bytes
            )
            .is_err(),
        "the old account is gone"
    );
    let late = mail(
        "ann@example.org",
        &format!("gather2+WI-2@{DOMAIN}"),
        "After rotation",
        "late@example.org",
        "",
        "Still here.",
    );
    deliver(
        &cyrus,
        &format!("gather2@{DOMAIN}"),
        "ann@example.org",
        &late,
    );
    wait_for("mail to the rotated address posted", async || {
        thread(&api, &item_ids[1]).await.iter().any(|m| {
            m.email
                .as_ref()
                .is_some_and(|e| e.message_id == "late@example.org")
        })
    })
    .await;
    let moved = inbound(&api, &rotated.id).await;
    assert!(
        moved.iter().any(|r| r
            .email
            .as_ref()
            .is_some_and(|e| e.message_id == "m8@example.org")),
        "waiting mail moved to the new mailbox"
    );
    drop(up);
}

async fn post_outbound(api: &Session, work_item_id: &str, to: &str, subject: &str) -> pb::Message {
    api.threads()
        .post_message(api.request(pb::PostMessageRequest {
            work_item_id: work_item_id.into(),
            kind: pb::MessageKind::OutboundEmail as i32,
            body: "The fix is live; please try the export again.".into(),
            email: Some(pb::EmailHeaders {
                to: vec![to.into()],
                subject: subject.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .expect("post outbound")
        .into_inner()
}

async fn message_in(api: &Session, work_item_id: &str, id: &str) -> pb::Message {
    thread(api, work_item_id)
        .await
        .into_iter()
        .find(|message| message.id == id)
        .expect("the message is in its thread")
}

/// An outbound message travels JMAP → Exim → the customer's mailbox with
/// its headers; the customer's reply threads back to the same work item;
/// a send while the mail server is down is retried until it goes; mail of
/// a project no mailbox serves fails visibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_mail_arrives_and_the_reply_threads_back() {
    let Some(mut cyrus) = cyrus() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &cyrus);
    let up = Up::start(dir.path(), &config);
    let api = admin_session(&up.address).await;
    let mut projects = api.projects();
    let mut items = api.work_items();
    let mut item_in = async |name: &str| {
        let project = projects
            .create_project(api.request(pb::CreateProjectRequest {
                name: name.into(),
                description: String::new(),
            }))
            .await
            .expect("project")
            .into_inner();
        let item = items
            .create_work_item(api.request(pb::CreateWorkItemRequest {
                project_id: project.id.clone(),
                title: "Export crashes".into(),
                ..Default::default()
            }))
            .await
            .expect("item")
            .into_inner();
        (project.id, item.id)
    };
    let (project_id, item_id) = item_in("Shop").await;
    let (_, orphan_item) = item_in("No mailbox").await;
    api.mailboxes()
        .create_mailbox(api.request(pb::CreateMailboxRequest {
            address: format!("desk@{DOMAIN}"),
            display_name: "Shop desk".into(),
            project_ids: vec![project_id.clone()],
            ..Default::default()
        }))
        .await
        .expect("desk");
    let customer = format!("customer@{EXTERNAL_DOMAIN}");
    cyrus
        .admin()
        .create_account_now(&customer, "customer-pw", true)
        .expect("customer account");

    let outbound = post_outbound(&api, &item_id, &customer, "Your export").await;
    wait_for("the mail sent", async || {
        message_in(&api, &item_id, &outbound.id)
            .await
            .delivery_state
            == pb::DeliveryState::Sent as i32
    })
    .await;
    let inbox = anima_mail::jmap::JmapClient::connect(&cyrus.http_url, &customer, "customer-pw")
        .await
        .expect("customer session");
    let (ids, _) = inbox.all_email_ids().await.expect("listing");
    assert_eq!(ids.len(), 1, "it arrived once");
    let email = &inbox.email_refs(&ids).await.expect("refs")[0];
    let raw = inbox.download(&email.blob_id).await.expect("download");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let message_id = outbound.email.clone().expect("headers").message_id;
    let arrived = anima_mail::parse::parse(&raw);
    assert_eq!(arrived.message_id, message_id);
    assert_eq!(arrived.subject, "Your export");
    assert_eq!(arrived.from, format!("desk@{DOMAIN}"));
    assert_eq!(arrived.anima_work_item.as_deref(), Some("WI-1"));
    for header in [
        format!("Reply-To: <desk+WI-1@{DOMAIN}>"),
        format!("X-Anima-Project: {project_id}"),
    ] {
        assert!(text.contains(&header), "{header} missing in:\n{text}");
    }

    // The customer answers the Reply-To address, quoting the Message-ID,
    // with a 6 MB export attached: more than one default gRPC message.
    let export: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let encoded = base64_lines(&export);
    let reply = mail(
        &customer,
        &format!("desk+WI-1@{DOMAIN}"),
        "Re: Your export",
        "reply-1@example.org",
        &format!(
            "In-Reply-To: <{message_id}>\r\nReferences: <{message_id}>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
        ),
        &format!(
            "--b\r\nContent-Type: text/plain\r\n\r\nWorks now, thanks!\r\n\
             --b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Disposition: attachment; filename=crash-report.txt\r\n\r\n\
             The nightly export stopped with ERR_EXPORT_STALLED after 40,000 rows: \
             the warehouse closed the connection while the job was still writing.\r\n\
             --b\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=export.bin\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}--b--"
        ),
    );
    deliver(&cyrus, &format!("desk@{DOMAIN}"), &customer, &reply);
    wait_for("the reply in the thread", async || {
        thread(&api, &item_id).await.iter().any(|m| {
            m.kind == pb::MessageKind::InboundEmail as i32
                && m.email
                    .as_ref()
                    .is_some_and(|e| e.message_id == "reply-1@example.org")
        })
    })
    .await;

    // The same through the CLI.
    let cli_dir = tempfile::tempdir().expect("cli config");
    cli(
        cli_dir.path(),
        &[
            "login",
            "--server",
            &up.address,
            "-u",
            "admin",
            "--password-stdin",
        ],
        ADMIN_PASSWORD,
    );
    let listed = cli(
        cli_dir.path(),
        &["mailbox", "list", "--project", "Shop", "--json"],
        "",
    );
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["address"], format!("desk@{DOMAIN}"));
    let desk_id = listed[0]["id"].as_str().expect("id").to_owned();
    let mails = cli(cli_dir.path(), &["mail", "list", &desk_id, "--json"], "");
    let mails: serde_json::Value = serde_json::from_str(&mails).expect("json");
    assert_eq!(
        mails.as_array().map(Vec::len),
        Some(1),
        "only the reply: the copy in Sent is not fetched as inbound mail"
    );
    assert_eq!(mails[0]["message_id"], "reply-1@example.org");
    assert_eq!(mails[0]["state"], "posted");
    assert!(cli(cli_dir.path(), &["mail", "triage", &desk_id], "").contains("ID"));

    // The reply's attachments are documents on the work item, byte for
    // byte; the report is found by its identifier and by what it is about.
    let documents = cli(
        cli_dir.path(),
        &["doc", "list", "--work-item", &item_id, "--json"],
        "",
    );
    let documents: serde_json::Value = serde_json::from_str(&documents).expect("json");
    assert_eq!(documents.as_array().map(Vec::len), Some(2), "{documents}");
    let titled = |title: &str| {
        documents
            .as_array()
            .and_then(|all| all.iter().find(|document| document["title"] == title))
            .unwrap_or_else(|| panic!("no {title} in {documents}"))
            .clone()
    };
    let report = titled("crash-report.txt");
    assert_eq!(report["type"], "attachment");
    assert_eq!(report["searchable"], true, "{report}");
    found_first(
        cli_dir.path(),
        "Shop",
        "ERR_EXPORT_STALLED",
        "crash-report.txt",
    );
    found_first(
        cli_dir.path(),
        "Shop",
        "why did the overnight data dump break off",
        "crash-report.txt",
    );
    let export_document = titled("export.bin");
    assert_eq!(export_document["type"], "attachment");
    assert_eq!(export_document["size_bytes"], export.len());
    let saved = cli_dir.path().join("export.bin");
    cli(
        cli_dir.path(),
        &[
            "doc",
            "get",
            export_document["id"].as_str().expect("id"),
            "--output",
            saved.to_str().expect("path"),
        ],
        "",
    );
    assert!(
        std::fs::read(&saved).expect("saved") == export,
        "the same bytes"
    );
    let reply_message = thread(&api, &item_id)
        .await
        .into_iter()
        .find(|m| {
            m.email
                .as_ref()
                .is_some_and(|e| e.message_id == "reply-1@example.org")
        })
        .expect("reply");
    let mut linked: Vec<&str> = reply_message
        .attachments
        .iter()
        .map(|a| a.document_id.as_str())
        .collect();
    linked.sort_unstable();
    let mut expected = [
        report["id"].as_str().expect("id"),
        export_document["id"].as_str().expect("id"),
    ];
    expected.sort_unstable();
    assert_eq!(linked, expected, "the message links its attachments");

    // No mailbox serves the other project: its mail fails, and says why.
    let orphan = post_outbound(&api, &orphan_item, &customer, "Nowhere").await;
    wait_for("the orphan mail failed", async || {
        message_in(&api, &orphan_item, &orphan.id)
            .await
            .delivery_state
            == pb::DeliveryState::Failed as i32
    })
    .await;
    let failed = message_in(&api, &orphan_item, &orphan.id).await;
    assert!(
        failed.delivery_error.contains("NO_MAILBOX"),
        "{}",
        failed.delivery_error
    );

    // The mail server is down: the send fails, is retried, and goes once
    // the server is back.
    cyrus.stop();
    let retried = post_outbound(&api, &item_id, &customer, "While down").await;
    wait_for("a failed attempt recorded", async || {
        let message = message_in(&api, &item_id, &retried.id).await;
        !message.delivery_error.is_empty()
    })
    .await;
    cyrus.restart().expect("restart Cyrus");
    wait_for("the retried mail sent", async || {
        message_in(&api, &item_id, &retried.id).await.delivery_state
            == pb::DeliveryState::Sent as i32
    })
    .await;
    let (ids, _) = inbox.all_email_ids().await.expect("listing");
    assert_eq!(ids.len(), 2, "the customer has both mails");
    drop(up);
}

/// Issue 21: a project owner who made a mailbox for an address that already
/// had an account on the mail server had its password reset, and read its
/// mail. Now the mailbox is refused and the account untouched until a
/// server admin adopts it, and deleting a refused mailbox keeps the
/// account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_cannot_take_over_an_existing_account() {
    let Some(cyrus) = cyrus() else { return };
    let ceo = cyrus.add_user("ceo", "ceo-own-secret").expect("ceo");
    let cfo = cyrus.add_user("cfo", "cfo-own-secret").expect("cfo");
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &cyrus);
    let up = Up::start(dir.path(), &config);
    let admin = admin_session(&up.address).await;
    admin
        .team()
        .create_user(admin.request(pb::CreateUserRequest {
            username: "mallory".into(),
            display_name: "Mallory".into(),
            email: String::new(),
            password: "mallory-password-long".into(),
            is_admin: false,
        }))
        .await
        .expect("mallory");
    let mallory = login(&up.address, "mallory", "mallory-password-long").await;
    let project = mallory
        .projects()
        .create_project(mallory.request(pb::CreateProjectRequest {
            name: "Mine".into(),
            description: String::new(),
        }))
        .await
        .expect("project")
        .into_inner();
    let create = |address: &str, adopt_existing: bool| pb::CreateMailboxRequest {
        address: address.into(),
        project_ids: vec![project.id.clone()],
        adopt_existing,
        ..Default::default()
    };
    let refused = |status: tonic::Status| {
        use tonic_types::StatusExt;
        (
            status.code(),
            status
                .get_error_details()
                .error_info()
                .map(|info| info.reason.clone())
                .unwrap_or_default(),
        )
    };
    // Only the configured domains, and adopting is no owner's to ask.
    let outside = mallory
        .mailboxes()
        .create_mailbox(mallory.request(create("ceo@example.org", false)))
        .await
        .expect_err("outside the mail domains");
    assert_eq!(
        refused(outside),
        (
            tonic::Code::FailedPrecondition,
            "MAIL_DOMAIN_NOT_ALLOWED".into()
        )
    );
    let adopting = mallory
        .mailboxes()
        .create_mailbox(mallory.request(create(&ceo, true)))
        .await
        .expect_err("owners do not adopt");
    assert_eq!(refused(adopting).0, tonic::Code::PermissionDenied);

    let mut taken = Vec::new();
    for address in [&ceo, &cfo] {
        taken.push(
            mallory
                .mailboxes()
                .create_mailbox(mallory.request(create(address, false)))
                .await
                .expect("created, to be checked by the worker")
                .into_inner(),
        );
    }
    let state_of = async |id: &str| {
        mallory
            .mailboxes()
            .get_mailbox(mallory.request(pb::GetMailboxRequest { id: id.into() }))
            .await
            .expect("mailbox")
            .into_inner()
    };
    for mailbox in &taken {
        wait_for("the worker refuses the mailbox", async || {
            state_of(&mailbox.id).await.state == pb::MailboxState::Refused as i32
        })
        .await;
        let problem = state_of(&mailbox.id).await.problem;
        assert!(problem.starts_with("MAILBOX_EXISTS"), "{problem}");
    }
    // The accounts are untouched: their own passwords still open them.
    for (address, password) in [(&ceo, "ceo-own-secret"), (&cfo, "cfo-own-secret")] {
        anima_mail::jmap::JmapClient::connect(&cyrus.http_url, address, password)
            .await
            .expect("the owner's password still works");
    }
    let denied = mallory
        .mailboxes()
        .adopt_mailbox(mallory.request(pb::AdoptMailboxRequest {
            id: taken[0].id.clone(),
        }))
        .await
        .expect_err("owners do not adopt");
    assert_eq!(refused(denied).0, tonic::Code::PermissionDenied);

    // Deleting a refused mailbox keeps its account.
    mallory
        .mailboxes()
        .delete_mailbox(mallory.request(pb::DeleteMailboxRequest {
            id: taken[1].id.clone(),
        }))
        .await
        .expect("delete");
    wait_for("the refused mailbox is removed", async || {
        mallory
            .mailboxes()
            .get_mailbox(mallory.request(pb::GetMailboxRequest {
                id: taken[1].id.clone(),
            }))
            .await
            .is_err()
    })
    .await;
    anima_mail::jmap::JmapClient::connect(&cyrus.http_url, &cfo, "cfo-own-secret")
        .await
        .expect("the account outlives the refused mailbox");

    // A server admin adopts: the account becomes Anima's (its password is
    // now the one Anima derives, so the worker can follow it).
    let adopted = admin
        .mailboxes()
        .adopt_mailbox(admin.request(pb::AdoptMailboxRequest {
            id: taken[0].id.clone(),
        }))
        .await
        .expect("adopt")
        .into_inner();
    assert!(adopted.adopted);
    assert_eq!(adopted.state, pb::MailboxState::Active as i32);
    let derived = anima_mail::admin::account_password(ACCOUNT_SECRET, &ceo);
    wait_for("the worker takes the adopted account over", async || {
        anima_mail::jmap::JmapClient::connect(&cyrus.http_url, &ceo, &derived)
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        state_of(&adopted.id).await.state,
        pb::MailboxState::Active as i32
    );
}
