//! File names that come from a peer (a skill bundle's files, a secret's
//! mount point) and are joined under a directory.

use std::path::{Component, Path};

/// `name` as a path that stays inside the directory it is joined to: not
/// empty, only plain parts (no root, `.`, `..` or prefix).
pub fn contained(name: &str) -> Option<&Path> {
    let path = Path::new(name);
    let plain = !name.is_empty()
        && path
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
    plain.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_contained() {
        assert!(contained("mcp/config.json").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./.."] {
            assert!(contained(bad).is_none(), "{bad:?}");
        }
    }
}
