//! Pre-shared tokens between Anima's own services: how long they must be
//! and how they are compared. Every service that checks one (anima-server,
//! anima-ai, anima-agent) goes through here, so none compares a secret in
//! time that depends on how much of it a guess got right.

use subtle::ConstantTimeEq;

/// The fewest characters a configured service token may have: 32 random
/// characters of the URL-safe alphabet are 192 bits, beyond guessing.
pub const MIN_SERVICE_TOKEN_CHARS: usize = 32;

/// Refuses a token too short to configure (at start, not at first use).
pub fn check_strength(what: &str, token: &str) -> Result<(), String> {
    let chars = token.chars().count();
    if chars < MIN_SERVICE_TOKEN_CHARS {
        return Err(format!(
            "{what} has {chars} characters; service tokens need at least \
             {MIN_SERVICE_TOKEN_CHARS} (e.g. `openssl rand -base64 32`)"
        ));
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{what} contains spaces or control characters"));
    }
    Ok(())
}

/// Whether `presented` equals `known`, in time independent of where they
/// differ (only the lengths' equality shows).
pub fn matches(presented: &str, known: &str) -> bool {
    presented.as_bytes().ct_eq(known.as_bytes()).into()
}

/// The token of an `authorization: Bearer <token>` header value, if it is
/// one.
pub fn bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Whether `header` carries one of `known` (every one is compared, so the
/// time does not tell which matched).
pub fn header_matches_any(header: Option<&str>, known: &[String]) -> bool {
    let Some(presented) = header.and_then(bearer) else {
        return false;
    };
    known
        .iter()
        .fold(false, |found, token| found | matches(presented, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(check_strength("t", "short").is_err());
        assert!(check_strength("t", &"a".repeat(31)).is_err());
        assert!(check_strength("t", &format!("{} b", "a".repeat(32))).is_err());
        assert!(check_strength("t", &"a".repeat(32)).is_ok());
    }

    #[test]
    fn only_known_tokens_match() {
        let known = vec!["a".repeat(32), "b".repeat(32)];
        let b = format!("Bearer {}", "b".repeat(32));
        assert!(header_matches_any(Some(&b), &known));
        for refused in [
            None,
            Some("Bearer "),
            Some("b"),
            Some(b.trim_start_matches("Bearer ")),
        ] {
            assert!(!header_matches_any(refused, &known), "{refused:?}");
        }
        assert!(!header_matches_any(
            Some(&format!("Bearer {}", "a".repeat(31))),
            &known
        ));
    }
}
