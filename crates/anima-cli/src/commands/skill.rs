//! `anima skill …`: versioned skill bundles that workflow phases declare.

use std::path::{Path, PathBuf};

use anima_proto::v1::{self as pb};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::{
    client::{GlobalArgs, session_for},
    output,
};

use super::time;

/// `anima skill …`
#[derive(Subcommand)]
pub enum SkillCommand {
    /// List the published skill versions.
    List {
        #[command(flatten)]
        global: GlobalArgs,
        /// Only this skill's versions.
        name: Option<String>,
    },
    /// Show a version (the newest unless --version); with --output, write
    /// its manifest and files into that directory.
    #[command(disable_version_flag = true)]
    Get {
        #[command(flatten)]
        global: GlobalArgs,
        /// Skill name.
        name: String,
        /// The version [default: the newest].
        #[arg(long)]
        version: Option<String>,
        /// A directory to write the bundle into (created; must be empty).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Publish a directory as a skill version (server administrators). Its
    /// `manifest.json` (a JSON object) names the skill and version unless
    /// --name/--version do; every other file is part of the bundle.
    #[command(disable_version_flag = true)]
    Publish {
        #[command(flatten)]
        global: GlobalArgs,
        /// The bundle's directory.
        dir: PathBuf,
        /// The skill's name [default: "name" in manifest.json].
        #[arg(long)]
        name: Option<String>,
        /// Its version [default: "version" in manifest.json].
        #[arg(long)]
        version: Option<String>,
    },
}

fn skill_json(skill: &pb::Skill) -> Value {
    json!({
        "name": skill.name,
        "version": skill.version,
        "description": skill.description,
        "manifest": serde_json::from_str::<Value>(&skill.manifest_json).unwrap_or(Value::Null),
        "files": skill.files.iter().map(|file| json!({
            "path": file.path,
            "size": file.content.len(),
        })).collect::<Vec<_>>(),
        "file_count": skill.file_count,
        "size_bytes": skill.size_bytes,
        "created_by": skill.created_by,
        "create_time": time(&skill.create_time),
    })
}

const SKILL_HEADER: &[&str] = &[
    "NAME",
    "VERSION",
    "FILES",
    "BYTES",
    "PUBLISHED",
    "DESCRIPTION",
];

output::impl_row!(pb::Skill, SKILL_HEADER, skill_json, skill_row);

fn skill_row(skill: &pb::Skill) -> Vec<String> {
    vec![
        skill.name.clone(),
        skill.version.clone(),
        skill.file_count.to_string(),
        skill.size_bytes.to_string(),
        time(&skill.create_time),
        skill.description.clone(),
    ]
}

/// Every file under `dir` but the manifest, as bundle paths.
fn bundle_files(dir: &Path) -> anyhow::Result<Vec<pb::SkillFile>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in
            std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)?
                .to_str()
                .with_context(|| format!("{} is not UTF-8", path.display()))?
                .to_owned();
            if relative == "manifest.json" {
                continue;
            }
            let content =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            files.push(pb::SkillFile {
                path: relative,
                content,
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Writes a bundle into `dir`, which must not hold anything yet.
fn write_bundle(dir: &Path, skill: &pb::Skill) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    std::fs::write(dir.join("manifest.json"), &skill.manifest_json)?;
    for file in &skill.files {
        let relative = anima_core::path::contained(&file.path)
            .with_context(|| format!("file name {:?} must be a plain relative path", file.path))?;
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.content)?;
    }
    Ok(())
}

/// `anima skill …`
pub async fn skill(command: SkillCommand) -> anyhow::Result<()> {
    match command {
        SkillCommand::List { global, name } => {
            let session = session_for(&global).await?;
            let skills = session
                .list(pb::ListSkillsRequest {
                    name: name.clone().unwrap_or_default(),
                    ..Default::default()
                })
                .await?;
            output::list(global.json, &skills);
        }
        SkillCommand::Get {
            global,
            name,
            version,
            output: target,
        } => {
            let session = session_for(&global).await?;
            let skill = session
                .call(pb::GetSkillRequest {
                    name,
                    version: version.unwrap_or_default(),
                })
                .await?;
            if let Some(dir) = &target {
                write_bundle(dir, &skill)?;
            }
            if global.json {
                output::json(&skill_json(&skill));
            } else {
                output::table(SKILL_HEADER, &[skill_row(&skill)]);
                for file in &skill.files {
                    println!("  {} ({} bytes)", file.path, file.content.len());
                }
            }
        }
        SkillCommand::Publish {
            global,
            dir,
            name,
            version,
        } => {
            let manifest_path = dir.join("manifest.json");
            let manifest_json = std::fs::read_to_string(&manifest_path)
                .with_context(|| format!("reading {}", manifest_path.display()))?;
            let manifest: Value = serde_json::from_str(&manifest_json)
                .with_context(|| format!("{} is not JSON", manifest_path.display()))?;
            let field = |key: &str| manifest.get(key).and_then(Value::as_str).map(str::to_owned);
            let name = name
                .or_else(|| field("name"))
                .context("name the skill: --name, or \"name\" in manifest.json")?;
            let version = version
                .or_else(|| field("version"))
                .context("give a version: --version, or \"version\" in manifest.json")?;
            let files = bundle_files(&dir)?;
            let session = session_for(&global).await?;
            let published = session
                .call(pb::PublishSkillRequest {
                    name,
                    version,
                    description: field("description").unwrap_or_default(),
                    manifest_json,
                    files,
                })
                .await?;
            output::one(global.json, &published);
        }
    }
    Ok(())
}
