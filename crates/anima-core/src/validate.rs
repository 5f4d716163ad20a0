//! Input limits for strings that reach storage. Text is stored verbatim
//! (quotes, `%`, emoji and all); only length and emptiness are checked.

use crate::error::{DomainError, reason};

/// Longest name-like field (usernames, role and project names), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest free-text field (descriptions, messages), in characters.
pub const MAX_TEXT_CHARS: usize = 1_000_000;
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (argon2 input stays bounded).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A required name: non-blank, at most [`MAX_NAME_CHARS`].
pub fn name(field: &str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid_argument(
            reason::FIELD_REQUIRED,
            format!("{field} must not be empty"),
        ));
    }
    max_chars(field, value, MAX_NAME_CHARS)
}

/// An optional text: at most `limit` characters.
pub fn max_chars(field: &str, value: &str, limit: usize) -> Result<(), DomainError> {
    let chars = value.chars().count();
    if chars > limit {
        return Err(DomainError::invalid_argument(
            reason::FIELD_TOO_LONG,
            format!("{field} is {chars} characters long; the limit is {limit}"),
        ));
    }
    Ok(())
}

/// A count a request may leave at 0 for `default`; otherwise 1 to `max`.
pub fn count_or_default(
    field: &str,
    value: i32,
    default: i32,
    max: i32,
) -> Result<i32, DomainError> {
    match value {
        0 => Ok(default),
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            format!("{field} must be between 1 and {max}"),
        )),
    }
}

/// A username: a name without whitespace or control characters, so that it
/// can be typed at a prompt and shown in a table unambiguously.
pub fn username(value: &str) -> Result<(), DomainError> {
    name("username", value)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DomainError::invalid_argument(
            reason::INVALID_FIELD,
            "username must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// A new password: long enough to resist guessing, short enough to hash.
pub fn password(value: &str) -> Result<(), DomainError> {
    let chars = value.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid_argument(
            reason::WEAK_PASSWORD,
            format!("password must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    max_chars("password", value, MAX_PASSWORD_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(name("name", "it's 100% 🚀 \"quoted\"").is_ok());
        assert_eq!(
            name("name", "  ").map_err(|e| e.reason),
            Err(reason::FIELD_REQUIRED)
        );
        let long = "é".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            name("name", &long).map_err(|e| e.reason),
            Err(reason::FIELD_TOO_LONG)
        );
        assert!(name("name", &"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(
            username("a b").map_err(|e| e.reason),
            Err(reason::INVALID_FIELD)
        );
        assert_eq!(
            password("short").map_err(|e| e.reason),
            Err(reason::WEAK_PASSWORD)
        );
    }
}
