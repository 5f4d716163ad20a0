//! Akhs, the personas AI contributions speak as.

use super::*;

macro_rules! akh_sql {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl AkhStore for $store {
            async fn list_akhs(&self, page: &PageRequest) -> StoreResult<Page<Akh>> {
                let rows = sqlx::query(concat!(
                    "SELECT id, name, description, avatar_color, created_at, updated_at FROM akhs",
                    " WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(&self.pool)
                .await?;
                page_of(&rows, crate::backend::rows::akh, page, |akh| akh.id.clone())
            }

            async fn get_akh(&self, id: &str) -> StoreResult<Akh> {
                let mut conn = self.pool.acquire().await?;
                Self::akh_in(&mut conn, id).await
            }

            async fn create_akh(&self, name: &str, description: &str, avatar_color: &str) -> StoreResult<Akh> {
                let id = new_id();
                let (mut tx, ordered) = self.begin_ordered(&id).await?;
                sqlx::query(
                    "INSERT INTO akhs (id, name, description, avatar_color, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5)",
                )
                .bind(&id)
                .bind(name)
                .bind(description)
                .bind(avatar_color)
                .bind(now_micros())
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::conflict(e, reason::AKH_NAME_TAKEN))?;
                Self::record(&mut tx, ordered, EventKind::AkhCreated, None, &id, serde_json::json!({ "name": name })).await?;
                let akh = Self::akh_in(&mut tx, &id).await?;
                self.commit(tx).await?;
                Ok(akh)
            }

            async fn update_akh(&self, id: &str, changes: AkhChanges) -> StoreResult<Akh> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                let current = Self::akh_in(&mut tx, id).await?;
                sqlx::query("UPDATE akhs SET name = $2, description = $3, avatar_color = $4, updated_at = $5 WHERE id = $1")
                    .bind(id)
                    .bind(changes.name.as_ref().unwrap_or(&current.name))
                    .bind(changes.description.as_ref().unwrap_or(&current.description))
                    .bind(changes.avatar_color.as_ref().unwrap_or(&current.avatar_color))
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict(e, reason::AKH_NAME_TAKEN))?;
                Self::record(&mut tx, ordered, EventKind::AkhUpdated, None, id, serde_json::json!({})).await?;
                let akh = Self::akh_in(&mut tx, id).await?;
                self.commit(tx).await?;
                Ok(akh)
            }

            async fn delete_akh(&self, id: &str) -> StoreResult<()> {
                let (mut tx, ordered) = self.begin_ordered(id).await?;
                Self::akh_in(&mut tx, id).await?;
                sqlx::query("DELETE FROM akhs WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::record(&mut tx, ordered, EventKind::AkhDeleted, None, id, serde_json::json!({})).await?;
                self.commit(tx).await
            }
        }

        impl $store {

            pub(in crate::backend) async fn akh_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: &str,
            ) -> StoreResult<Akh> {
                let sql = concat!(
                    "SELECT id, name, description, avatar_color, created_at, updated_at FROM akhs",
                    " WHERE id = $1"
                );
                Self::one_by_id(conn, sql, id, crate::backend::rows::akh, || akh_not_found(id)).await
            }
        }
    };
}

akh_sql!(PostgresStore, sqlx::Postgres);
akh_sql!(SqliteStore, sqlx::Sqlite);
