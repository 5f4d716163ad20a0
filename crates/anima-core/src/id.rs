//! Identifiers: UUIDv7 internally (time-ordered, so they double as stable
//! cursor keys), exchanged as strings on the wire.

use uuid::Uuid;

use crate::error::{DomainError, reason};

/// A fresh time-ordered identifier.
pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// Parses an identifier that came from a client; `what` names it in the error.
pub fn parse_id(raw: &str, what: &str) -> Result<String, DomainError> {
    Uuid::parse_str(raw).map(|id| id.to_string()).map_err(|_| {
        DomainError::invalid_argument(
            reason::INVALID_ID,
            format!("{what} {raw:?} is not a valid id"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let first = new_id();
        let second = new_id();
        assert!(first < second);
    }

    #[test]
    fn malformed_ids_are_refused() {
        let err = parse_id("nope", "user id").expect_err("must fail");
        assert_eq!(err.reason, reason::INVALID_ID);
        assert!(parse_id(&new_id(), "user id").is_ok());
    }
}
