//! Two real `anima-server` processes on one PostgreSQL database: a thread
//! stream on B delivers exactly the messages posted through A, in order;
//! a subscriber whose connection dies mid-stream resumes from its last
//! event id and, between both connections, sees every message once.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::common::code_and_reason;
use anima_db::testing::TempDatabase;
use anima_proto::v1::{
    self as pb, auth_service_client::AuthServiceClient,
    project_service_client::ProjectServiceClient, thread_service_client::ThreadServiceClient,
    work_item_service_client::WorkItemServiceClient,
};
use tokio_stream::StreamExt;
use tonic::{Request, Streaming, transport::Channel};

const SERVER: &str = env!("CARGO_BIN_EXE_anima-server");
pub(crate) const ADMIN_PASSWORD: &str = "multi-instance admin password";
const MESSAGES: usize = 1_000;
const WRITERS: usize = 4;

/// An `anima-server` process; killed on drop.
pub(crate) struct Instance {
    child: Child,
    url: String,
}

impl Instance {
    pub(crate) fn start(database_url: &str) -> Self {
        let mut child = Command::new(SERVER)
            .args(["--listen", "127.0.0.1:0", "--database-url", database_url])
            .env("ANIMA_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start anima-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("anima-server listening on ")
                    .map(str::to_owned)
            })
            .expect("anima-server printed its address");
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, url }
    }

    /// Its address, `127.0.0.1:port`.
    pub(crate) fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .expect("url")
            .connect()
            .await
            .expect("connect")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// Logs `username` in on `channel` and returns the session token.
pub(crate) async fn login(channel: &Channel, username: &str, password: &str) -> String {
    AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            username: username.into(),
            password: password.into(),
        })
        .await
        .expect("login")
        .into_inner()
        .token
}

/// Posts a human message to the thread of `work_item_id`.
pub(crate) async fn post(
    threads: &mut ThreadServiceClient<Channel>,
    token: &str,
    work_item_id: &str,
    body: String,
) -> pb::Message {
    threads
        .post_message(authed(
            token,
            pb::PostMessageRequest {
                work_item_id: work_item_id.into(),
                kind: pb::MessageKind::Human as i32,
                body,
                ..Default::default()
            },
        ))
        .await
        .expect("post")
        .into_inner()
}

/// A new project named `name`, made by the holder of `token`.
pub(crate) async fn create_project(channel: &Channel, token: &str, name: &str) -> pb::Project {
    ProjectServiceClient::new(channel.clone())
        .create_project(authed(
            token,
            pb::CreateProjectRequest {
                name: name.into(),
                description: String::new(),
            },
        ))
        .await
        .expect("project")
        .into_inner()
}

/// A project with one work item; returns (project id, work item id).
pub(crate) async fn project_with_item(
    channel: Channel,
    token: &str,
    name: &str,
) -> (String, String) {
    let project = create_project(&channel, token, name).await;
    let item = WorkItemServiceClient::new(channel)
        .create_work_item(authed(
            token,
            pb::CreateWorkItemRequest {
                project_id: project.id.clone(),
                title: format!("{name} thread"),
                ..Default::default()
            },
        ))
        .await
        .expect("item")
        .into_inner();
    (project.id, item.id)
}

pub(crate) async fn subscribe(
    channel: Channel,
    token: &str,
    work_item_id: &str,
    after_event_id: i64,
) -> Streaming<pb::ThreadEvent> {
    ThreadServiceClient::new(channel)
        .stream_thread(authed(
            token,
            pb::StreamThreadRequest {
                work_item_id: work_item_id.into(),
                after_event_id,
            },
        ))
        .await
        .expect("stream")
        .into_inner()
}

/// Reads until `count` messages arrived; returns them with the event id of
/// the last one.
async fn take_messages(
    stream: &mut Streaming<pb::ThreadEvent>,
    count: usize,
) -> (Vec<pb::Message>, i64) {
    let mut messages = Vec::with_capacity(count);
    let mut last_event_id = 0;
    while messages.len() < count {
        let item = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("the stream keeps delivering")
            .expect("the stream is open")
            .expect("no error");
        assert!(item.event_id >= last_event_id, "event ids never go back");
        if let Some(pb::thread_event::Kind::Message(message)) = item.kind {
            last_event_id = item.event_id;
            messages.push(message);
        }
    }
    (messages, last_event_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_deliver_each_others_events_and_resume_without_gaps() {
    let db = TempDatabase::postgres().await;
    let a = Instance::start(&db.url);
    let b = Instance::start(&db.url);
    let store = db.open().await;

    let token = login(&a.channel().await, "admin", ADMIN_PASSWORD).await;
    let (_, item_id) = project_with_item(a.channel().await, &token, "Shared").await;
    anima_db::testing::settle_events(&*store).await;
    let cursor = store.last_event().await.expect("cursor").id;

    // Two subscribers on B before anything is posted through A.
    let mut steady = subscribe(b.channel().await, &token, &item_id, cursor).await;
    let mut flaky = subscribe(b.channel().await, &token, &item_id, cursor).await;

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let channel = a.channel().await;
        let token = token.clone();
        let work_item_id = item_id.clone();
        writers.push(tokio::spawn(async move {
            let mut threads = ThreadServiceClient::new(channel);
            for n in 0..MESSAGES / WRITERS {
                post(&mut threads, &token, &work_item_id, format!("{writer}/{n}")).await;
            }
        }));
    }

    // The flaky subscriber's connection dies after 400 messages.
    let (first_part, resume_after) = take_messages(&mut flaky, 400).await;
    drop(flaky);

    let (all, _) = take_messages(&mut steady, MESSAGES).await;
    for writer in writers {
        writer.await.expect("writer");
    }
    let sequences: Vec<i64> = all.iter().map(|m| m.sequence).collect();
    assert_eq!(
        sequences,
        (1..=MESSAGES as i64).collect::<Vec<_>>(),
        "B delivered exactly the 1,000 messages, in order"
    );
    let bodies: BTreeSet<&str> = all.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies.len(), MESSAGES);

    let mut resumed = subscribe(b.channel().await, &token, &item_id, resume_after).await;
    let (second_part, _) = take_messages(&mut resumed, MESSAGES - first_part.len()).await;
    let union: Vec<i64> = first_part
        .iter()
        .chain(&second_part)
        .map(|m| m.sequence)
        .collect();
    assert_eq!(
        union,
        (1..=MESSAGES as i64).collect::<Vec<_>>(),
        "no gap and no duplicate across the reconnect"
    );
}

async fn wrong_login(channel: Channel, username: &str) -> tonic::Status {
    AuthServiceClient::new(channel)
        .login(pb::LoginRequest {
            username: username.into(),
            password: "not the password".into(),
        })
        .await
        .expect_err("a wrong password")
}

/// Issue 21: each instance counted failures in its own memory, after the
/// password check, so 20 parallel guesses across two instances were 20
/// argon2 checks. Now they are 20 attempts in the shared database: the
/// first five (this peer's limit for the user) are checked, the rest are
/// refused before any work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_across_instances_are_each_an_attempt() {
    let db = TempDatabase::postgres().await;
    let a = Instance::start(&db.url);
    let b = Instance::start(&db.url);
    let (to_a, to_b) = (a.channel().await, b.channel().await);
    let guesses = (0..20).map(|n| {
        let channel = if n % 2 == 0 {
            to_a.clone()
        } else {
            to_b.clone()
        };
        tokio::spawn(async move { code_and_reason(&wrong_login(channel, "admin").await) })
    });
    let mut outcomes = Vec::new();
    for guess in guesses {
        outcomes.push(guess.await.expect("guess"));
    }
    let checked = outcomes
        .iter()
        .filter(|outcome| outcome.1 == "INVALID_CREDENTIALS")
        .count();
    let refused = outcomes
        .iter()
        .filter(|outcome| **outcome == (tonic::Code::ResourceExhausted, "RATE_LIMITED".into()))
        .count();
    assert_eq!((checked, refused), (5, 15), "{outcomes:?}");
    // The right password from this address waits too; a guessing address
    // locks out only itself (the user's own limit is higher).
    let blocked = AuthServiceClient::new(to_b.clone())
        .login(pb::LoginRequest {
            username: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .expect_err("this address waits");
    assert_eq!(code_and_reason(&blocked).1, "RATE_LIMITED");
}

/// Peak resident memory of a process, from the kernel's own record.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Issue 21: a flood of logins (distinct usernames, so each passes the
/// per-user counters) queued an argon2 computation of 19 MiB each without
/// bound. Now one per core runs and 64 wait; the rest are told the server
/// is busy, memory stays bounded and other calls answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_keeps_memory_bounded_and_the_server_answering() {
    let db = TempDatabase::postgres().await;
    let server = Instance::start(&db.url);
    let channel = server.channel().await;
    let token = AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            username: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .expect("login before the flood")
        .into_inner()
        .token;
    let flood: Vec<_> = (0..500)
        .map(|n| {
            let channel = channel.clone();
            tokio::spawn(async move {
                code_and_reason(&wrong_login(channel, &format!("user{n}")).await)
            })
        })
        .collect();
    // Answered while the flood is on.
    ProjectServiceClient::new(channel.clone())
        .list_projects(authed(&token, pb::ListProjectsRequest::default()))
        .await
        .expect("other RPCs answer during the flood");
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for login in flood {
        let (_, reason) = login.await.expect("login");
        *outcomes.entry(reason).or_default() += 1;
    }
    let known: usize = ["INVALID_CREDENTIALS", "RATE_LIMITED", "SERVER_BUSY"]
        .iter()
        .map(|reason| outcomes.get(*reason).copied().unwrap_or(0))
        .sum();
    assert_eq!(
        known, 500,
        "every login answered with a reason: {outcomes:?}"
    );
    let peak = peak_rss_kib(server.child.id());
    assert!(
        peak < 200 * 1024,
        "peak memory {peak} KiB during the flood ({outcomes:?})"
    );
}
