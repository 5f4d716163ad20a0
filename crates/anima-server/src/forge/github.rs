//! GitHub's REST API v3 (github.com, and GitHub Enterprise at
//! `https://HOST/api/v3`).

use std::{collections::HashMap, sync::Arc};

use anima_core::{DomainError, error::reason};
use async_trait::async_trait;
use serde::Deserialize;

use super::{
    CiState, Client, Diff, DiffStat, Fetched, Forge, ForgePage, ForgeRepo, Issue, IssueComment,
    IssueFilter, ListState, PullRequest, PullState, ReviewState, TokenHeader, fetched,
    http::{Answer, ForgeHttp},
    micros, page_of, parse,
};

const JSON: &str = "application/vnd.github+json";
const DIFF: &str = "application/vnd.github.diff";

/// Pages of reviews, and of check runs, read for one pull request (100
/// each): a thousand of either.
const MAX_REVIEW_PAGES: usize = 10;
const MAX_CHECK_PAGES: usize = 10;

/// A GitHub client.
pub struct GitHub {
    client: Client,
}

impl GitHub {
    /// A client over `http`.
    pub fn new(http: Arc<ForgeHttp>) -> Self {
        Self {
            client: Client {
                http,
                token: TokenHeader::Bearer,
                json: JSON,
                page_size: ("per_page", 100),
            },
        }
    }

    /// What the reviews add up to: each reviewer's latest approval, request
    /// for changes or dismissal counts (a later comment changes nothing).
    async fn review_state(
        &self,
        repo: &ForgeRepo,
        number: u64,
        requested: bool,
        oldest: &mut Fetched<()>,
    ) -> Result<ReviewState, DomainError> {
        let number = number.to_string();
        let mut url = self.client.list_url(
            repo,
            None,
            || repo.repo_url(&["pulls", &number, "reviews"]),
            &[],
        )?;
        let mut reviews = Vec::new();
        for _ in 0..MAX_REVIEW_PAGES {
            let answer = self.client.json(repo, url).await?;
            oldest.include(&answer);
            reviews.extend(parse::<Vec<GhReview>>(repo, &answer)?);
            match answer.next {
                Some(next) => url = repo.page_url(next.as_str())?,
                None => break,
            }
        }
        Ok(review_state(
            reviews,
            requested,
            "CHANGES_REQUESTED",
            &["PENDING"],
        ))
    }

    /// The commit's CI: its commit statuses and its check runs (GitHub
    /// Actions reports only the latter), the worst of them.
    async fn ci_state(
        &self,
        repo: &ForgeRepo,
        sha: &str,
        oldest: &mut Fetched<()>,
    ) -> Result<CiState, DomainError> {
        let statuses = self
            .client
            .json(repo, repo.repo_url(&["commits", sha, "status"])?)
            .await?;
        oldest.include(&statuses);
        let statuses: GhCombinedStatus = parse(repo, &statuses)?;
        let mut url = self.client.list_url(
            repo,
            None,
            || repo.repo_url(&["commits", sha, "check-runs"]),
            &[],
        )?;
        let mut runs = Vec::new();
        for _ in 0..MAX_CHECK_PAGES {
            let answer = self.client.json(repo, url).await?;
            oldest.include(&answer);
            runs.extend(parse::<GhCheckRuns>(repo, &answer)?.check_runs);
            match answer.next {
                Some(next) => url = repo.page_url(next.as_str())?,
                None => break,
            }
        }
        let mut states = Vec::new();
        if statuses.total_count > 0 {
            states.push(match statuses.state.as_str() {
                "success" => CiState::Success,
                "pending" => CiState::Pending,
                _ => CiState::Failure,
            });
        }
        states.extend(runs.iter().map(|run| {
            match (run.status.as_str(), run.conclusion.as_deref()) {
                ("completed", Some("success" | "neutral" | "skipped")) => CiState::Success,
                ("completed", _) => CiState::Failure,
                _ => CiState::Pending,
            }
        }));
        Ok(worst(&states))
    }
}

/// What `reviews` (in the order they were made) add up to: each
/// reviewer's latest approval or request for changes (`changes`, as the
/// forge names it) counts, unless dismissed; reviews in `not_reviews`
/// (drafts, requests) are not reviews.
pub(super) fn review_state(
    reviews: Vec<GhReview>,
    requested: bool,
    changes: &str,
    not_reviews: &[&str],
) -> ReviewState {
    let mut latest: HashMap<String, String> = HashMap::new();
    let mut any = false;
    for review in reviews {
        if not_reviews.contains(&review.state.as_str()) || review.state.is_empty() {
            continue;
        }
        any = true;
        let reviewer = review.user.map(|user| user.login).unwrap_or_default();
        if review.dismissed || review.state == "DISMISSED" {
            latest.remove(&reviewer);
        } else if review.state == "APPROVED" || review.state == changes {
            latest.insert(reviewer, review.state);
        }
    }
    if latest.values().any(|state| state == changes) {
        ReviewState::ChangesRequested
    } else if latest.values().any(|state| state == "APPROVED") {
        ReviewState::Approved
    } else if any || requested {
        ReviewState::Pending
    } else {
        ReviewState::None
    }
}

/// An issue as GitHub and Gitea answer it, refused when it is a pull
/// request's issue view.
pub(super) fn issue_of(
    repo: &ForgeRepo,
    answer: &Answer,
    number: u64,
) -> Result<Fetched<Issue>, DomainError> {
    let issue: GhIssue = parse(repo, answer)?;
    if issue.pull_request.is_some() {
        return Err(DomainError::not_found(
            reason::FORGE_NOT_FOUND,
            format!("#{number} is a pull request, not an issue"),
        ));
    }
    Ok(fetched(answer, issue.into_issue()))
}

/// A page of issues as GitHub and Gitea answer it: pull requests, listed
/// among issues, left out, and only issues `filter` admits kept.
pub(super) fn issue_page(
    repo: &ForgeRepo,
    answer: &Answer,
    filter: &IssueFilter,
) -> Result<Fetched<ForgePage<Issue>>, DomainError> {
    let issues: Vec<GhIssue> = parse(repo, answer)?;
    Ok(page_of(
        answer,
        issues
            .into_iter()
            .filter(|issue| issue.pull_request.is_none())
            .map(GhIssue::into_issue)
            .filter(|issue| filter.admits(issue))
            .collect(),
    ))
}

/// A page of comments as GitHub and Gitea answer it.
pub(super) fn comment_page(
    repo: &ForgeRepo,
    answer: &Answer,
) -> Result<Fetched<ForgePage<IssueComment>>, DomainError> {
    let comments: Vec<GhComment> = parse(repo, answer)?;
    Ok(page_of(
        answer,
        comments.into_iter().map(GhComment::into_comment).collect(),
    ))
}

/// The worst of `states`: a failure, else something pending, else success;
/// `None` when there are none.
pub(super) fn worst(states: &[CiState]) -> CiState {
    [CiState::Failure, CiState::Pending, CiState::Success]
        .into_iter()
        .find(|state| states.contains(state))
        .unwrap_or(CiState::None)
}

#[async_trait]
impl Forge for GitHub {
    async fn pull_request(
        &self,
        repo: &ForgeRepo,
        number: u64,
    ) -> Result<Fetched<PullRequest>, DomainError> {
        let url = repo.repo_url(&["pulls", &number.to_string()])?;
        let answer = self.client.json(repo, url).await?;
        let mut oldest = Fetched::new();
        oldest.include(&answer);
        let pull: GhPull = parse(repo, &answer)?;
        let requested = pull.reviews_requested();
        let review = self
            .review_state(repo, number, requested, &mut oldest)
            .await?;
        let ci = self.ci_state(repo, pull.head_sha(), &mut oldest).await?;
        let mut pull_request = pull.into_pull_request();
        pull_request.review = Some(review);
        pull_request.ci = Some(ci);
        Ok(oldest.with(pull_request))
    }

    async fn pull_requests(
        &self,
        repo: &ForgeRepo,
        state: ListState,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<PullRequest>>, DomainError> {
        let url = self.client.list_url(
            repo,
            page,
            || repo.repo_url(&["pulls"]),
            &[
                ("state", state.github_name()),
                ("sort", "created"),
                ("direction", "desc"),
            ],
        )?;
        let answer = self.client.json(repo, url).await?;
        let pulls: Vec<GhPull> = parse(repo, &answer)?;
        Ok(page_of(
            &answer,
            pulls.into_iter().map(GhPull::into_pull_request).collect(),
        ))
    }

    async fn pull_request_diff(
        &self,
        repo: &ForgeRepo,
        number: u64,
        max_bytes: usize,
    ) -> Result<Fetched<Diff>, DomainError> {
        let url = repo.repo_url(&["pulls", &number.to_string()])?;
        self.client.diff(repo, url, DIFF, max_bytes).await
    }

    async fn issue(&self, repo: &ForgeRepo, number: u64) -> Result<Fetched<Issue>, DomainError> {
        let url = repo.repo_url(&["issues", &number.to_string()])?;
        let answer = self.client.json(repo, url).await?;
        issue_of(repo, &answer, number)
    }

    async fn issues(
        &self,
        repo: &ForgeRepo,
        filter: &IssueFilter,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<Issue>>, DomainError> {
        let labels = filter.labels.join(",");
        let mut query = vec![
            ("state", filter.state.github_name()),
            ("sort", "created"),
            ("direction", "asc"),
        ];
        if !labels.is_empty() {
            query.push(("labels", labels.as_str()));
        }
        let url = self
            .client
            .list_url(repo, page, || repo.repo_url(&["issues"]), &query)?;
        let answer = self.client.json(repo, url).await?;
        issue_page(repo, &answer, filter)
    }

    async fn issue_comments(
        &self,
        repo: &ForgeRepo,
        number: u64,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<IssueComment>>, DomainError> {
        let url = self.client.list_url(
            repo,
            page,
            || repo.repo_url(&["issues", &number.to_string(), "comments"]),
            &[],
        )?;
        let answer = self.client.json(repo, url).await?;
        comment_page(repo, &answer)
    }
}

// The shapes below are GitHub's, which Gitea's API copies field for field
// where Anima reads it (`gitea` reads with them too).

#[derive(Deserialize)]
pub(super) struct GhUser {
    login: String,
}

/// A deleted account shows as `null`: GitHub's "ghost".
pub(super) fn login(user: Option<GhUser>) -> String {
    user.map_or_else(|| "ghost".into(), |user| user.login)
}

#[derive(Deserialize)]
struct GhBranch {
    #[serde(rename = "ref")]
    name: String,
    #[serde(default)]
    sha: String,
}

/// A pull request, full (`pulls/get`) or as listed (`pulls/list`, which
/// lacks `merged`, `mergeable` and the sizes).
#[derive(Deserialize)]
pub(super) struct GhPull {
    number: u64,
    title: String,
    state: String,
    #[serde(default)]
    draft: bool,
    user: Option<GhUser>,
    head: GhBranch,
    base: GhBranch,
    #[serde(default)]
    merged: bool,
    merged_at: Option<String>,
    mergeable: Option<bool>,
    additions: Option<u64>,
    deletions: Option<u64>,
    changed_files: Option<u64>,
    #[serde(default)]
    requested_reviewers: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    requested_teams: Option<Vec<serde_json::Value>>,
    html_url: String,
    updated_at: String,
}

impl GhPull {
    /// Whether reviews were asked of anyone.
    pub(super) fn reviews_requested(&self) -> bool {
        [&self.requested_reviewers, &self.requested_teams]
            .into_iter()
            .any(|requested| {
                requested
                    .as_ref()
                    .is_some_and(|requested| !requested.is_empty())
            })
    }

    /// The head commit.
    pub(super) fn head_sha(&self) -> &str {
        &self.head.sha
    }

    pub(super) fn into_pull_request(self) -> PullRequest {
        let state = match self.state.as_str() {
            "open" => PullState::Open,
            _ if self.merged || self.merged_at.is_some() => PullState::Merged,
            _ => PullState::Closed,
        };
        let diff_stat = match (self.additions, self.deletions, self.changed_files) {
            (Some(additions), Some(deletions), Some(changed_files)) => Some(DiffStat {
                additions,
                deletions,
                changed_files,
            }),
            _ => None,
        };
        PullRequest {
            number: self.number,
            title: self.title,
            state,
            draft: self.draft,
            author: login(self.user),
            head: self.head.name,
            base: self.base.name,
            mergeable: self.mergeable,
            review: None,
            ci: None,
            diff_stat,
            url: self.html_url,
            updated_at: micros(&self.updated_at),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct GhReview {
    pub(super) user: Option<GhUser>,
    pub(super) state: String,
    /// Gitea's: a dismissed review no longer counts.
    #[serde(default)]
    pub(super) dismissed: bool,
}

#[derive(Deserialize)]
pub(super) struct GhCombinedStatus {
    pub(super) state: String,
    pub(super) total_count: u64,
}

#[derive(Deserialize)]
struct GhCheckRuns {
    check_runs: Vec<GhCheckRun>,
}

#[derive(Deserialize)]
struct GhCheckRun {
    status: String,
    conclusion: Option<String>,
}

/// A label: a name, or (in lists) an object with one.
#[derive(Deserialize)]
#[serde(untagged)]
enum GhLabel {
    Name(String),
    Object { name: Option<String> },
}

#[derive(Deserialize)]
pub(super) struct GhIssue {
    number: u64,
    title: String,
    body: Option<String>,
    state: String,
    #[serde(default)]
    labels: Vec<GhLabel>,
    user: Option<GhUser>,
    html_url: String,
    created_at: String,
    #[serde(default)]
    comments: u64,
    pub(super) pull_request: Option<serde_json::Value>,
}

impl GhIssue {
    pub(super) fn into_issue(self) -> Issue {
        Issue {
            number: self.number,
            title: self.title,
            body: self.body.unwrap_or_default(),
            open: self.state == "open",
            labels: self
                .labels
                .into_iter()
                .filter_map(|label| match label {
                    GhLabel::Name(name) => Some(name),
                    GhLabel::Object { name } => name,
                })
                .collect(),
            author: login(self.user),
            url: self.html_url,
            created_at: micros(&self.created_at),
            comments: self.comments,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct GhComment {
    id: u64,
    body: Option<String>,
    user: Option<GhUser>,
    created_at: String,
}

impl GhComment {
    pub(super) fn into_comment(self) -> IssueComment {
        IssueComment {
            id: self.id,
            author: login(self.user),
            body: self.body.unwrap_or_default(),
            created_at: micros(&self.created_at),
        }
    }
}
