//! Cursor pagination shared by every List RPC.
//!
//! A page token names the last key of the previous page (keyset pagination),
//! so a page costs the same at any depth and rows inserted meanwhile neither
//! shift nor repeat what a client sees. The token also carries a fingerprint
//! of the query it belongs to, so it cannot be replayed against another list.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, reason};

/// Page size used when the client sends 0 (unset).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A validated page request: how many rows, after which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return (1..=MAX_PAGE_SIZE).
    pub size: u32,
    /// Key of the last row of the previous page; `None` for the first page.
    pub after: Option<String>,
    query: u64,
}

#[derive(Serialize, Deserialize)]
struct TokenBody {
    /// Format version.
    v: u8,
    /// Fingerprint of the query.
    q: u64,
    /// Last key seen.
    k: String,
}

impl PageRequest {
    /// Validates `page_size` and `page_token` from a request. `query` names
    /// the list and its filters (e.g. `"users"` or `"workitems:<project>"`).
    pub fn parse(page_size: i32, page_token: &str, query: &str) -> Result<Self, DomainError> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(DomainError::invalid_argument(
                    reason::INVALID_PAGE_SIZE,
                    format!("page_size must not be negative (got {n})"),
                ));
            }
            n if n as u32 > MAX_PAGE_SIZE => {
                return Err(DomainError::invalid_argument(
                    reason::INVALID_PAGE_SIZE,
                    format!("page_size must be at most {MAX_PAGE_SIZE} (got {n})"),
                ));
            }
            n => n as u32,
        };
        let query = fingerprint(query);
        let after = if page_token.is_empty() {
            None
        } else {
            Some(decode(page_token, query)?)
        };
        Ok(Self { size, after, query })
    }

    /// The previous page's last key as a number, for lists ordered by a
    /// number (work item keys, revisions); 0 on the first page.
    pub fn after_number(&self) -> Result<i64, DomainError> {
        self.after
            .as_deref()
            .map_or(Ok(0), |after| after.parse().map_err(|_| invalid_token()))
    }

    /// Rows to fetch: one more than the page, to learn whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// A token that continues this list after `key`, for lists that page
    /// in more than one direction.
    pub fn token_for(&self, key: String) -> String {
        encode(&TokenBody {
            v: 1,
            q: self.query,
            k: key,
        })
    }

    /// Cuts a fetched batch (of up to `fetch_limit` rows) to the page and
    /// returns the token for the next page (empty when this page is the last).
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> String) -> String {
        if rows.len() <= self.size as usize {
            return String::new();
        }
        rows.truncate(self.size as usize);
        rows.last()
            .map_or_else(String::new, |last| self.token_for(key(last)))
    }
}

fn invalid_token() -> DomainError {
    DomainError::invalid_argument(
        reason::INVALID_PAGE_TOKEN,
        "page_token is not one this list issued; start again without it",
    )
}

fn encode(body: &TokenBody) -> String {
    // Serialising a struct of plain fields cannot fail.
    let json = serde_json::to_vec(body).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

fn decode(token: &str, query: u64) -> Result<String, DomainError> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid_token())?;
    let body: TokenBody = serde_json::from_slice(&bytes).map_err(|_| invalid_token())?;
    if body.v != 1 || body.q != query || body.k.is_empty() {
        return Err(invalid_token());
    }
    Ok(body.k)
}

/// FNV-1a: stable across processes and releases, unlike `DefaultHasher`,
/// which matters because tokens outlive a server restart.
fn fingerprint(query: &str) -> u64 {
    query.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_default_and_bounds_are_enforced() {
        assert_eq!(PageRequest::parse(0, "", "users").map(|p| p.size), Ok(50));
        assert_eq!(
            PageRequest::parse(500, "", "users").map(|p| p.size),
            Ok(500)
        );
        for bad in [-1, 501, i32::MAX, i32::MIN] {
            let err = PageRequest::parse(bad, "", "users").expect_err("bad size");
            assert_eq!(err.reason, reason::INVALID_PAGE_SIZE);
        }
    }

    #[test]
    fn tokens_round_trip_and_are_bound_to_their_query() {
        let page = PageRequest::parse(2, "", "users").expect("valid");
        let mut rows = vec!["a", "b", "c"];
        let token = page.finish(&mut rows, |row| row.to_string());
        assert_eq!(rows, ["a", "b"]);
        let next = PageRequest::parse(2, &token, "users").expect("valid token");
        assert_eq!(next.after.as_deref(), Some("b"));
        let err = PageRequest::parse(2, &token, "roles").expect_err("other query");
        assert_eq!(err.reason, reason::INVALID_PAGE_TOKEN);
    }

    #[test]
    fn numeric_keys_parse_or_are_refused() {
        let page = PageRequest::parse(1, "", "keys").expect("valid");
        assert_eq!(page.after_number(), Ok(0));
        let token = page.finish(&mut vec![7, 8], |n| n.to_string());
        let next = PageRequest::parse(1, &token, "keys").expect("valid");
        assert_eq!(next.after_number(), Ok(7));
        let token = page.finish(&mut vec!["x", "y"], |s| s.to_string());
        let next = PageRequest::parse(1, &token, "keys").expect("valid");
        assert_eq!(
            next.after_number().map_err(|e| e.reason),
            Err(reason::INVALID_PAGE_TOKEN)
        );
    }

    #[test]
    fn last_page_has_no_token() {
        let page = PageRequest::parse(5, "", "users").expect("valid");
        let mut rows = vec!["a"];
        assert_eq!(page.finish(&mut rows, |row| row.to_string()), "");
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for garbage in ["x", "!!!", "eyJ2IjoxfQ", "%00", "😀"] {
            let err = PageRequest::parse(10, garbage, "users").expect_err("garbage");
            assert_eq!(err.reason, reason::INVALID_PAGE_TOKEN);
        }
    }
}
