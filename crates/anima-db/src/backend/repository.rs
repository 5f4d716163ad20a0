//! A project's repositories.

use anima_core::{
    DomainError,
    error::reason,
    event::EventKind,
    id::new_id,
    model::now_micros,
    paging::PageRequest,
    planning::Actor,
    repository::{NewRepository, Repository},
};
use async_trait::async_trait;
use serde_json::json;

use super::{PostgresStore, SqliteStore, page_of};
use crate::{Page, RepositoryStore, StoreError, StoreResult};

fn repository_not_found(id: &str) -> DomainError {
    DomainError::not_found(
        reason::REPOSITORY_NOT_FOUND,
        format!("no repository with id {id}"),
    )
}

macro_rules! repository_select {
    () => {
        "SELECT id, project_id, name, forge, remote_url, web_base, owner, repo, default_branch, \
         credential, created_by, created_at FROM repositories"
    };
}

macro_rules! repository_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl RepositoryStore for $store {
            async fn list_repositories(
                &self,
                project_id: &str,
                page: &PageRequest,
            ) -> StoreResult<Page<Repository>> {
                let rows = sqlx::query(concat!(
                    repository_select!(),
                    " WHERE project_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(project_id)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::repository, page, |repository| {
                    repository.id.clone()
                })
            }

            async fn get_repository(&self, id: &str) -> StoreResult<Repository> {
                let mut conn = self.pool.acquire().await?;
                Self::repository_in(&mut conn, id).await
            }

            async fn add_repository(&self, repository: NewRepository) -> StoreResult<Repository> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let ordered = Self::writable_project(&mut tx, &repository.project_id).await?;
                let id = new_id();
                sqlx::query(
                    "INSERT INTO repositories (id, project_id, name, forge, remote_url, web_base, \
                     owner, repo, default_branch, credential, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&id)
                .bind(&repository.project_id)
                .bind(&repository.name)
                .bind(repository.forge.as_str())
                .bind(&repository.remote_url)
                .bind(&repository.location.web_base)
                .bind(&repository.location.owner)
                .bind(&repository.location.name)
                .bind(&repository.default_branch)
                .bind(repository.credential.as_deref())
                .bind(repository.created_by.to_json())
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|error| StoreError::conflict(error, reason::REPOSITORY_NAME_TAKEN))?;
                // Which secret reads it is not news for every reader.
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::RepositoryAdded,
                    Some(&repository.project_id),
                    None,
                    &id,
                    json!({
                        "name": repository.name,
                        "forge": repository.forge.as_str(),
                        "by": repository.created_by.to_json(),
                    }),
                )
                .await?;
                let added = Self::repository_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(added)
            }

            async fn remove_repository(&self, id: &str, by: &Actor) -> StoreResult<()> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let repository = Self::repository_in(&mut tx, id).await?;
                let ordered = Self::writable_project(&mut tx, &repository.project_id).await?;
                sqlx::query("DELETE FROM repositories WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record_for(
                    &mut tx,
                    ordered,
                    EventKind::RepositoryRemoved,
                    Some(&repository.project_id),
                    None,
                    id,
                    json!({"name": repository.name, "by": by.to_json()}),
                )
                .await?;
                self.commit(tx).await
            }
        }

        impl $store {
            async fn repository_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Repository> {
                let sql = concat!(repository_select!(), " WHERE id = $1");
                Self::one_by_id(conn, sql, id, crate::backend::rows::repository, || {
                    repository_not_found(id)
                })
                .await
            }
        }
    };
}

repository_sql!(PostgresStore, sqlx::Postgres);
repository_sql!(SqliteStore, sqlx::Sqlite);
