//! Workflows: templates of phases, each declaring the AI skills an agent
//! needs in it. The built-in ones are defined here, in code, and seeded
//! into every database at start (read-only); custom ones live beside them.

use serde::{Deserialize, Serialize};

use crate::{
    error::{DomainError, reason},
    validate,
};

/// Most phases in one workflow.
pub const MAX_PHASES: usize = 30;
/// Most skills one phase may require.
pub const MAX_SKILLS: usize = 30;

/// A workflow template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// Fixed ids for built-ins, UUIDv7 for custom ones.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Phases in order.
    pub phases: Vec<Phase>,
    /// Built-ins are read-only.
    pub builtin: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl Workflow {
    /// The phase with this id, if the workflow has it.
    pub fn phase(&self, id: &str) -> Option<&Phase> {
        self.phases.iter().find(|phase| phase.id == id)
    }

    /// Refuses a phase id the workflow does not have.
    pub fn require_phase(&self, id: &str) -> Result<&Phase, DomainError> {
        self.phase(id).ok_or_else(|| {
            DomainError::invalid_argument(
                reason::PHASE_NOT_IN_WORKFLOW,
                format!(
                    "phase {id:?} is not in workflow {:?}; its phases are: {}",
                    self.name,
                    self.phases
                        .iter()
                        .map(|phase| phase.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }
}

/// One phase of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Slug, unique within the workflow, stable across renames.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Skills an agent needs in this phase.
    pub required_skills: Vec<SkillRef>,
}

/// A skill, by name and optional version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillRef {
    /// Skill name, a slug.
    pub name: String,
    /// Empty means the latest version.
    pub version: String,
}

/// What creating or changing a workflow needs.
#[derive(Debug, Clone, Default)]
pub struct WorkflowChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New phases (validated with [`validate_phases`]).
    pub phases: Option<Vec<Phase>>,
}

/// Id of "Standard": Analysis → Implementation → Review & Audit.
pub const STANDARD_WORKFLOW_ID: &str = "00000000-0000-7000-8000-000000000101";
/// Id of "Bugfix": Triage → Fix → Verify.
pub const BUGFIX_WORKFLOW_ID: &str = "00000000-0000-7000-8000-000000000102";

fn phase(id: &str, name: &str, skills: &[&str]) -> Phase {
    Phase {
        id: id.into(),
        name: name.into(),
        required_skills: skills
            .iter()
            .map(|skill| SkillRef {
                name: (*skill).into(),
                version: String::new(),
            })
            .collect(),
    }
}

/// The workflows every installation ships with, read-only.
pub fn builtin_workflows() -> Vec<Workflow> {
    vec![
        Workflow {
            id: STANDARD_WORKFLOW_ID.into(),
            name: "Standard".into(),
            description: "Understand the problem, build the change, then review and audit it."
                .into(),
            phases: vec![
                phase(
                    "analysis",
                    "Analysis",
                    &["code-reading", "requirements-analysis"],
                ),
                phase("implementation", "Implementation", &["coding", "testing"]),
                phase(
                    "review-audit",
                    "Review & Audit",
                    &["code-review", "security-audit"],
                ),
            ],
            builtin: true,
            created_at: 0,
            updated_at: 0,
        },
        Workflow {
            id: BUGFIX_WORKFLOW_ID.into(),
            name: "Bugfix".into(),
            description: "Reproduce and locate a defect, fix it, and prove it stays fixed.".into(),
            phases: vec![
                phase("triage", "Triage", &["debugging", "code-reading"]),
                phase("fix", "Fix", &["coding", "debugging"]),
                phase("verify", "Verify", &["testing"]),
            ],
            builtin: true,
            created_at: 0,
            updated_at: 0,
        },
    ]
}

/// A slug: lower-case letters, digits and single dashes.
pub(crate) fn is_slug(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--")
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Derives a phase id from its name: `Review & Audit` → `review-audit`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(64);
    slug.trim_end_matches('-').to_owned()
}

fn invalid(message: String) -> DomainError {
    DomainError::invalid_argument(reason::INVALID_FIELD, message)
}

/// Checks the phases of a custom workflow: 1 to [`MAX_PHASES`], named,
/// with unique slug ids (derived from the name when empty) and well-formed
/// skill references.
pub fn validate_phases(phases: Vec<Phase>) -> Result<Vec<Phase>, DomainError> {
    if phases.is_empty() || phases.len() > MAX_PHASES {
        return Err(invalid(format!(
            "a workflow needs 1 to {MAX_PHASES} phases (got {})",
            phases.len()
        )));
    }
    let mut checked: Vec<Phase> = Vec::with_capacity(phases.len());
    for mut phase in phases {
        validate::name("phase name", &phase.name)?;
        if phase.id.is_empty() {
            phase.id = slugify(&phase.name);
        }
        if !is_slug(&phase.id) {
            return Err(invalid(format!(
                "phase id {:?} must be 1-64 of a-z 0-9 and single dashes",
                phase.id
            )));
        }
        if checked.iter().any(|other| other.id == phase.id) {
            return Err(invalid(format!("phase id {:?} appears twice", phase.id)));
        }
        if phase.required_skills.len() > MAX_SKILLS {
            return Err(invalid(format!(
                "phase {:?} requires more than {MAX_SKILLS} skills",
                phase.id
            )));
        }
        for skill in &phase.required_skills {
            if !is_slug(&skill.name) {
                return Err(invalid(format!(
                    "skill name {:?} must be 1-64 of a-z 0-9 and single dashes",
                    skill.name
                )));
            }
            validate::max_chars("skill version", &skill.version, 64)?;
        }
        checked.push(phase);
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_declare_skills() {
        let builtins = builtin_workflows();
        assert!(builtins.len() >= 2);
        for workflow in builtins {
            let phases = validate_phases(workflow.phases.clone()).expect("valid");
            assert_eq!(phases, workflow.phases);
            assert!(phases.iter().all(|p| !p.required_skills.is_empty()));
        }
    }

    #[test]
    fn phase_ids_derive_from_names_and_must_be_unique() {
        assert_eq!(slugify("Review & Audit"), "review-audit");
        assert_eq!(slugify("  Ünïcode  Phase! "), "n-code-phase");
        let phases = validate_phases(vec![phase("", "Design Review", &[])]).expect("valid");
        assert_eq!(phases[0].id, "design-review");
        assert!(validate_phases(vec![]).is_err());
        assert!(validate_phases(vec![phase("a", "A", &[]), phase("a", "B", &[])]).is_err());
        assert!(validate_phases(vec![phase("Bad Id", "A", &[])]).is_err());
        assert!(validate_phases(vec![phase("a", "A", &["Bad Skill"])]).is_err());
        assert!(validate_phases(vec![phase("", "!!!", &[])]).is_err());
    }
}
