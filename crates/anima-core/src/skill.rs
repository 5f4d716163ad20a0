//! Skills: versioned bundles of files and a manifest that workflow phases
//! declare and agent sessions get in their workspace. A published version
//! never changes; an unpinned reference means the newest version.

use std::collections::HashSet;

use crate::{
    error::{DomainError, reason},
    validate,
    workflow::is_slug,
};

/// Most files in one skill version.
pub const MAX_SKILL_FILES: usize = 200;
/// Most bytes of all files of one skill version.
pub const MAX_SKILL_BYTES: usize = 10 << 20;
/// Longest file path in a skill, in bytes.
const MAX_PATH: usize = 255;

/// One file of a skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillFile {
    /// Relative path inside the skill's directory.
    pub path: String,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// A published version of a skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skill {
    /// Slug, e.g. `code-reading`.
    pub name: String,
    /// Free-form version, e.g. `1.2.0`.
    pub version: String,
    /// What it teaches an agent.
    pub description: String,
    /// The manifest, a JSON object.
    pub manifest: String,
    /// Its files; empty in listings.
    pub files: Vec<SkillFile>,
    /// How many files it has.
    pub file_count: i64,
    /// Their total size.
    pub size_bytes: i64,
    /// Who published it.
    pub created_by: String,
    /// When.
    pub created_at: i64,
}

/// A version to publish.
#[derive(Debug, Clone)]
pub struct NewSkill {
    /// Slug.
    pub name: String,
    /// Version; unique per name.
    pub version: String,
    /// What it teaches.
    pub description: String,
    /// JSON object.
    pub manifest: String,
    /// Its files.
    pub files: Vec<SkillFile>,
    /// Who publishes it (a user id or `service:NAME`).
    pub author: String,
}

fn invalid(message: String) -> DomainError {
    DomainError::invalid_argument(reason::INVALID_FIELD, message)
}

/// Checks a version string: 1-64 of letters, digits, `.`, `-`, `_`, `+`.
pub fn validate_version(version: &str) -> Result<(), DomainError> {
    if version.is_empty()
        || version.len() > 64
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    {
        return Err(invalid(format!(
            "skill version {version:?} must be 1-64 of letters, digits and . - _ +"
        )));
    }
    Ok(())
}

impl NewSkill {
    /// Refuses a malformed version: bad name or version, a manifest that
    /// is not a JSON object, unsafe or repeated paths, too many files or
    /// bytes.
    pub fn validate(&self) -> Result<(), DomainError> {
        if !is_slug(&self.name) {
            return Err(invalid(format!(
                "skill name {:?} must be 1-64 of a-z 0-9 and single dashes",
                self.name
            )));
        }
        validate_version(&self.version)?;
        validate::max_chars("description", &self.description, 2_000)?;
        match serde_json::from_str::<serde_json::Value>(&self.manifest) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(invalid("manifest_json must be a JSON object".into())),
        }
        if self.files.len() > MAX_SKILL_FILES {
            return Err(DomainError::invalid_argument(
                reason::SKILL_TOO_LARGE,
                format!(
                    "a skill has at most {MAX_SKILL_FILES} files (got {})",
                    self.files.len()
                ),
            ));
        }
        let total: usize = self.files.iter().map(|file| file.content.len()).sum();
        if total > MAX_SKILL_BYTES {
            return Err(DomainError::invalid_argument(
                reason::SKILL_TOO_LARGE,
                format!("a skill holds at most {MAX_SKILL_BYTES} bytes (got {total})"),
            ));
        }
        let mut seen = HashSet::new();
        for file in &self.files {
            if !is_safe_path(&file.path) {
                return Err(invalid(format!(
                    "skill file {:?} must be a relative path without . or .. parts",
                    file.path
                )));
            }
            if file.path == "manifest.json" {
                return Err(invalid(
                    "manifest.json is the manifest: send it as manifest_json".into(),
                ));
            }
            if !seen.insert(file.path.as_str()) {
                return Err(invalid(format!("skill file {:?} appears twice", file.path)));
            }
        }
        Ok(())
    }
}

/// A relative path of plain parts, safe to join under a directory.
fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(files: Vec<(&str, &str)>) -> NewSkill {
        NewSkill {
            name: "code-reading".into(),
            version: "1.0.0".into(),
            description: String::new(),
            manifest: r#"{"entry": "SKILL.md"}"#.into(),
            files: files
                .into_iter()
                .map(|(path, text)| SkillFile {
                    path: path.into(),
                    content: text.as_bytes().to_vec(),
                })
                .collect(),
            author: "admin".into(),
        }
    }

    #[test]
    fn well_formed_skills_pass() {
        assert!(
            skill(vec![("SKILL.md", "read"), ("tools/grep.sh", "grep")])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn malformed_skills_are_refused_with_a_reason() {
        for bad in [
            skill(vec![("../escape", "x")]),
            skill(vec![("/abs", "x")]),
            skill(vec![("a//b", "x")]),
            skill(vec![("same", "x"), ("same", "y")]),
            skill(vec![("manifest.json", "{}")]),
            NewSkill {
                manifest: "[1]".into(),
                ..skill(vec![])
            },
            NewSkill {
                version: "1 0".into(),
                ..skill(vec![])
            },
            NewSkill {
                name: "Code Reading".into(),
                ..skill(vec![])
            },
        ] {
            let err = bad.validate().expect_err("refused");
            assert_eq!(err.reason, reason::INVALID_FIELD, "{err}");
        }
        let big = "x".repeat(MAX_SKILL_BYTES + 1);
        let err = skill(vec![("big", &big)]).validate().expect_err("too big");
        assert_eq!(err.reason, reason::SKILL_TOO_LARGE);
    }
}
