//! Skill versions and their files (content in `blobs`, shared with the
//! library).

use anima_core::{
    DomainError,
    error::reason,
    event::EventKind,
    model::now_micros,
    paging::PageRequest,
    skill::{NewSkill, Skill, SkillFile},
};
use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, SqliteStore, page_of};
use crate::{Page, SkillStore, StoreError, StoreResult};

fn skill_not_found(name: &str, version: &str) -> DomainError {
    let which = if version.is_empty() {
        format!("no version of skill {name:?} is published")
    } else {
        format!("skill {name:?} has no version {version:?}")
    };
    DomainError::not_found(reason::SKILL_NOT_FOUND, which)
}

macro_rules! skill_select {
    () => {
        "SELECT name, version, description, manifest, file_count, size_bytes, created_by, created_at \
         FROM skills"
    };
}

/// A listing's page key: name and version, which sort as the listing does.
fn page_key(skill: &Skill) -> String {
    format!("{}\n{}", skill.name, skill.version)
}

macro_rules! skill_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl SkillStore for $store {
            async fn publish_skill(&self, skill: NewSkill) -> StoreResult<Skill> {
                skill.validate()?;
                let (mut tx, ordered) = self.begin_ordered(&skill.name).await?;
                let size_bytes: usize = skill.files.iter().map(|file| file.content.len()).sum();
                sqlx::query(
                    "INSERT INTO skills (name, version, description, manifest, file_count, size_bytes, \
                     created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&skill.name)
                .bind(&skill.version)
                .bind(&skill.description)
                .bind(&skill.manifest)
                .bind(skill.files.len() as i64)
                .bind(size_bytes as i64)
                .bind(&skill.author)
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|err| StoreError::conflict(err, reason::SKILL_VERSION_EXISTS))?;
                for file in skill.files {
                    let (sha256, _) = Self::put_blob(&mut tx, file.content).await?;
                    sqlx::query("INSERT INTO skill_files (name, version, path, sha256) VALUES ($1, $2, $3, $4)")
                        .bind(&skill.name)
                        .bind(&skill.version)
                        .bind(&file.path)
                        .bind(sha256)
                        .execute(&mut *tx)
                        .await?;
                }
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::SkillPublished,
                    None,
                    None,
                    &format!("{}@{}", skill.name, skill.version),
                    serde_json::json!({ "name": skill.name, "version": skill.version }),
                )
                .await?;
                let published = Self::skill_in(&mut tx, &skill.name, &skill.version).await?;
                self.commit(tx).await?;
                Ok(published)
            }

            async fn get_skill(&self, name: &str, version: &str) -> StoreResult<Skill> {
                let mut conn = self.pool.acquire().await?;
                Self::skill_in(&mut conn, name, version).await
            }

            async fn list_skills(&self, name: Option<&str>, page: &PageRequest) -> StoreResult<Page<Skill>> {
                let (after_name, after_version) = page
                    .after
                    .as_deref()
                    .and_then(|key| key.split_once('\n'))
                    .unwrap_or(("", ""));
                let rows = sqlx::query(concat!(
                    skill_select!(),
                    " WHERE ($1 = '' OR name = $1) AND (name > $2 OR (name = $2 AND version > $3)) \
                     ORDER BY name, version LIMIT $4"
                ))
                .bind(name.unwrap_or(""))
                .bind(after_name)
                .bind(after_version)
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::skill, page, page_key)
            }
        }

        impl $store {

            /// A version with its files; `version` empty: the newest.
            async fn skill_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                name: &str,
                version: &str,
            ) -> StoreResult<Skill> {
                let row = sqlx::query(concat!(
                    skill_select!(),
                    " WHERE name = $1 AND ($2 = '' OR version = $2) \
                     ORDER BY created_at DESC, version DESC LIMIT 1"
                ))
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| skill_not_found(name, version))?;
                let mut skill = crate::backend::rows::skill(&row)?;
                let files = sqlx::query(
                    "SELECT f.path, b.content FROM skill_files f JOIN blobs b ON b.sha256 = f.sha256 \
                     WHERE f.name = $1 AND f.version = $2 ORDER BY f.path",
                )
                .bind(&skill.name)
                .bind(&skill.version)
                .fetch_all(&mut *conn)
                .await?;
                skill.files = files
                    .iter()
                    .map(|row| {
                        Ok(SkillFile {
                            path: row.try_get("path")?,
                            content: row.try_get("content")?,
                        })
                    })
                    .collect::<StoreResult<_>>()?;
                Ok(skill)
            }
        }
    };
}

skill_sql!(PostgresStore, sqlx::Postgres);
skill_sql!(SqliteStore, sqlx::Sqlite);
