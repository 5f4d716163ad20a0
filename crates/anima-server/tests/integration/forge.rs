//! The forge clients against a forge on loopback that answers with the
//! forges' own example bodies (`tests/forge/`, copied from
//! `shared/forge`: taken from the forges' API descriptions, each checked
//! against its JSON Schema by `forge_fixtures_match_their_schemas`), and
//! with the failures a real forge has: pages, 304s, rate limits, refusals,
//! silence, malformed and oversized answers, redirects.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anima_server::forge::{
    CiState, DiffStat, Forge, ForgeHttp, ForgeRepo, ForgeToken, GitHub, GitLab, Gitea, IssueFilter,
    ListState, PullState, ReviewState,
};
use axum::{body::Body, extract::State, http::StatusCode, response::Response};
use reqwest::Url;
use serde_json::Value;

const OWNER: &str = "octocat";
const REPO: &str = "Hello-World";
const TOKEN: &str = "ghp_test_token_never_logged";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/forge")
}

fn example(kind: Kind, name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(kind.dir()).join("examples").join(name)).expect(name)
}

fn example_json(kind: Kind, name: &str) -> Value {
    serde_json::from_slice(&example(kind, name)).expect(name)
}

/// What the fake forge answers to one path and query.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Answered `304` when the request carries it as `If-None-Match`.
    etag: Option<String>,
    /// Held this long before answering.
    delay: Duration,
}

impl Reply {
    fn ok(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body,
            etag: None,
            delay: Duration::ZERO,
        }
    }

    fn json(value: &Value) -> Self {
        Self::ok(serde_json::to_vec(value).expect("json"))
    }

    fn status(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            ..Self::ok(body)
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A request the fake forge saw.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    authorization: Option<String>,
    private_token: Option<String>,
    if_none_match: Option<String>,
    accept: Option<String>,
}

#[derive(Default)]
struct Script {
    replies: HashMap<String, Reply>,
    seen: Vec<Seen>,
}

/// Which forge a fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GitHub,
    Gitea,
    GitLab,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::GitHub, Kind::Gitea, Kind::GitLab];

    /// Its directory of examples and schemas.
    fn dir(self) -> &'static str {
        match self {
            Kind::GitHub => "github",
            Kind::Gitea => "gitea",
            Kind::GitLab => "gitlab",
        }
    }

    /// Where its API is under the host.
    fn api(self) -> &'static str {
        match self {
            Kind::GitHub => "",
            Kind::Gitea => "/api/v1",
            Kind::GitLab => "/api/v4",
        }
    }

    /// The repository's path under the API.
    fn repo_path(self) -> String {
        match self {
            Kind::GitLab => format!("/projects/{OWNER}%2F{REPO}"),
            _ => format!("/repos/{OWNER}/{REPO}"),
        }
    }

    fn client(self, timeout: Duration) -> Box<dyn Forge> {
        let http = Arc::new(ForgeHttp::new(timeout).expect("http"));
        match self {
            Kind::GitHub => Box::new(GitHub::new(http)),
            Kind::Gitea => Box::new(Gitea::new(http)),
            Kind::GitLab => Box::new(GitLab::new(http)),
        }
    }

    /// The query of the first page of all issues.
    fn all_issues_query(self) -> &'static str {
        match self {
            Kind::GitHub => "?state=all&sort=created&direction=asc&per_page=100",
            Kind::Gitea => "?state=all&type=issues&limit=50",
            Kind::GitLab => "?state=all&order_by=created_at&sort=asc&per_page=100",
        }
    }

    /// The example issue as a plain issue (GitHub's official examples are
    /// pull requests' issue views) numbered `number`.
    fn issue(self, number: u64) -> Value {
        let mut issue = example_json(self, "get-issue.json");
        let object = issue.as_object_mut().expect("object");
        object.remove("pull_request");
        let key = match self {
            Kind::GitLab => "iid",
            _ => "number",
        };
        object.insert(key.into(), number.into());
        object.insert("title".into(), format!("Issue {number}").into());
        issue
    }
}

/// A forge on a loopback port.
struct FakeForge {
    kind: Kind,
    base: Url,
    script: Arc<Mutex<Script>>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeForge {
    async fn start(kind: Kind) -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let not_found = example(kind, "error-not-found.json");
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((script.clone(), not_found));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            kind,
            base: Url::parse(&format!("http://{address}")).expect("base"),
            script,
            _server: server,
        }
    }

    fn reply(&self, path_and_query: &str, reply: Reply) {
        self.script
            .lock()
            .expect("script")
            .replies
            .insert(path_and_query.into(), reply);
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.lock().expect("script").seen.clone()
    }

    fn repo(&self) -> ForgeRepo {
        ForgeRepo {
            api_base: self.base.join(self.kind.api()).expect("api"),
            owner: OWNER.into(),
            name: REPO.into(),
            token: Some(ForgeToken(TOKEN.into())),
        }
    }

    /// `path` under the repository, as the fake sees it.
    fn path(&self, path: &str) -> String {
        format!("{}{}{path}", self.kind.api(), self.kind.repo_path())
    }
}

/// What the fake forge keeps of a request.
fn seen_of(request: &axum::extract::Request) -> Seen {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    Seen {
        path_and_query: request
            .uri()
            .path_and_query()
            .map(|path| path.as_str().to_owned())
            .unwrap_or_default(),
        authorization: header("authorization"),
        private_token: header("private-token"),
        if_none_match: header("if-none-match"),
        accept: header("accept"),
    }
}

async fn answer(
    State((script, not_found)): State<(Arc<Mutex<Script>>, Vec<u8>)>,
    request: axum::extract::Request,
) -> Response {
    let seen = seen_of(&request);
    drop(request);
    let reply = {
        let mut script = script.lock().expect("script");
        script.seen.push(seen.clone());
        script.replies.get(&seen.path_and_query).cloned()
    };
    let reply = reply.unwrap_or_else(|| Reply::status(404, not_found));
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder();
    if let Some(etag) = &reply.etag {
        if seen.if_none_match.as_deref() == Some(etag.as_str()) {
            return response
                .status(StatusCode::NOT_MODIFIED)
                .header("etag", etag)
                .body(Body::empty())
                .expect("304");
        }
        response = response.header("etag", etag);
    }
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    response
        .status(reply.status)
        .body(Body::from(reply.body))
        .expect("response")
}

/// Bodies this file makes from the examples validate against the
/// schemas too.
fn validate(kind: Kind, schema: &str, bodies: &[Value]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<PathBuf> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| {
            let file = dir.path().join(format!("{n}.json"));
            std::fs::write(&file, serde_json::to_vec(body).expect("json")).expect("write");
            file
        })
        .collect();
    let schema = fixtures().join(kind.dir()).join("schemas").join(schema);
    let output = std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import json, sys\n\
             from jsonschema import Draft202012Validator\n\
             schema = json.load(open(sys.argv[1]))\n\
             for name in sys.argv[2:]:\n\
             \x20   Draft202012Validator(schema).validate(json.load(open(name)))\n",
        )
        .arg(&schema)
        .args(&files)
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn python() -> String {
    std::env::var("ANIMA_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/anima-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

#[test]
fn forge_fixtures_match_their_schemas() {
    let output = std::process::Command::new(python())
        .arg(fixtures().join("validate.py"))
        .output()
        .unwrap_or_else(|error| {
            panic!("no Python test clients ({error}); run scripts/setup-debian --with-test-clients")
        });
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("all examples valid"), "{printed}");
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn github_pull_requests_come_with_reviews_ci_and_size() {
    let kind = Kind::GitHub;
    let forge = FakeForge::start(kind).await;
    let sha = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    let reviews_path = forge.path("/pulls/1347/reviews?per_page=100");
    let checks_path = forge.path(&format!("/commits/{sha}/check-runs?per_page=100"));
    forge.reply(
        &forge.path("/pulls/1347"),
        Reply::ok(example(kind, "get-pull-request.json")),
    );
    forge.reply(
        &reviews_path,
        Reply::ok(example(kind, "list-pull-request-reviews.json")),
    );
    forge.reply(
        &forge.path(&format!("/commits/{sha}/status")),
        Reply::ok(example(kind, "get-combined-status.json")),
    );
    forge.reply(
        &checks_path,
        Reply::ok(example(kind, "list-check-runs.json")),
    );
    let github = kind.client(WAIT);
    let fetched = github
        .pull_request(&forge.repo(), 1347)
        .await
        .expect("pull request");
    assert!(!fetched.stale);
    let pull = fetched.value;
    assert_eq!(pull.number, 1347);
    assert_eq!(pull.title, "Amazing new feature");
    assert_eq!(pull.state, PullState::Open);
    assert!(!pull.draft);
    assert_eq!(pull.author, "octocat");
    assert_eq!(
        (pull.head.as_str(), pull.base.as_str()),
        ("new-topic", "master")
    );
    assert_eq!(pull.mergeable, Some(true));
    assert_eq!(pull.review, Some(ReviewState::Approved));
    // A successful combined status and a neutral check run.
    assert_eq!(pull.ci, Some(CiState::Success));
    assert_eq!(
        pull.diff_stat,
        Some(DiffStat {
            additions: 100,
            deletions: 3,
            changed_files: 5
        })
    );
    assert_eq!(pull.url, "https://github.com/octocat/Hello-World/pull/1347");
    let seen = forge.seen();
    assert_eq!(seen.len(), 4);
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        seen.iter()
            .all(|seen| seen.authorization.as_deref() == Some(bearer.as_str())),
        "{seen:?}"
    );

    // Changes asked for outweigh an approval; a failed check run outweighs
    // a passing status.
    let mut reviews = example_json(kind, "list-pull-request-reviews.json");
    let mut changes = reviews[0].clone();
    changes["user"]["login"] = "reviewer".into();
    changes["state"] = "CHANGES_REQUESTED".into();
    reviews.as_array_mut().expect("array").push(changes);
    let mut checks = example_json(kind, "list-check-runs.json");
    checks["check_runs"][0]["conclusion"] = "failure".into();
    validate(
        kind,
        "list-pull-request-reviews.schema.json",
        std::slice::from_ref(&reviews),
    );
    validate(
        kind,
        "list-check-runs.schema.json",
        std::slice::from_ref(&checks),
    );
    forge.reply(&reviews_path, Reply::json(&reviews));
    forge.reply(&checks_path, Reply::json(&checks));
    let pull = github
        .pull_request(&forge.repo(), 1347)
        .await
        .expect("pull request")
        .value;
    assert_eq!(pull.review, Some(ReviewState::ChangesRequested));
    assert_eq!(pull.ci, Some(CiState::Failure));
}

#[tokio::test]
async fn gitea_pull_requests_come_with_reviews_ci_and_size() {
    let kind = Kind::Gitea;
    let forge = FakeForge::start(kind).await;
    let sha = "4e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d";
    forge.reply(
        &forge.path("/pulls/7"),
        Reply::ok(example(kind, "get-pull-request.json")),
    );
    forge.reply(
        &forge.path("/pulls/7/reviews?page=1&limit=50"),
        Reply::ok(example(kind, "list-pull-request-reviews.json")),
    );
    let status_path = forge.path(&format!("/commits/{sha}/status"));
    forge.reply(
        &status_path,
        Reply::ok(example(kind, "get-combined-status.json")),
    );
    let gitea = kind.client(WAIT);
    let pull = gitea
        .pull_request(&forge.repo(), 7)
        .await
        .expect("pull request")
        .value;
    assert_eq!(pull.number, 7);
    assert_eq!(pull.title, "Add contributing guide");
    assert_eq!((pull.state, pull.draft), (PullState::Open, false));
    assert_eq!(pull.author, "bob");
    assert_eq!(
        (pull.head.as_str(), pull.base.as_str()),
        ("docs/contributing", "main")
    );
    assert_eq!(pull.mergeable, Some(true));
    // Alice asked for changes, then approved; the bot's entry is a request.
    assert_eq!(pull.review, Some(ReviewState::Approved));
    assert_eq!(pull.ci, Some(CiState::Failure));
    assert_eq!(
        pull.diff_stat,
        Some(DiffStat {
            additions: 14,
            deletions: 2,
            changed_files: 2
        })
    );
    let token = format!("token {TOKEN}");
    assert!(
        forge
            .seen()
            .iter()
            .all(|seen| seen.authorization.as_deref() == Some(token.as_str()))
    );
    // No CI at all is Go's zero value, not a 404.
    forge.reply(
        &status_path,
        Reply::ok(example(kind, "get-combined-status-empty.json")),
    );
    let pull = gitea
        .pull_request(&forge.repo(), 7)
        .await
        .expect("pull request")
        .value;
    assert_eq!(pull.ci, Some(CiState::None));
}

#[tokio::test]
async fn gitlab_merge_requests_come_with_approvals_pipelines_and_size() {
    let kind = Kind::GitLab;
    let forge = FakeForge::start(kind).await;
    let sha = "e82eb4a098e32c796079ca3915e07487fc4db24c";
    forge.reply(
        &forge.path("/merge_requests/133"),
        Reply::ok(example(kind, "get-pull-request.json")),
    );
    forge.reply(
        &forge.path("/merge_requests/133/approvals"),
        Reply::ok(example(kind, "get-approvals.json")),
    );
    forge.reply(
        &forge.path("/merge_requests/133/reviewers"),
        Reply::ok(example(kind, "list-pull-request-reviews.json")),
    );
    forge.reply(
        &forge.path(&format!("/repository/commits/{sha}/statuses?per_page=100")),
        Reply::ok(example(kind, "list-commit-statuses.json")),
    );
    forge.reply(
        &forge.path("/merge_requests/133/raw_diffs"),
        Reply::ok(example(kind, "get-pull-request-diff.diff")),
    );
    let gitlab = kind.client(WAIT);
    let pull = gitlab
        .pull_request(&forge.repo(), 133)
        .await
        .expect("merge request")
        .value;
    assert_eq!(pull.number, 133);
    assert_eq!(pull.title, "Manual job rules");
    assert_eq!((pull.state, pull.draft), (PullState::Open, false));
    assert_eq!(pull.author, "marcel.amirault");
    assert_eq!(
        (pull.head.as_str(), pull.base.as_str()),
        ("manual-job-rules", "main")
    );
    assert_eq!(pull.mergeable, Some(true));
    assert_eq!(pull.review, Some(ReviewState::Approved));
    // Its head pipeline failed; two statuses are pending.
    assert_eq!(pull.ci, Some(CiState::Failure));
    assert_eq!(
        pull.diff_stat,
        Some(DiffStat {
            additions: 6,
            deletions: 0,
            changed_files: 2
        })
    );
    assert_eq!(
        pull.url,
        "https://gitlab.com/marcel.amirault/test-project/-/merge_requests/133"
    );
    assert!(
        forge
            .seen()
            .iter()
            .all(|seen| seen.private_token.as_deref() == Some(TOKEN))
    );

    // Without a pipeline of GitLab's own, the commit's statuses are an
    // outside CI's: a failure allowed to fail and a manual job waiting
    // do not fail it, another failure does.
    let mut merge_request = example_json(kind, "get-pull-request.json");
    merge_request["head_pipeline"] = Value::Null;
    let mut statuses = example_json(kind, "list-commit-statuses.json");
    let outcomes = [("failed", true), ("manual", false), ("success", false)];
    let mut listed = Vec::new();
    for (status, allowed) in outcomes {
        let mut entry = statuses[0].clone();
        entry["status"] = status.into();
        entry["allow_failure"] = allowed.into();
        listed.push(entry);
    }
    statuses = Value::Array(listed);
    validate(
        kind,
        "get-pull-request.schema.json",
        std::slice::from_ref(&merge_request),
    );
    validate(
        kind,
        "list-commit-statuses.schema.json",
        std::slice::from_ref(&statuses),
    );
    forge.reply(
        &forge.path("/merge_requests/133"),
        Reply::json(&merge_request),
    );
    let statuses_path = forge.path(&format!("/repository/commits/{sha}/statuses?per_page=100"));
    forge.reply(&statuses_path, Reply::json(&statuses));
    let ci = || {
        let gitlab = &gitlab;
        let repo = forge.repo();
        async move {
            gitlab
                .pull_request(&repo, 133)
                .await
                .expect("merge request")
                .value
                .ci
        }
    };
    assert_eq!(ci().await, Some(CiState::Success));
    statuses[0]["allow_failure"] = false.into();
    forge.reply(&statuses_path, Reply::json(&statuses));
    assert_eq!(ci().await, Some(CiState::Failure));
}

/// Each forge's lists, diff, issue and comments, as its examples have them.
#[tokio::test]
async fn lists_diffs_issues_and_comments_of_every_forge() {
    for kind in Kind::ALL {
        let forge = FakeForge::start(kind).await;
        let client = kind.client(WAIT);
        let repo = forge.repo();
        let (pulls_path, first_pull, diff_path, number) = match kind {
            Kind::GitHub => (
                "/pulls?state=all&sort=created&direction=desc&per_page=100",
                1347,
                "/pulls/1347",
                1347,
            ),
            Kind::Gitea => (
                "/pulls?state=all&sort=recentupdate&limit=50",
                8,
                "/pulls/7.diff",
                7,
            ),
            Kind::GitLab => (
                "/merge_requests?state=all&order_by=created_at&sort=desc&per_page=100",
                1,
                "/merge_requests/7/raw_diffs",
                7,
            ),
        };
        forge.reply(
            &forge.path(pulls_path),
            Reply::ok(example(kind, "list-pull-requests.json")),
        );
        let pulls = client
            .pull_requests(&repo, ListState::All, None)
            .await
            .expect("list")
            .value;
        assert_eq!(pulls.next, None, "{kind:?}");
        assert_eq!(pulls.items[0].number, first_pull, "{kind:?}");
        assert_eq!(pulls.items[0].review, None, "a list does not say");
        if kind == Kind::Gitea {
            assert!(pulls.items[0].draft, "a WIP: title is a draft");
        }
        if kind == Kind::GitLab {
            assert_eq!(pulls.items[0].state, PullState::Merged);
        }

        // Tagged: a diff cut short is not served for the whole one.
        let diff = example(kind, "get-pull-request-diff.diff");
        forge.reply(
            &forge.path(diff_path),
            Reply {
                etag: Some("\"diff\"".into()),
                ..Reply::ok(diff.clone()).with("content-type", "text/plain")
            },
        );
        let cut = client
            .pull_request_diff(&repo, number, 40)
            .await
            .expect("diff")
            .value;
        assert_eq!(cut.text.as_bytes(), &diff[..40], "{kind:?}");
        assert!(cut.truncated);
        let whole = client
            .pull_request_diff(&repo, number, 1 << 20)
            .await
            .expect("diff")
            .value;
        assert_eq!(whole.text.as_bytes(), diff, "{kind:?}");
        assert!(!whole.truncated);
        if kind == Kind::GitHub {
            let diffs = forge.path(diff_path);
            assert!(
                forge
                    .seen()
                    .iter()
                    .filter(|seen| seen.path_and_query == diffs)
                    .all(|seen| seen.accept.as_deref() == Some("application/vnd.github.diff"))
            );
        }

        forge.reply(
            &forge.path(&format!("/issues/{number}")),
            Reply::json(&kind.issue(number)),
        );
        let issue = client.issue(&repo, number).await.expect("issue").value;
        assert_eq!(
            (issue.number, issue.title.as_str()),
            (number, format!("Issue {number}").as_str()),
            "{kind:?}"
        );
        assert!(!issue.author.is_empty());

        let comments_path = match kind {
            Kind::GitHub => format!("/issues/{number}/comments?per_page=100"),
            Kind::Gitea => format!("/issues/{number}/comments"),
            Kind::GitLab => {
                format!("/issues/{number}/notes?order_by=created_at&sort=asc&per_page=100")
            }
        };
        forge.reply(
            &forge.path(&comments_path),
            Reply::ok(example(kind, "list-issue-comments.json")),
        );
        let comments = client
            .issue_comments(&repo, number, None)
            .await
            .expect("comments")
            .value
            .items;
        let said: Vec<(&str, &str)> = comments
            .iter()
            .map(|comment| (comment.author.as_str(), comment.body.as_str()))
            .collect();
        let expected: &[(&str, &str)] = match kind {
            Kind::GitHub => &[("octocat", "Me too")],
            Kind::Gitea => &[
                ("bob", "I can take this one."),
                ("alice", "Thanks! See #7."),
            ],
            // Only GitLab's record of events: no one's words.
            Kind::GitLab => &[],
        };
        assert_eq!(said, expected, "{kind:?}");
    }
}

/// Pull requests listed among issues are left out, and every label of the
/// filter must match (Gitea matches any, so the clients check).
#[tokio::test]
async fn issue_lists_hold_issues_with_every_label_asked_for() {
    for kind in [Kind::GitHub, Kind::Gitea] {
        let forge = FakeForge::start(kind).await;
        let client = kind.client(WAIT);
        let label = |name: &str| {
            let mut label = example_json(kind, "get-issue.json")["labels"][0].clone();
            label["name"] = name.into();
            label
        };
        let mut as_pull = kind.issue(1);
        as_pull["pull_request"] =
            example_json(Kind::GitHub, "get-issue.json")["pull_request"].clone();
        as_pull["labels"] = serde_json::json!([label("bug"), label("ui")]);
        let mut one_label = kind.issue(2);
        one_label["labels"] = serde_json::json!([label("bug")]);
        let mut both = kind.issue(3);
        both["labels"] = serde_json::json!([label("ui"), label("bug")]);
        let issues = Value::Array(vec![as_pull, one_label, both]);
        validate(
            kind,
            "list-issues.schema.json",
            std::slice::from_ref(&issues),
        );
        let query = match kind {
            Kind::GitHub => "?state=open&sort=created&direction=asc&labels=bug%2Cui&per_page=100",
            _ => "?state=open&type=issues&labels=bug%2Cui&limit=50",
        };
        forge.reply(
            &forge.path(&format!("/issues{query}")),
            Reply::json(&issues),
        );
        let labels = vec!["bug".to_owned(), "ui".to_owned()];
        let filter = IssueFilter {
            state: ListState::Open,
            labels,
        };
        let listed = client
            .issues(&forge.repo(), &filter, None)
            .await
            .expect("issues")
            .value;
        let numbers: Vec<u64> = listed.items.iter().map(|issue| issue.number).collect();
        assert_eq!(numbers, [3], "{kind:?}");
    }
}

#[tokio::test]
async fn pages_are_followed_three_deep_and_only_on_the_forge() {
    for kind in Kind::ALL {
        let forge = FakeForge::start(kind).await;
        let client = kind.client(WAIT);
        let repo = forge.repo();
        let page_path = |page: u32| format!("{}/issues-page-{page}", forge.path(""));
        let mut bodies = Vec::new();
        for page in 1..=3u32 {
            let count = if page == 3 { 50 } else { 100 };
            let issues: Vec<Value> = (1..=count)
                .map(|n| kind.issue(u64::from(page - 1) * 100 + n))
                .collect();
            let body = Value::Array(issues);
            let url = |page: u32| format!("{}{}", forge.base, &page_path(page)[1..]);
            let mut links = vec![format!("<{}>; rel=\"first\"", url(1))];
            if page < 3 {
                links.push(format!("<{}>; rel=\"next\"", url(page + 1)));
                links.push(format!("<{}>; rel=\"last\"", url(3)));
            }
            let path = match page {
                1 => forge.path(&format!("/issues{}", kind.all_issues_query())),
                page => page_path(page),
            };
            // Gitea joins the links without a space.
            let separator = if kind == Kind::Gitea { "," } else { ", " };
            forge.reply(
                &path,
                Reply::json(&body).with("link", links.join(separator)),
            );
            bodies.push(body);
        }
        validate(kind, "list-issues.schema.json", &bodies);
        let filter = IssueFilter {
            state: ListState::All,
            labels: Vec::new(),
        };
        let mut numbers = Vec::new();
        let mut next = None;
        loop {
            let page = client
                .issues(&repo, &filter, next.as_deref())
                .await
                .expect("page")
                .value;
            numbers.extend(page.items.iter().map(|issue| issue.number));
            match page.next {
                Some(url) => next = Some(url),
                None => break,
            }
        }
        assert_eq!(numbers, (1..=250).collect::<Vec<u64>>(), "{kind:?}");

        // A page URL from anywhere else never gets the credential.
        let elsewhere = format!("http://127.0.0.1:9{}/issues?page=2", forge.path(""));
        let refused = client
            .issues(&repo, &filter, Some(&elsewhere))
            .await
            .expect_err("another host");
        assert_eq!(refused.reason, "INVALID_PAGE_TOKEN");
    }
}

#[tokio::test]
async fn answers_unchanged_since_last_time_come_from_the_cache() {
    for kind in Kind::ALL {
        let forge = FakeForge::start(kind).await;
        let client = kind.client(WAIT);
        let repo = forge.repo();
        let path = forge.path("/issues/7");
        let tagged = |number: u64| Reply {
            etag: Some("W/\"v1\"".into()),
            ..Reply::json(&kind.issue(number))
        };
        forge.reply(&path, tagged(7));
        let first = client.issue(&repo, 7).await.expect("first");
        // Asked without the validator, the forge would now answer
        // differently: the 304 is what serves the second answer.
        forge.reply(&path, tagged(8));
        let second = client.issue(&repo, 7).await.expect("second");
        assert_eq!(second.value, first.value, "{kind:?}");
        assert!(!second.stale);
        assert!(second.fetched_at >= first.fetched_at);
        let validators: Vec<Option<String>> = forge
            .seen()
            .into_iter()
            .map(|seen| seen.if_none_match)
            .collect();
        assert_eq!(validators, [None, Some("W/\"v1\"".into())], "{kind:?}");
    }
}

#[tokio::test]
async fn failures_are_named_and_never_carry_the_token() {
    for kind in Kind::ALL {
        let forge = FakeForge::start(kind).await;
        let client = kind.client(WAIT);
        let repo = forge.repo();
        let issue = |number: u64| forge.path(&format!("/issues/{number}"));
        let failure = |number: u64| {
            let client = &client;
            let repo = &repo;
            async move {
                let error = client.issue(repo, number).await.expect_err("fails");
                (error.reason, error.message)
            }
        };

        let limited = match kind {
            Kind::GitHub => Reply::status(403, example(kind, "error-rate-limited.json"))
                .with("x-ratelimit-remaining", "0")
                .with("x-ratelimit-reset", "1658208999"),
            Kind::Gitea => Reply::status(429, Vec::new()),
            Kind::GitLab => Reply::status(429, b"Retry later".to_vec())
                .with("ratelimit-remaining", "0")
                .with("ratelimit-reset", "1658208999")
                .with("retry-after", "60"),
        };
        forge.reply(&issue(1), limited);
        let (reason, message) = failure(1).await;
        assert_eq!(reason, "FORGE_RATE_LIMITED", "{kind:?}");
        assert!(message.contains("until"), "{message}");
        if kind == Kind::GitHub {
            assert!(message.contains("2022-07-19 05:36:39 UTC"), "{message}");
        }
        let unauthorized = match kind {
            Kind::GitLab => example(kind, "error-unauthorized.json"),
            _ => br#"{"message":"Bad credentials"}"#.to_vec(),
        };
        forge.reply(&issue(2), Reply::status(401, unauthorized));
        assert_eq!(failure(2).await.0, "FORGE_UNAUTHORIZED", "{kind:?}");
        forge.reply(
            &issue(3),
            Reply::status(403, br#"{"message":"Forbidden"}"#.to_vec()),
        );
        assert_eq!(failure(3).await.0, "FORGE_UNAUTHORIZED", "{kind:?}");
        assert_eq!(failure(4).await.0, "FORGE_NOT_FOUND", "unscripted: 404");
        forge.reply(
            &issue(5),
            Reply::ok(b"{\"number\": 5, \"title\": ".to_vec()),
        );
        assert_eq!(failure(5).await.0, "FORGE_BAD_RESPONSE", "{kind:?}");
        let mut huge = kind.issue(6);
        huge["title"] = "x".repeat(5 * 1024 * 1024).into();
        forge.reply(&issue(6), Reply::json(&huge));
        let (reason, message) = failure(6).await;
        assert_eq!(reason, "FORGE_BAD_RESPONSE", "{kind:?}");
        assert!(message.contains("more than"), "{message}");
        forge.reply(&issue(7), Reply::status(502, b"Bad gateway".to_vec()));
        assert_eq!(failure(7).await.0, "FORGE_UNAVAILABLE", "{kind:?}");

        // A redirect is not followed: the credential would go with it.
        let elsewhere = FakeForge::start(kind).await;
        elsewhere.reply(&issue(8), Reply::json(&kind.issue(8)));
        forge.reply(
            &issue(8),
            Reply::status(301, Vec::new())
                .with("location", format!("{}{}", elsewhere.base, &issue(8)[1..])),
        );
        assert_eq!(failure(8).await.0, "FORGE_REDIRECTED", "{kind:?}");
        assert!(
            elsewhere.seen().is_empty(),
            "the other host was never asked"
        );

        for number in 1..=8 {
            assert!(!failure(number).await.1.contains(TOKEN));
        }
    }
}

#[tokio::test]
async fn a_silent_forge_is_served_from_its_last_answer_marked_stale() {
    for kind in Kind::ALL {
        let forge = FakeForge::start(kind).await;
        let client = kind.client(Duration::from_secs(2));
        let repo = forge.repo();
        let path = forge.path("/issues/7");
        forge.reply(&path, Reply::json(&kind.issue(7)));
        let fresh = client.issue(&repo, 7).await.expect("fresh");
        assert!(!fresh.stale);
        let silent = |number: u64| Reply {
            delay: Duration::from_secs(60),
            ..Reply::json(&kind.issue(number))
        };
        forge.reply(&path, silent(7));
        let stale = client.issue(&repo, 7).await.expect("served stale");
        assert!(stale.stale, "{kind:?}");
        assert_eq!(stale.value, fresh.value);
        assert_eq!(
            stale.fetched_at, fresh.fetched_at,
            "its age is the answer's"
        );
        // Nothing kept: the forge's silence is the answer.
        forge.reply(&forge.path("/issues/8"), silent(8));
        let error = client.issue(&repo, 8).await.expect_err("nothing kept");
        assert_eq!(error.reason, "FORGE_UNAVAILABLE");
        assert!(error.message.contains("in time"), "{}", error.message);
    }
}
