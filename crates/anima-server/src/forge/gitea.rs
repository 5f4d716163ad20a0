//! Gitea's API v1 (`https://HOST[/PREFIX]/api/v1`), which follows
//! GitHub's shapes: it reads with the same types, and differs in paths
//! (`.diff`), paging (`limit`), review states, CI (commit statuses only)
//! and the issue list (`type=issues`; labels match any, not all).

use std::sync::Arc;

use anima_core::DomainError;
use async_trait::async_trait;

use super::{
    CiState, Client, Diff, Fetched, Forge, ForgePage, ForgeRepo, Issue, IssueComment, IssueFilter,
    ListState, PullRequest, TokenHeader,
    github::{
        GhCombinedStatus, GhPull, GhReview, comment_page, issue_of, issue_page, review_state,
    },
    http::ForgeHttp,
    page_of, parse,
};

/// Items per page: Gitea's default maximum.
const PAGE_SIZE: usize = 50;

/// Pages of reviews read for one pull request.
const MAX_REVIEW_PAGES: usize = 20;

/// A Gitea client.
pub struct Gitea {
    client: Client,
}

impl Gitea {
    /// A client over `http`.
    pub fn new(http: Arc<ForgeHttp>) -> Self {
        Self {
            client: Client {
                http,
                token: TokenHeader::Gitea,
                json: "application/json",
                page_size: ("limit", PAGE_SIZE),
            },
        }
    }
}

#[async_trait]
impl Forge for Gitea {
    async fn pull_request(
        &self,
        repo: &ForgeRepo,
        number: u64,
    ) -> Result<Fetched<PullRequest>, DomainError> {
        let answer = self
            .client
            .json(repo, repo.repo_url(&["pulls", &number.to_string()])?)
            .await?;
        let mut oldest = Fetched::new();
        oldest.include(&answer);
        let pull: GhPull = parse(repo, &answer)?;

        // Gitea sends no Link header with reviews: pages are asked for
        // by number until one comes back short.
        let number_text = number.to_string();
        let mut reviews = Vec::new();
        for page in 1..=MAX_REVIEW_PAGES {
            let url = self.client.list_url(
                repo,
                None,
                || repo.repo_url(&["pulls", &number_text, "reviews"]),
                &[("page", &page.to_string())],
            )?;
            let answer = self.client.json(repo, url).await?;
            oldest.include(&answer);
            let page: Vec<GhReview> = parse(repo, &answer)?;
            let last = page.len() < PAGE_SIZE;
            reviews.extend(page);
            if last {
                break;
            }
        }
        let review = review_state(
            reviews,
            pull.reviews_requested(),
            "REQUEST_CHANGES",
            &["PENDING", "REQUEST_REVIEW"],
        );

        // Gitea Actions reports through commit statuses too; with none,
        // the combined status is Go's zero value (`state: ""`).
        let status = self
            .client
            .json(
                repo,
                repo.repo_url(&["commits", pull.head_sha(), "status"])?,
            )
            .await?;
        oldest.include(&status);
        let status: GhCombinedStatus = parse(repo, &status)?;
        let ci = match status.state.as_str() {
            "" => CiState::None,
            "success" | "warning" => CiState::Success,
            "pending" => CiState::Pending,
            _ => CiState::Failure,
        };

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
            &[("state", state.github_name()), ("sort", "recentupdate")],
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
        let url = repo.repo_url(&["pulls", &format!("{number}.diff")])?;
        self.client.diff(repo, url, "text/plain", max_bytes).await
    }

    async fn issue(&self, repo: &ForgeRepo, number: u64) -> Result<Fetched<Issue>, DomainError> {
        let answer = self
            .client
            .json(repo, repo.repo_url(&["issues", &number.to_string()])?)
            .await?;
        issue_of(repo, &answer, number)
    }

    async fn issues(
        &self,
        repo: &ForgeRepo,
        filter: &IssueFilter,
        page: Option<&str>,
    ) -> Result<Fetched<ForgePage<Issue>>, DomainError> {
        let labels = filter.labels.join(",");
        let mut query = vec![("state", filter.state.github_name()), ("type", "issues")];
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
        // Gitea answers all of an issue's comments at once.
        let url = match page {
            Some(page) => repo.page_url(page)?,
            None => repo.repo_url(&["issues", &number.to_string(), "comments"])?,
        };
        let answer = self.client.json(repo, url).await?;
        comment_page(repo, &answer)
    }
}
