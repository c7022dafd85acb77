//! Posts with optimistic locking: the version check and the write are one statement, so with
//! many concurrent writers holding the same version exactly one wins.

use arbor::ApiError;
use serde::{Deserialize, Serialize};

use crate::db::{new_id, now_ms, Db, DbResultExt};

/// A post.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Post {
    /// Opaque id.
    pub id: String,
    /// The owner.
    pub author_id: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Incremented by every write; the `ETag`.
    pub version: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// Changes to a post (`PUT` sets both, `PATCH` either).
#[derive(Debug, Clone, Default)]
pub struct PostChanges {
    /// New title.
    pub title: Option<String>,
    /// New body.
    pub body: Option<String>,
}

/// Why an update did not happen.
#[derive(Debug)]
pub enum UpdateError {
    /// No such post.
    NotFound,
    /// Someone else wrote first.
    Stale {
        /// The version now stored.
        current_version: i64,
    },
    /// Anything else.
    Failed(ApiError),
}

const COLUMNS: &str = "id, author_id, title, body, version, created_at, updated_at";

/// The post service.
#[derive(Debug, Clone)]
pub struct Posts {
    db: Db,
    /// The read replica, or `db` again: lists and lookups.
    read: Db,
}

impl Posts {
    /// A service writing to `db` and reading lists and lookups from `read` (a replica, or
    /// `db` again).
    pub fn new(db: Db, read: Db) -> Self {
        Self { db, read }
    }

    /// Creates a post at version 1.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn create(&self, author_id: &str, title: &str, body: &str) -> Result<Post, ApiError> {
        let now = now_ms();
        let post = Post {
            id: new_id(),
            author_id: author_id.to_owned(),
            title: title.to_owned(),
            body: body.to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(&format!(
            "INSERT INTO posts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&post.id)
        .bind(&post.author_id)
        .bind(&post.title)
        .bind(&post.body)
        .bind(post.version)
        .bind(post.created_at)
        .bind(post.updated_at)
        .execute(&self.db)
        .await
        .or_db()?;
        Ok(post)
    }

    /// The post with `id`.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn find(&self, id: &str) -> Result<Option<Post>, ApiError> {
        sqlx::query_as::<_, Post>(&format!("SELECT {COLUMNS} FROM posts WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .or_db()
    }

    /// Posts, newest first, optionally by one author.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn list(
        &self,
        author_id: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<Post>, ApiError> {
        let query = match author_id {
            Some(_) => format!("SELECT {COLUMNS} FROM posts WHERE author_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"),
            None => format!("SELECT {COLUMNS} FROM posts ORDER BY created_at DESC, id LIMIT $1 OFFSET $2"),
        };
        let mut query = sqlx::query_as::<_, Post>(&query);
        if let Some(author) = author_id {
            query = query.bind(author.to_owned());
        }
        query
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.read)
            .await
            .or_db()
    }

    /// Writes `changes` if the stored version is still `expected_version`, in one statement.
    ///
    /// # Errors
    /// [`UpdateError::NotFound`], [`UpdateError::Stale`] with the current version, or a
    /// database failure.
    pub async fn update(
        &self,
        id: &str,
        expected_version: i64,
        changes: PostChanges,
    ) -> Result<Post, UpdateError> {
        // RETURNING gives back exactly the row this statement wrote (SQLite >= 3.35 and
        // PostgreSQL both support it), never a later writer's.
        let updated = sqlx::query_as::<_, Post>(&format!(
            "UPDATE posts SET title = COALESCE($1, title), body = COALESCE($2, body), version = version + 1, updated_at = $3 \
             WHERE id = $4 AND version = $5 RETURNING {COLUMNS}"
        ))
        .bind(changes.title)
        .bind(changes.body)
        .bind(now_ms())
        .bind(id)
        .bind(expected_version)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| UpdateError::Failed(ApiError::internal_with(e)))?;
        if let Some(post) = updated {
            return Ok(post);
        }
        match self.find(id).await.map_err(UpdateError::Failed)? {
            None => Err(UpdateError::NotFound),
            Some(post) => Err(UpdateError::Stale {
                current_version: post.version,
            }),
        }
    }

    /// Deletes the post. `false` if there was none.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn delete(&self, id: &str) -> Result<bool, ApiError> {
        let deleted = sqlx::query("DELETE FROM posts WHERE id = $1")
            .bind(id)
            .execute(&self.db)
            .await
            .or_db()?;
        Ok(deleted.rows_affected() > 0)
    }
}
