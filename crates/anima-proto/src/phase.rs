//! Workflow phases as people type and read them: `Name:skill,skill@version`
//! (a skill without a version means its newest). The CLI's `--phase` and
//! the desktop's workflow form share this spelling.

use crate::v1 as pb;

/// A phase from `Name` or `Name:skill,skill@version`; its id is left for
/// the server to derive from the name.
pub fn parse(text: &str) -> pb::Phase {
    let (name, skills) = text.split_once(':').unwrap_or((text, ""));
    pb::Phase {
        id: String::new(),
        name: name.trim().to_owned(),
        required_skills: skills
            .split(',')
            .map(str::trim)
            .filter(|skill| !skill.is_empty())
            .map(|skill| {
                let (name, version) = skill.split_once('@').unwrap_or((skill, ""));
                pb::SkillRef {
                    name: name.to_owned(),
                    version: version.to_owned(),
                }
            })
            .collect(),
    }
}

/// A skill reference as typed: `name` or `name@version`.
pub fn skill_label(skill: &pb::SkillRef) -> String {
    match skill.version.as_str() {
        "" => skill.name.clone(),
        version => format!("{}@{version}", skill.name),
    }
}

/// A phase's skills as typed.
pub fn skill_labels(phase: &pb::Phase) -> Vec<String> {
    phase.required_skills.iter().map(skill_label).collect()
}

/// A phase as [`parse`] reads it.
pub fn format(phase: &pb::Phase) -> String {
    let skills = skill_labels(phase);
    if skills.is_empty() {
        phase.name.clone()
    } else {
        format!("{}:{}", phase.name, skills.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_round_trip_through_their_spelling() {
        let phase = parse(" Fix : coding@2.0, debugging ,");
        assert_eq!(phase.name, "Fix");
        assert_eq!(skill_labels(&phase), ["coding@2.0", "debugging"]);
        assert_eq!(format(&phase), "Fix:coding@2.0,debugging");
        assert_eq!(parse(&format(&phase)), phase);
        assert_eq!(format(&parse("Verify")), "Verify");
    }
}
