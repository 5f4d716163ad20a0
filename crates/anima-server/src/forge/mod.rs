//! Read-only clients of code forges: pull requests with their reviews and
//! CI, diffs, issues with their comments. Anima owns work items and never
//! writes to a forge; what it reads is fetched when someone looks, through
//! [`ForgeHttp`], which keeps each answer for conditional requests and for
//! serving, marked stale, while the forge is down.
//!
//! One [`Forge`] trait, one client per forge ([`GitHub`], [`Gitea`],
//! [`GitLab`]), each mapping its forge's shapes onto the same types. Not
//! yet wired to a service: repositories, patches and issue import (issue
//! 25) build on it.

mod gitea;
mod github;
mod gitlab;
pub mod http;

use std::sync::Arc;

use anima_core::{DomainError, error::reason};
use async_trait::async_trait;
pub use gitea::Gitea;
pub use github::GitHub;
pub use gitlab::GitLab;
pub use http::{Credential, ForgeHttp};
use reqwest::{
    Url,
    header::{AUTHORIZATION, HeaderName},
};

/// A repository as its forge's API addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeRepo {
    /// The API's root, without a trailing slash: `https://api.github.com`,
    /// `https://HOST/api/v3` (GitHub Enterprise).
    pub api_base: Url,
    /// The owner (user, organisation or group path).
    pub owner: String,
    /// The repository's name.
    pub name: String,
    /// The token to read it with (public repositories need none).
    pub token: Option<ForgeToken>,
}

/// A forge's access token, kept out of debug output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ForgeToken(pub String);

impl std::fmt::Debug for ForgeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForgeToken(…)")
    }
}

impl ForgeRepo {
    /// `segments` under `api_base`, each percent-encoded as one segment:
    /// an owner, name or commit id cannot climb out of the API (`..`,
    /// `%2e%2e`) or add a query (`?`, `#`).
    fn url(&self, segments: &[&str]) -> Result<Url, DomainError> {
        if segments
            .iter()
            .any(|segment| matches!(*segment, "" | "." | ".."))
        {
            return Err(DomainError::invalid_argument(
                reason::INVALID_FIELD,
                "a repository's owner and name cannot be empty, '.' or '..'",
            ));
        }
        let mut url = self.api_base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                DomainError::invalid_argument(
                    reason::INVALID_FIELD,
                    "the repository's API URL cannot have a path",
                )
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `tail` under the repository, as GitHub and Gitea address it.
    fn repo_url(&self, tail: &[&str]) -> Result<Url, DomainError> {
        let mut segments = vec!["repos", self.owner.as_str(), self.name.as_str()];
        segments.extend(tail);
        self.url(&segments)
    }

    /// A next-page URL handed back by a caller, once it is on the forge's
    /// own API: the credential goes with it, so a page URL that points
    /// anywhere else is refused.
    fn page_url(&self, page: &str) -> Result<Url, DomainError> {
        let refused = || {
            DomainError::invalid_argument(
                reason::INVALID_PAGE_TOKEN,
                "the page is not one of this repository's forge",
            )
        };
        let url = Url::parse(page).map_err(|_| refused())?;
        let api = self.api_base.path().trim_end_matches('/');
        let under_api = url
            .path()
            .strip_prefix(api)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        match url.origin() == self.api_base.origin() && under_api {
            true => Ok(url),
            false => Err(refused()),
        }
    }
}

/// Where a pull request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullState {
    /// Open (a draft too: see [`PullRequest::draft`]).
    Open,
    /// Closed without being merged.
    Closed,
    /// Merged.
    Merged,
}

/// What the reviews of a pull request add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewState {
    /// Nobody has reviewed it yet.
    None,
    /// Reviewed, with neither an approval nor a request for changes
    /// standing (comments only, or reviews asked for).
    Pending,
    /// A reviewer's latest review approves it, and none asks for changes.
    Approved,
    /// A reviewer's latest review asks for changes.
    ChangesRequested,
}

/// What the CI of a pull request's head commit adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiState {
    /// No CI reported on the commit.
    None,
    /// Something still runs.
    Pending,
    /// Everything passed.
    Success,
    /// Something failed (or errored, or timed out).
    Failure,
}

/// A pull request (GitLab: merge request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number in the repository (GitLab: `iid`).
    pub number: u64,
    /// Title.
    pub title: String,
    /// Open, closed or merged.
    pub state: PullState,
    /// Marked as a draft.
    pub draft: bool,
    /// Its author's login.
    pub author: String,
    /// The branch it brings.
    pub head: String,
    /// The branch it goes into.
    pub base: String,
    /// Whether it merges cleanly; `None` while the forge works it out, or
    /// where it does not say (GitHub's lists). Gitea says `false` while it
    /// works it out.
    pub mergeable: Option<bool>,
    /// Its reviews (`None` in a list, which does not say).
    pub review: Option<ReviewState>,
    /// Its head commit's CI (`None` in a list, which does not say).
    pub ci: Option<CiState>,
    /// Lines added, lines removed and files changed (`None` in a list).
    pub diff_stat: Option<DiffStat>,
    /// Its page on the forge.
    pub url: String,
    /// Last change, µs since the epoch.
    pub updated_at: i64,
}

/// The size of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffStat {
    /// Lines added.
    pub additions: u64,
    /// Lines removed.
    pub deletions: u64,
    /// Files changed.
    pub changed_files: u64,
}

/// An issue (not a pull request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Its number in the repository (GitLab: `iid`).
    pub number: u64,
    /// Title.
    pub title: String,
    /// Its description (empty when it has none).
    pub body: String,
    /// Open (else closed).
    pub open: bool,
    /// Its labels' names.
    pub labels: Vec<String>,
    /// Its author's login.
    pub author: String,
    /// Its page on the forge.
    pub url: String,
    /// When it was opened, µs since the epoch.
    pub created_at: i64,
    /// How many comments it has.
    pub comments: u64,
}

/// A comment on an issue, in the order the forge lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueComment {
    /// The forge's id of it.
    pub id: u64,
    /// Its author's login.
    pub author: String,
    /// Its text.
    pub body: String,
    /// When it was written, µs since the epoch.
    pub created_at: i64,
}

/// A pull request's diff, cut at the size asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// A unified diff.
    pub text: String,
    /// Cut at the size asked for.
    pub truncated: bool,
}

/// One page of a list, and where the next one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgePage<T> {
    /// Its items, in the forge's order.
    pub items: Vec<T>,
    /// The next page's URL, to hand back for it; `None` on the last.
    pub next: Option<String>,
}

/// What a forge said, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched<T> {
    /// The answer.
    pub value: T,
    /// When the forge said it (the oldest of the answers it is made of),
    /// µs since the epoch.
    pub fetched_at: i64,
    /// Served from the cache because the forge did not answer.
    pub stale: bool,
}

/// Which pull requests or issues a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListState {
    /// Open ones.
    #[default]
    Open,
    /// Closed (and merged) ones.
    Closed,
    /// All.
    All,
}

impl ListState {
    /// The `state` query parameter of GitHub and Gitea.
    fn github_name(self) -> &'static str {
        match self {
            ListState::Open => "open",
            ListState::Closed => "closed",
            ListState::All => "all",
        }
    }
}

/// Which issues to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssueFilter {
    /// By state.
    pub state: ListState,
    /// Only issues with all of these labels.
    pub labels: Vec<String>,
}

/// A forge's API, read-only.
#[async_trait]
pub trait Forge: Send + Sync {
    /// A pull request with its reviews, CI and size.
    async fn pull_request(
        &self,
        repo: &ForgeRepo,
        number: u64,
    ) -> Result<Fetched<PullRequest>, DomainError>;
    /// A page of pull requests (`page`: a previous page's `next`), the
    /// most recent first (created on GitHub and GitLab, updated on Gitea).
    async fn pull_requests(
        &self,
        repo: &ForgeRepo,
        state: ListState,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<PullRequest>>, DomainError>;
    /// A pull request's diff, cut at `max_bytes`.
    async fn pull_request_diff(
        &self,
        repo: &ForgeRepo,
        number: u64,
        max_bytes: usize,
    ) -> Result<Fetched<Diff>, DomainError>;
    /// An issue.
    async fn issue(&self, repo: &ForgeRepo, number: u64) -> Result<Fetched<Issue>, DomainError>;
    /// A page of issues (never pull requests), in the forge's order
    /// (oldest first where the forge can sort so).
    async fn issues(
        &self,
        repo: &ForgeRepo,
        filter: &IssueFilter,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<Issue>>, DomainError>;
    /// A page of an issue's comments, oldest first.
    async fn issue_comments(
        &self,
        repo: &ForgeRepo,
        number: u64,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<IssueComment>>, DomainError>;
}

impl Fetched<()> {
    /// The age and staleness of several answers taken together.
    fn new() -> Self {
        Fetched {
            value: (),
            fetched_at: i64::MAX,
            stale: false,
        }
    }

    fn include(&mut self, answer: &http::Answer) {
        self.fetched_at = self.fetched_at.min(answer.fetched_at);
        self.stale |= answer.stale;
    }

    fn with<T>(self, value: T) -> Fetched<T> {
        Fetched {
            value,
            fetched_at: self.fetched_at,
            stale: self.stale,
        }
    }
}

fn fetched<T>(answer: &http::Answer, value: T) -> Fetched<T> {
    Fetched {
        value,
        fetched_at: answer.fetched_at,
        stale: answer.stale,
    }
}

impl IssueFilter {
    /// Whether `issue` has every label asked for (as the forges compare
    /// them, whatever their case): checked on what each forge answers,
    /// since Gitea's filter takes issues with any of them.
    fn admits(&self, issue: &Issue) -> bool {
        self.labels.iter().all(|wanted| {
            issue
                .labels
                .iter()
                .any(|label| label.to_lowercase() == wanted.to_lowercase())
        })
    }
}

/// The forges this server reads (`ServerConfig::forge_hosts`): `HOST` or
/// `HOST:PORT` over https, `http://HOST[:PORT]` where an administrator
/// allows plain http. A project owner names the forge of a repository;
/// only these are ever asked, so none can point the server at the cloud's
/// metadata address, the host's own ports or a token's wrong forge.
#[derive(Debug, Clone, Default)]
pub struct ForgeHosts {
    /// Each as `scheme://host[:port]`, without the scheme's own port.
    origins: Vec<String>,
}

impl ForgeHosts {
    /// The configured entries, refused when one is not a lower-case host
    /// with an optional port and `http://`.
    pub fn new(entries: &[String]) -> anyhow::Result<Self> {
        let origins = entries
            .iter()
            .map(|entry| {
                let (scheme, authority) = match entry.trim().strip_prefix("http://") {
                    Some(authority) => ("http", authority),
                    None => ("https", entry.trim()),
                };
                let (host, port) = authority
                    .rsplit_once(':')
                    .map_or((authority, None), |(host, port)| (host, Some(port)));
                let valid = !host.is_empty()
                    && !host.starts_with(['.', '-'])
                    && host.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)
                    })
                    && port.is_none_or(|port| port.parse::<u16>().is_ok());
                anyhow::ensure!(
                    valid,
                    "forge_hosts: {entry:?} is not a lower-case HOST, HOST:PORT or http://HOST"
                );
                Ok(origin(scheme, host, port))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { origins })
    }

    /// Whether the forge at `web_base` (`scheme://host[:port][/path]`) is
    /// one of them.
    pub fn admits(&self, web_base: &str) -> bool {
        let Some((scheme, rest)) = web_base.split_once("://") else {
            return false;
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = authority
            .rsplit_once(':')
            .map_or((authority, None), |(host, port)| (host, Some(port)));
        let wanted = origin(scheme, &host.to_ascii_lowercase(), port);
        self.origins.contains(&wanted)
    }
}

/// `scheme://host[:port]`, the scheme's own port left out.
fn origin(scheme: &str, host: &str, port: Option<&str>) -> String {
    match (scheme, port) {
        ("https", Some("443")) | ("http", Some("80")) | (_, None) => format!("{scheme}://{host}"),
        (_, Some(port)) => format!("{scheme}://{host}:{port}"),
    }
}

/// How a forge wants a token sent.
#[derive(Debug, Clone, Copy)]
enum TokenHeader {
    /// `Authorization: Bearer TOKEN` (GitHub).
    Bearer,
    /// `Authorization: token TOKEN` (Gitea).
    Gitea,
    /// `PRIVATE-TOKEN: TOKEN` (GitLab).
    PrivateToken,
}

/// What every forge's client shares: the HTTP client, and how its forge
/// wants the token and names JSON.
struct Client {
    http: Arc<ForgeHttp>,
    token: TokenHeader,
    json: &'static str,
    /// The query parameter of a page's size, and the size asked for.
    page_size: (&'static str, usize),
}

impl Client {
    /// The URL of a list: the page handed back (once it is the forge's),
    /// else `first`'s with `query` and this forge's page size.
    fn list_url(
        &self,
        repo: &ForgeRepo,
        page: Option<&str>,
        first: impl FnOnce() -> Result<Url, DomainError>,
        query: &[(&str, &str)],
    ) -> Result<Url, DomainError> {
        if let Some(page) = page {
            return repo.page_url(page);
        }
        let mut url = first()?;
        url.query_pairs_mut()
            .extend_pairs(query)
            .append_pair(self.page_size.0, &self.page_size.1.to_string());
        Ok(url)
    }

    /// `GET url` with `repo`'s token.
    async fn get(
        &self,
        repo: &ForgeRepo,
        url: Url,
        accept: &'static str,
        max_bytes: usize,
        oversize: http::Oversize,
    ) -> Result<http::Answer, DomainError> {
        let credential = repo
            .token
            .as_ref()
            .map(|token| match self.token {
                TokenHeader::Bearer => {
                    Credential::header(AUTHORIZATION, &format!("Bearer {}", token.0))
                }
                TokenHeader::Gitea => {
                    Credential::header(AUTHORIZATION, &format!("token {}", token.0))
                }
                TokenHeader::PrivateToken => {
                    Credential::header(HeaderName::from_static("private-token"), &token.0)
                }
            })
            .transpose()?;
        self.http
            .get(url, accept, credential.as_ref(), max_bytes, oversize)
            .await
    }

    /// A JSON answer, whole.
    async fn json(&self, repo: &ForgeRepo, url: Url) -> Result<http::Answer, DomainError> {
        self.get(
            repo,
            url,
            self.json,
            http::MAX_ANSWER_BYTES,
            http::Oversize::Refuse,
        )
        .await
    }

    /// A diff as `accept`, cut at `max_bytes`.
    async fn diff(
        &self,
        repo: &ForgeRepo,
        url: Url,
        accept: &'static str,
        max_bytes: usize,
    ) -> Result<Fetched<Diff>, DomainError> {
        let answer = self
            .get(repo, url, accept, max_bytes, http::Oversize::Truncate)
            .await?;
        let diff = Diff {
            text: String::from_utf8_lossy(&answer.body).into_owned(),
            truncated: answer.truncated,
        };
        Ok(fetched(&answer, diff))
    }
}

/// `items` as the page `answer` is, with its next page.
fn page_of<T>(answer: &http::Answer, items: Vec<T>) -> Fetched<ForgePage<T>> {
    fetched(
        answer,
        ForgePage {
            items,
            next: answer.next.as_ref().map(Url::to_string),
        },
    )
}

/// A forge's timestamp (RFC 3339, with any offset) as µs since the epoch;
/// Gitea's zero time and anything unreadable as 0.
fn micros(timestamp: &str) -> i64 {
    timestamp
        .parse::<jiff::Timestamp>()
        .map(|at| at.as_microsecond())
        .unwrap_or(0)
        .max(0)
}

/// The body of `answer` as `T`.
fn parse<T: serde::de::DeserializeOwned>(
    repo: &ForgeRepo,
    answer: &http::Answer,
) -> Result<T, DomainError> {
    serde_json::from_slice(&answer.body).map_err(|error| {
        http::bad_response(
            repo.api_base.host_str().unwrap_or("the forge"),
            &format!("answered with JSON Anima cannot read ({error})"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> ForgeRepo {
        ForgeRepo {
            api_base: Url::parse("https://git.example/api/v1").expect("url"),
            owner: "team".into(),
            name: "shop".into(),
            token: None,
        }
    }

    #[test]
    fn only_pages_of_the_forges_own_api_are_followed() {
        let repo = repo();
        assert!(
            repo.page_url("https://git.example/api/v1/repos/team/shop/issues?page=2")
                .is_ok()
        );
        for elsewhere in [
            "https://evil.example/api/v1/repos/team/shop/issues?page=2",
            "http://git.example/api/v1/repos/team/shop/issues?page=2",
            "https://git.example:8443/api/v1/repos/team/shop/issues",
            "https://git.example/other/api/v1",
            "https://git.example/api/v10/repos",
            "https://git.example@evil.example/api/v1/",
            "not a url",
        ] {
            let refused = repo.page_url(elsewhere).expect_err(elsewhere);
            assert_eq!(refused.reason, reason::INVALID_PAGE_TOKEN, "{elsewhere}");
        }
    }

    #[test]
    fn only_the_listed_forges_are_admitted() {
        let hosts = ForgeHosts::new(&[
            "github.com".into(),
            "git.example:3000".into(),
            "http://gitea.lan".into(),
        ])
        .expect("hosts");
        for admitted in [
            "https://github.com",
            "https://GitHub.com",
            "https://github.com:443",
            "https://git.example:3000/gitea",
            "http://gitea.lan",
            "http://gitea.lan:80",
        ] {
            assert!(hosts.admits(admitted), "{admitted}");
        }
        for refused in [
            "http://github.com",
            "https://github.com:8443",
            "https://api.github.com",
            "http://git.example:3000",
            "https://gitea.lan",
            "https://169.254.169.254",
            "github.com",
        ] {
            assert!(!hosts.admits(refused), "{refused}");
        }
        for bad in [
            "GitHub.com",
            "github.com:x",
            "https://github.com",
            "",
            "-x.example",
        ] {
            assert!(ForgeHosts::new(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn owners_and_names_stay_inside_the_api() {
        let repo = |owner: &str, name: &str| ForgeRepo {
            owner: owner.into(),
            name: name.into(),
            ..repo()
        };
        let url = repo("a/../../x", "r?x#y")
            .repo_url(&["issues", "1"])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "https://git.example/api/v1/repos/a%2F..%2F..%2Fx/r%3Fx%23y/issues/1"
        );
        for (owner, name) in [("..", "r"), ("team", "."), ("", "r")] {
            let refused = repo(owner, name).repo_url(&[]).expect_err(owner);
            assert_eq!(refused.reason, reason::INVALID_FIELD);
        }
    }

    #[test]
    fn timestamps_of_every_forge_are_read() {
        assert_eq!(micros("2011-01-26T19:01:12Z"), 1_296_068_472_000_000);
        assert_eq!(micros("2011-01-26T20:01:12+01:00"), 1_296_068_472_000_000);
        assert_eq!(micros("2011-01-26T19:01:12.000Z"), 1_296_068_472_000_000);
        assert_eq!(micros("0001-01-01T00:00:00Z"), 0);
        assert_eq!(micros(""), 0);
    }
}
