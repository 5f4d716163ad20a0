//! `update_mask` handling: every Update RPC names the fields it changes.

use crate::error::{DomainError, reason};

/// Checks `paths` against the fields a resource allows to be updated and
/// returns them de-duplicated. An empty mask is refused: a partial update
/// that silently changes nothing, or everything, helps nobody.
pub fn validate<'a>(paths: &'a [String], allowed: &[&str]) -> Result<Vec<&'a str>, DomainError> {
    if paths.is_empty() {
        return Err(DomainError::invalid_argument(
            reason::INVALID_UPDATE_MASK,
            format!(
                "update_mask is empty; name the fields to change: {}",
                allowed.join(", ")
            ),
        ));
    }
    let mut accepted: Vec<&str> = Vec::with_capacity(paths.len());
    for path in paths {
        if !allowed.contains(&path.as_str()) {
            return Err(DomainError::invalid_argument(
                reason::INVALID_UPDATE_MASK,
                format!(
                    "update_mask path {path:?} is not updatable; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
        if !accepted.contains(&path.as_str()) {
            accepted.push(path);
        }
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_empty_masks_are_refused() {
        let allowed = ["name", "email"];
        assert_eq!(
            validate(&["name".into(), "name".into()], &allowed),
            Ok(vec!["name"])
        );
        for bad in [
            vec![],
            vec!["id".to_string()],
            vec!["name".into(), "nme".into()],
        ] {
            let err = validate(&bad, &allowed).expect_err("bad mask");
            assert_eq!(err.reason, reason::INVALID_UPDATE_MASK);
        }
    }
}
