//! Domain errors on the wire; the mapping lives in `anima_proto::status`
//! so that every service crate answers errors the same way.

pub use anima_proto::status::*;

use anima_core::DomainError;

/// A name the server's configuration does not define (`what`: "secret
/// store", "network zone"), refused with `reason` and the names it does
/// define under `key`, so the caller learns what to ask for.
pub fn not_configured<'a>(
    reason: &'static str,
    what: &str,
    name: &str,
    key: &str,
    defined: impl Iterator<Item = &'a String>,
) -> DomainError {
    let defined: Vec<&str> = defined.map(String::as_str).collect();
    DomainError::invalid_argument(
        reason,
        if defined.is_empty() {
            format!(
                "no {what} {name:?}: this server defines none (its administrators do, in {key})"
            )
        } else {
            format!(
                "no {what} {name:?} on this server; it defines: {}",
                defined.join(", ")
            )
        },
    )
}
