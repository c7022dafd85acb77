//! Server-side sessions. The client holds a random token (cookie or bearer); the database
//! holds only its SHA-256, so a leaked table cannot be replayed.

use arbor::{ApiError, ResultExt};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::{now_ms, Db};
use crate::services::users::User;

/// The session service.
#[derive(Debug, Clone)]
pub struct Sessions {
    db: Db,
    ttl_ms: i64,
}

impl Sessions {
    /// Sessions in `db` that last `ttl_secs`.
    pub fn new(db: Db, ttl_secs: i64) -> Self {
        Self {
            db,
            ttl_ms: ttl_secs * 1000,
        }
    }

    /// Starts a session for `user_id`; returns the token to give the client.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn create(&self, user_id: &str) -> Result<String, ApiError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(digest(&token))
        .bind(user_id)
        .bind(now)
        .bind(now + self.ttl_ms)
        .execute(&self.db)
        .await
        .or_internal()?;
        Ok(token)
    }

    /// The user of a live session.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn resolve(&self, token: &str) -> Result<Option<User>, ApiError> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        sqlx::query_as::<_, User>(
            "SELECT u.id, u.email, u.name, u.role, u.created_at, u.updated_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.expires_at > $2",
        )
        .bind(digest(token))
        .bind(now_ms())
        .fetch_optional(&self.db)
        .await
        .or_internal()
    }

    /// Ends a session (idempotent).
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn delete(&self, token: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(digest(token))
            .execute(&self.db)
            .await
            .or_internal()?;
        Ok(())
    }

    /// The session lifetime in seconds, for the cookie's `Max-Age`.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_ms / 1000
    }
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
