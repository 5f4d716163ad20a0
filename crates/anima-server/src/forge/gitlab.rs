//! GitLab's REST API v4 (`https://HOST[/PREFIX]/api/v4`): merge requests
//! by `iid` in a project addressed by its URL-encoded path, approvals and
//! reviewers instead of reviews, pipelines and commit statuses for CI,
//! notes (system notes left out) for comments.

use std::sync::Arc;

use anima_core::DomainError;
use async_trait::async_trait;
use reqwest::Url;
use serde::Deserialize;

use super::{
    CiState, Client, Diff, DiffStat, Fetched, Forge, ForgePage, ForgeRepo, Issue, IssueComment,
    IssueFilter, ListState, PullRequest, PullState, ReviewState, TokenHeader, fetched,
    github::worst,
    http::{ForgeHttp, MAX_ANSWER_BYTES},
    micros, page_of, parse,
};

/// A GitLab client.
pub struct GitLab {
    client: Client,
}

impl GitLab {
    /// A client over `http`.
    pub fn new(http: Arc<ForgeHttp>) -> Self {
        Self {
            client: Client {
                http,
                token: TokenHeader::PrivateToken,
                json: "application/json",
                page_size: ("per_page", 100),
            },
        }
    }

    /// `segments` under the project, which GitLab addresses by its path
    /// URL-encoded as one segment (`group%2Fsub%2Fproject`).
    fn project_url(repo: &ForgeRepo, segments: &[&str]) -> Result<Url, DomainError> {
        let project = format!("{}/{}", repo.owner, repo.name);
        let mut all = vec!["projects", project.as_str()];
        all.extend(segments);
        repo.url(&all)
    }

    /// The merge request's raw diff, at most `max_bytes` of it.
    async fn raw_diff(
        &self,
        repo: &ForgeRepo,
        iid: &str,
        max_bytes: usize,
    ) -> Result<Fetched<Diff>, DomainError> {
        let url = Self::project_url(repo, &["merge_requests", iid, "raw_diffs"])?;
        self.client.diff(repo, url, "text/plain", max_bytes).await
    }
}

/// GitLab's name of `state` for merge requests and issues; closed merge
/// requests are asked for as all, and the open ones left out.
fn state_query(state: ListState) -> &'static str {
    match state {
        ListState::Open => "opened",
        ListState::Closed | ListState::All => "all",
    }
}

/// A pipeline's or commit status's state as CI.
fn ci_of(status: &str) -> CiState {
    match status {
        "success" | "skipped" => CiState::Success,
        "failed" | "canceled" | "canceling" => CiState::Failure,
        _ => CiState::Pending,
    }
}

/// Lines added and removed and files changed, counted in a whole unified
/// diff (GitLab does not give them).
fn diff_stat(diff: &str) -> DiffStat {
    let mut stat = DiffStat {
        additions: 0,
        deletions: 0,
        changed_files: 0,
    };
    // Between a file's `diff --git` and its first hunk, `---` and `+++`
    // name the file; inside hunks they are removed or added lines.
    let mut in_header = false;
    for line in diff.lines() {
        match line {
            line if line.starts_with("diff --git ") => {
                stat.changed_files += 1;
                in_header = true;
            }
            line if line.starts_with("@@") => in_header = false,
            _ if in_header => {}
            line if line.starts_with('+') => stat.additions += 1,
            line if line.starts_with('-') => stat.deletions += 1,
            _ => {}
        }
    }
    stat
}

#[async_trait]
impl Forge for GitLab {
    async fn pull_request(
        &self,
        repo: &ForgeRepo,
        number: u64,
    ) -> Result<Fetched<PullRequest>, DomainError> {
        let iid = number.to_string();
        let answer = self
            .client
            .json(repo, Self::project_url(repo, &["merge_requests", &iid])?)
            .await?;
        let mut oldest = Fetched::new();
        oldest.include(&answer);
        let merge_request: GlMergeRequest = parse(repo, &answer)?;

        let approvals = self
            .client
            .json(
                repo,
                Self::project_url(repo, &["merge_requests", &iid, "approvals"])?,
            )
            .await?;
        oldest.include(&approvals);
        let approvals: GlApprovals = parse(repo, &approvals)?;
        let reviewers = self
            .client
            .json(
                repo,
                Self::project_url(repo, &["merge_requests", &iid, "reviewers"])?,
            )
            .await?;
        oldest.include(&reviewers);
        let reviewers: Vec<GlReviewer> = parse(repo, &reviewers)?;
        let review = if reviewers
            .iter()
            .any(|reviewer| reviewer.state == "requested_changes")
        {
            ReviewState::ChangesRequested
        } else if !approvals.approved_by.is_empty() {
            ReviewState::Approved
        } else if !reviewers.is_empty() {
            ReviewState::Pending
        } else {
            ReviewState::None
        };

        // The head pipeline's status is GitLab's own verdict (a job allowed
        // to fail, a manual job waiting, make it no failure); without one,
        // the commit's statuses are an outside CI's.
        let ci = match (&merge_request.head_pipeline, merge_request.sha.as_deref()) {
            (Some(pipeline), _) => ci_of(&pipeline.status),
            (None, Some(sha)) if !sha.is_empty() => {
                let url = self.client.list_url(
                    repo,
                    None,
                    || Self::project_url(repo, &["repository", "commits", sha, "statuses"]),
                    &[],
                )?;
                let statuses = self.client.json(repo, url).await?;
                oldest.include(&statuses);
                let statuses: Vec<GlStatus> = parse(repo, &statuses)?;
                let states: Vec<CiState> = statuses
                    .iter()
                    .filter(|status| status.status != "manual")
                    .map(|status| match ci_of(&status.status) {
                        CiState::Failure if status.allow_failure => CiState::Success,
                        state => state,
                    })
                    .collect();
                worst(&states)
            }
            (None, _) => CiState::None,
        };

        let diff = self.raw_diff(repo, &iid, MAX_ANSWER_BYTES).await?;
        oldest.fetched_at = oldest.fetched_at.min(diff.fetched_at);
        oldest.stale |= diff.stale;
        let diff_stat = (!diff.value.truncated).then(|| diff_stat(&diff.value.text));

        let mut pull_request = merge_request.into_pull_request();
        pull_request.review = Some(review);
        pull_request.ci = Some(ci);
        pull_request.diff_stat = diff_stat;
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
            || Self::project_url(repo, &["merge_requests"]),
            &[
                ("state", state_query(state)),
                ("order_by", "created_at"),
                ("sort", "desc"),
            ],
        )?;
        let answer = self.client.json(repo, url).await?;
        let merge_requests: Vec<GlMergeRequest> = parse(repo, &answer)?;
        Ok(page_of(
            &answer,
            merge_requests
                .into_iter()
                .map(GlMergeRequest::into_pull_request)
                .filter(|pull| state != ListState::Closed || pull.state != PullState::Open)
                .collect(),
        ))
    }

    async fn pull_request_diff(
        &self,
        repo: &ForgeRepo,
        number: u64,
        max_bytes: usize,
    ) -> Result<Fetched<Diff>, DomainError> {
        self.raw_diff(repo, &number.to_string(), max_bytes).await
    }

    async fn issue(&self, repo: &ForgeRepo, number: u64) -> Result<Fetched<Issue>, DomainError> {
        let url = Self::project_url(repo, &["issues", &number.to_string()])?;
        let answer = self.client.json(repo, url).await?;
        let issue: GlIssue = parse(repo, &answer)?;
        Ok(fetched(&answer, issue.into_issue()))
    }

    async fn issues(
        &self,
        repo: &ForgeRepo,
        filter: &IssueFilter,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<Issue>>, DomainError> {
        let labels = filter.labels.join(",");
        let state = match filter.state {
            ListState::Open => "opened",
            ListState::Closed => "closed",
            ListState::All => "all",
        };
        let mut query = vec![
            ("state", state),
            ("order_by", "created_at"),
            ("sort", "asc"),
        ];
        if !labels.is_empty() {
            query.push(("labels", labels.as_str()));
        }
        let url =
            self.client
                .list_url(repo, page, || Self::project_url(repo, &["issues"]), &query)?;
        let answer = self.client.json(repo, url).await?;
        let issues: Vec<GlIssue> = parse(repo, &answer)?;
        Ok(page_of(
            &answer,
            issues
                .into_iter()
                .map(GlIssue::into_issue)
                .filter(|issue| filter.admits(issue))
                .collect(),
        ))
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
            || Self::project_url(repo, &["issues", &number.to_string(), "notes"]),
            // Newest first unless asked otherwise.
            &[("order_by", "created_at"), ("sort", "asc")],
        )?;
        let answer = self.client.json(repo, url).await?;
        let notes: Vec<GlNote> = parse(repo, &answer)?;
        Ok(page_of(
            &answer,
            // System notes ("closed", "changed the label") are GitLab's
            // record of events, not anyone's words.
            notes
                .into_iter()
                .filter(|note| !note.system)
                .map(|note| IssueComment {
                    id: note.id,
                    author: username(note.author),
                    body: note.body.unwrap_or_default(),
                    created_at: micros(&note.created_at),
                })
                .collect(),
        ))
    }
}

#[derive(Deserialize)]
struct GlUser {
    username: String,
}

fn username(user: Option<GlUser>) -> String {
    user.map_or_else(|| "ghost".into(), |user| user.username)
}

#[derive(Deserialize)]
struct GlPipeline {
    status: String,
}

#[derive(Deserialize)]
struct GlMergeRequest {
    iid: u64,
    title: String,
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    work_in_progress: bool,
    author: Option<GlUser>,
    source_branch: String,
    target_branch: String,
    detailed_merge_status: Option<String>,
    #[serde(default)]
    has_conflicts: bool,
    sha: Option<String>,
    head_pipeline: Option<GlPipeline>,
    web_url: String,
    updated_at: String,
}

impl GlMergeRequest {
    fn into_pull_request(self) -> PullRequest {
        let state = match self.state.as_str() {
            "merged" => PullState::Merged,
            "closed" => PullState::Closed,
            // "opened", and "locked" while it merges.
            _ => PullState::Open,
        };
        // Mergeability is worked out in the background.
        let checking = matches!(
            self.detailed_merge_status.as_deref(),
            Some("checking" | "unchecked" | "preparing" | "approvals_syncing") | None
        );
        PullRequest {
            number: self.iid,
            title: self.title,
            state,
            draft: self.draft || self.work_in_progress,
            author: username(self.author),
            head: self.source_branch,
            base: self.target_branch,
            mergeable: (!checking).then_some(!self.has_conflicts),
            review: None,
            ci: None,
            diff_stat: None,
            url: self.web_url,
            updated_at: micros(&self.updated_at),
        }
    }
}

#[derive(Deserialize)]
struct GlApproval {}

#[derive(Deserialize)]
struct GlApprovals {
    #[serde(default)]
    approved_by: Vec<GlApproval>,
}

#[derive(Deserialize)]
struct GlReviewer {
    state: String,
}

#[derive(Deserialize)]
struct GlStatus {
    status: String,
    #[serde(default)]
    allow_failure: bool,
}

#[derive(Deserialize)]
struct GlIssue {
    iid: u64,
    title: String,
    description: Option<String>,
    state: String,
    #[serde(default)]
    labels: Vec<String>,
    author: Option<GlUser>,
    web_url: String,
    created_at: String,
    #[serde(default)]
    user_notes_count: u64,
}

impl GlIssue {
    fn into_issue(self) -> Issue {
        Issue {
            number: self.iid,
            title: self.title,
            body: self.description.unwrap_or_default(),
            open: self.state == "opened",
            labels: self.labels,
            author: username(self.author),
            url: self.web_url,
            created_at: micros(&self.created_at),
            comments: self.user_notes_count,
        }
    }
}

#[derive(Deserialize)]
struct GlNote {
    id: u64,
    body: Option<String>,
    author: Option<GlUser>,
    created_at: String,
    #[serde(default)]
    system: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_is_counted_line_by_line() {
        let diff = "diff --git a/a.rs b/a.rs\nindex 1..2 100644\n--- a/a.rs\n+++ b/a.rs\n\
                    @@ -1,2 +1,2 @@\n-old\n+new\n+more\n context\n\
                    diff --git a/b.sql b/b.sql\n--- a/b.sql\n+++ b/b.sql\n@@ -1,2 +0,0 @@\n\
                    -gone\n--- a comment that went\n";
        assert_eq!(
            diff_stat(diff),
            DiffStat {
                additions: 2,
                deletions: 3,
                changed_files: 2
            }
        );
    }
}
