//! The one way Anima talks to a forge: `GET` with the repository's
//! credential, never a redirect, a bounded answer, and the last answer per
//! URL kept. The cache is what makes forge data cheap to look at on demand:
//! a request carries the saved `ETag` as `If-None-Match`, a `304` (which
//! GitHub does not count against its rate limit) is served from the cache,
//! and a forge that is down or slow gets its last answer served marked
//! stale. Written on reqwest rather than an HTTP caching crate: the forges'
//! answers are private (`Cache-Control: private`), which shared HTTP caches
//! refuse to keep, and staleness has to be reported, not hidden.

use std::{sync::Arc, time::Duration};

use anima_core::{DomainError, ErrorCode, error::reason, model::now_micros};
use reqwest::{
    StatusCode, Url,
    header::{self, HeaderMap, HeaderName, HeaderValue},
};
use sha2::{Digest, Sha256};

/// The most an answer may hold, past which it is refused (a JSON page of
/// 100 pull requests is a few hundred KiB).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The most the cache keeps, in bytes of answers, in few shards: each
/// shard holds its share, and the largest answer must fit in one.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;
const CACHE_SHARDS: usize = 4;

/// How an answer beyond its limit is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Oversize {
    /// Refused (`FORGE_BAD_RESPONSE`).
    Refuse,
    /// Cut at the limit, and said so (a diff).
    Truncate,
}

/// The header that carries a repository's token, as its forge wants it.
#[derive(Clone)]
pub struct Credential {
    name: HeaderName,
    value: HeaderValue,
    /// Tells answers fetched with different tokens apart in the cache,
    /// without keeping the token in its keys.
    fingerprint: String,
}

impl Credential {
    /// `name: value`, the value kept out of logs and debug output.
    pub fn header(name: HeaderName, value: &str) -> Result<Self, DomainError> {
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            DomainError::failed_precondition(
                reason::FORGE_UNAUTHORIZED,
                "the repository's credential is not a valid token",
            )
        })?;
        value.set_sensitive(true);
        let fingerprint = hex::encode(Sha256::digest(value.as_bytes()));
        Ok(Self {
            name,
            value,
            fingerprint,
        })
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: …)", self.name)
    }
}

/// What the forge answered (or the cache, for it).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The body, at most the limit asked for.
    pub body: Arc<[u8]>,
    /// The next page, when the answer is a page of a list (`Link:
    /// rel="next"`).
    pub next: Option<Url>,
    /// When the forge said this (µs since the epoch): now, or when the
    /// cached answer was last fetched or confirmed.
    pub fetched_at: i64,
    /// Served from the cache because the forge did not answer.
    pub stale: bool,
    /// Cut at the limit ([`Oversize::Truncate`]).
    pub truncated: bool,
}

/// The cache's key: what was asked, with which token, and how much of the
/// answer was wanted (a diff cut short is not the whole diff).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    url: String,
    accept: &'static str,
    credential: String,
    max_bytes: usize,
    oversize: Oversize,
}

/// A kept answer with its validator.
struct Kept {
    answer: Answer,
    etag: Option<HeaderValue>,
}

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<Key, Arc<Kept>> for ByBytes {
    fn weight(&self, key: &Key, kept: &Arc<Kept>) -> u64 {
        (key.url.len() + kept.answer.body.len()) as u64 + 256
    }
}

/// The HTTP client of every forge.
pub struct ForgeHttp {
    client: reqwest::Client,
    cache: quick_cache::sync::Cache<Key, Arc<Kept>, ByBytes>,
}

impl ForgeHttp {
    /// A client whose requests give up after `timeout`.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        // reqwest is built without a TLS crypto provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            // A redirect would carry the credential to wherever the forge
            // (or whoever answers for it) points: none is followed.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("anima/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            cache: quick_cache::sync::Cache::with_options(
                quick_cache::OptionsBuilder::new()
                    .estimated_items_capacity(4096)
                    .weight_capacity(CACHE_BYTES)
                    .shards(CACHE_SHARDS)
                    .build()?,
                ByBytes,
                Default::default(),
                Default::default(),
            ),
        })
    }

    /// `GET url` as `accept`, with `credential`; an answer larger than
    /// `max_bytes` is taken as `oversize` says.
    pub async fn get(
        &self,
        url: Url,
        accept: &'static str,
        credential: Option<&Credential>,
        max_bytes: usize,
        oversize: Oversize,
    ) -> Result<Answer, DomainError> {
        let max_bytes = max_bytes.min(MAX_ANSWER_BYTES);
        let key = Key {
            url: url.to_string(),
            accept,
            credential: credential
                .map(|c| c.fingerprint.clone())
                .unwrap_or_default(),
            max_bytes,
            oversize,
        };
        let kept = self.cache.get(&key);
        let mut request = self.client.get(url.clone()).header(header::ACCEPT, accept);
        if let Some(credential) = credential {
            request = request.header(credential.name.clone(), credential.value.clone());
        }
        if let Some(etag) = kept.as_ref().and_then(|kept| kept.etag.clone()) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let host = url.host_str().unwrap_or("the forge").to_owned();
        let stale_or = |error: DomainError| match &kept {
            Some(kept) => {
                tracing::warn!(%error, url = %url, "forge unavailable: serving its last answer");
                Ok(Answer {
                    stale: true,
                    ..kept.answer.clone()
                })
            }
            None => Err(error),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let what = match error.is_timeout() {
                    true => "did not answer in time",
                    false => "could not be reached",
                };
                return stale_or(unavailable(format!("{host} {what}")));
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            let Some(kept) = kept else {
                return Err(bad_response(
                    &host,
                    "answered 304 to a request it had no copy for",
                ));
            };
            let answer = Answer {
                fetched_at: now_micros(),
                ..kept.answer.clone()
            };
            self.cache.insert(
                key,
                Arc::new(Kept {
                    answer: answer.clone(),
                    etag: kept.etag.clone(),
                }),
            );
            return Ok(answer);
        }
        if status.is_success() {
            let etag = response.headers().get(header::ETAG).cloned();
            let next = next_page(response.headers());
            let (body, truncated) = match read_body(response, &host, max_bytes, oversize).await {
                Ok(read) => read,
                // Broken off: as if the forge had not answered.
                Err(error) if error.reason == reason::FORGE_UNAVAILABLE => return stale_or(error),
                Err(error) => return Err(error),
            };
            let answer = Answer {
                body: body.into(),
                next,
                fetched_at: now_micros(),
                stale: false,
                truncated,
            };
            self.cache.insert(
                key,
                Arc::new(Kept {
                    answer: answer.clone(),
                    etag,
                }),
            );
            return Ok(answer);
        }
        let headers = response.headers().clone();
        match status {
            status if status.is_redirection() => {
                let to = headers
                    .get(header::LOCATION)
                    .and_then(|location| location.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                    .and_then(|location| location.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "elsewhere".into());
                Err(DomainError::failed_precondition(
                    reason::FORGE_REDIRECTED,
                    format!(
                        "{host} redirected the request to {to}; Anima follows no redirect from a \
                         forge (the repository may have moved: update its URL)"
                    ),
                ))
            }
            StatusCode::UNAUTHORIZED => Err(DomainError::failed_precondition(
                reason::FORGE_UNAUTHORIZED,
                format!("{host} refused the repository's credential (401)"),
            )),
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
                match rate_limit_reset(&headers, status) {
                    Some(reset) => Err(DomainError::new(
                        ErrorCode::ResourceExhausted,
                        reason::FORGE_RATE_LIMITED,
                        format!("{host} limits requests with this credential until {reset}"),
                    )),
                    None => Err(DomainError::failed_precondition(
                        reason::FORGE_UNAUTHORIZED,
                        format!("{host} does not let the repository's credential read this (403)"),
                    )),
                }
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => Err(DomainError::not_found(
                reason::FORGE_NOT_FOUND,
                format!("{host} has no such thing, or does not show it to this credential"),
            )),
            status if status.is_server_error() => {
                stale_or(unavailable(format!("{host} failed ({status})")))
            }
            status => Err(bad_response(&host, &format!("answered {status}"))),
        }
    }
}

/// The body of `response`, at most `max_bytes` of it.
async fn read_body(
    mut response: reqwest::Response,
    host: &str,
    max_bytes: usize,
    oversize: Oversize,
) -> Result<(Vec<u8>, bool), DomainError> {
    let too_large = || bad_response(host, &format!("sent more than {max_bytes} bytes"));
    if oversize == Oversize::Refuse
        && response
            .content_length()
            .is_some_and(|length| length > max_bytes as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok((body, false)),
            Err(error) => {
                tracing::warn!(%error, host, "reading a forge's answer");
                return Err(unavailable(format!("{host} broke off its answer")));
            }
        };
        let room = max_bytes - body.len();
        if chunk.len() > room {
            return match oversize {
                Oversize::Refuse => Err(too_large()),
                Oversize::Truncate => {
                    body.extend_from_slice(&chunk[..room]);
                    // Cut at a character's border where the text is UTF-8
                    // (a character may span chunks).
                    if let Err(error) = std::str::from_utf8(&body)
                        && error.error_len().is_none()
                    {
                        body.truncate(error.valid_up_to());
                    }
                    Ok((body, true))
                }
            };
        }
        body.extend_from_slice(&chunk);
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), as GitHub, Gitea
/// and GitLab send it: `<URL>; rel="next", <URL>; rel="last"` (Gitea
/// without the space).
fn next_page(headers: &HeaderMap) -> Option<Url> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|link| {
            let (target, params) = link.trim().split_once(';')?;
            let is_next = params.split(';').any(|param| {
                param
                    .trim()
                    .strip_prefix("rel=")
                    .is_some_and(|rel| rel.trim_matches('"').split(' ').any(|rel| rel == "next"))
            });
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            is_next.then(|| Url::parse(target).ok()).flatten()
        })
}

/// When a rate-limited credential may ask again, if the answer says it was
/// rate limited: GitHub's `x-ratelimit-remaining: 0` with its reset (epoch
/// seconds), GitLab's `RateLimit-Reset`, or `Retry-After` (seconds); a 429
/// that says nothing resets in a minute.
fn rate_limit_reset(headers: &HeaderMap, status: StatusCode) -> Option<String> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<i64>().ok())
    };
    let now = now_micros() / 1_000_000;
    let exhausted =
        number("x-ratelimit-remaining") == Some(0) || number("ratelimit-remaining") == Some(0);
    let at = match number("retry-after") {
        // At most a day: the header is the forge's to fill.
        Some(seconds) => Some(now + seconds.clamp(0, 86_400)),
        None if exhausted => number("x-ratelimit-reset").or(number("ratelimit-reset")),
        None => None,
    };
    let at = match (at, status) {
        (Some(at), _) => at,
        (None, StatusCode::TOO_MANY_REQUESTS) => now + 60,
        (None, _) => return None,
    };
    Some(
        jiff::Timestamp::from_second(at)
            .map(|at| at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| format!("{at} (Unix time)")),
    )
}

/// The forge did not answer (usably).
fn unavailable(message: String) -> DomainError {
    DomainError::new(ErrorCode::Unavailable, reason::FORGE_UNAVAILABLE, message)
}

/// The forge answered something Anima cannot use.
pub(crate) fn bad_response(host: &str, what: &str) -> DomainError {
    DomainError::new(
        ErrorCode::Unavailable,
        reason::FORGE_BAD_RESPONSE,
        format!("{host} {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    HeaderName::from_static(name),
                    HeaderValue::from_str(value).expect("value"),
                )
            })
            .collect()
    }

    #[test]
    fn the_next_page_is_read_from_each_forges_link_header() {
        let github = "<https://api.github.com/repositories/1/issues?per_page=3&page=1>; rel=\"prev\", \
             <https://api.github.com/repositories/1/issues?per_page=3&page=3>; rel=\"next\", \
             <https://api.github.com/repositories/1/issues?per_page=3&page=5>; rel=\"last\"";
        assert_eq!(
            next_page(&headers(&[("link", github)])).map(String::from),
            Some("https://api.github.com/repositories/1/issues?per_page=3&page=3".into())
        );
        let gitea = "<https://try.gitea.io/api/v1/repos/o/r/issues?limit=2&page=2>; rel=\"next\",<https://try.gitea.io/api/v1/repos/o/r/issues?limit=2&page=4>; rel=\"last\"";
        assert_eq!(
            next_page(&headers(&[("link", gitea)])).map(String::from),
            Some("https://try.gitea.io/api/v1/repos/o/r/issues?limit=2&page=2".into())
        );
        let last = "<https://gitlab.example/api/v4/projects/1/issues?page=1>; rel=\"first\"";
        assert_eq!(next_page(&headers(&[("link", last)])), None);
        assert_eq!(next_page(&HeaderMap::new()), None);
    }

    #[test]
    fn rate_limits_name_when_they_end() {
        let github = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1658208999"),
        ]);
        assert_eq!(
            rate_limit_reset(&github, StatusCode::FORBIDDEN).as_deref(),
            Some("2022-07-19 05:36:39 UTC")
        );
        let gitlab = headers(&[
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "1658208999"),
        ]);
        assert!(rate_limit_reset(&gitlab, StatusCode::TOO_MANY_REQUESTS).is_some());
        // A 403 with requests left is a refusal, not a limit.
        let refused = headers(&[
            ("x-ratelimit-remaining", "4000"),
            ("x-ratelimit-reset", "1658208999"),
        ]);
        assert_eq!(rate_limit_reset(&refused, StatusCode::FORBIDDEN), None);
        assert!(rate_limit_reset(&HeaderMap::new(), StatusCode::TOO_MANY_REQUESTS).is_some());
    }
}
