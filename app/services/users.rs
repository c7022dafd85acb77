//! Users: registration, lookup, updates. Passwords are hashed with argon2 (through the
//! bounded [`Passwords`]) and never leave this module.

use arbor::ApiError;
use serde::{Deserialize, Serialize};

use super::passwords::Passwords;
use crate::db::{is_unique_violation, new_id, now_ms, Db, DbResultExt};

/// A user as every API shows it: no password hash, ever.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Opaque id.
    pub id: String,
    /// Lower-cased email address, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `user` or `admin`.
    pub role: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl User {
    /// Whether the user is an administrator.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin.as_str()
    }
}

/// What a user may do.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages their own resources.
    #[default]
    User,
    /// Manages everything.
    Admin,
}

impl Role {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// A validated new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Plain-text password (hashed before it is stored).
    pub password: String,
    /// Role.
    pub role: Role,
}

/// Validated changes to a user.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// New name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New password.
    pub password: Option<String>,
    /// New role (administrators only; the route checks).
    pub role: Option<Role>,
}

/// One page of users.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Page {
    /// The users on this page, oldest first.
    pub users: Vec<User>,
    /// Where the page sits.
    pub pagination: Pagination,
}

/// Pagination facts.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// 1-based page number.
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Users in total.
    pub total: i64,
    /// Pages in total.
    pub total_pages: i64,
}

const COLUMNS: &str = "id, email, name, role, created_at, updated_at";

/// The user service.
#[derive(Debug, Clone)]
pub struct Users {
    db: Db,
    /// The read replica, or `db` again: lists and lookups that decide no write.
    read: Db,
    passwords: Passwords,
}

impl Users {
    /// A service writing to `db` and reading lists and lookups from `read` (a replica, or
    /// `db` again), hashing passwords through `passwords`.
    pub fn new(db: Db, read: Db, passwords: Passwords) -> Self {
        Self {
            db,
            read,
            passwords,
        }
    }

    /// Creates a user; `409 CONFLICT` if the email is taken.
    ///
    /// # Errors
    /// `409` for a duplicate email, `500` for database failures.
    pub async fn create(&self, new: NewUser) -> Result<User, ApiError> {
        let hash = self.passwords.hash(new.password).await?;
        let now = now_ms();
        let user = User {
            id: new_id(),
            email: new.email.trim().to_lowercase(),
            name: new.name.trim().to_owned(),
            role: new.role.as_str().to_owned(),
            created_at: now,
            updated_at: now,
        };
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(&hash)
        .bind(&user.role)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.db)
        .await;
        match inserted {
            Ok(_) => Ok(user),
            Err(error) if is_unique_violation(&error) => Err(email_taken()),
            Err(error) => Err(ApiError::internal_with(error)),
        }
    }

    /// A page of users, oldest first.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn list(&self, page: u32, limit: u32) -> Result<Page, ApiError> {
        let offset = i64::from(page.saturating_sub(1)) * i64::from(limit);
        let users = sqlx::query_as::<_, User>(&format!(
            "SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
        ))
        .bind(i64::from(limit))
        .bind(offset)
        .fetch_all(&self.read)
        .await
        .or_db()?;
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.read)
            .await
            .or_db()?;
        Ok(Page {
            users,
            pagination: Pagination {
                page,
                limit,
                total,
                total_pages: (total + i64::from(limit) - 1) / i64::from(limit),
            },
        })
    }

    /// The user with `id`, if any.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn find(&self, id: &str) -> Result<Option<User>, ApiError> {
        sqlx::query_as::<_, User>(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .or_db()
    }

    /// The user with `id` as the primary has it: for who is signed in, which must not lag
    /// behind a registration the way a replica can.
    ///
    /// # Errors
    /// `503`/`504`/`500` for database failures.
    pub async fn find_current(&self, id: &str) -> Result<Option<User>, ApiError> {
        sqlx::query_as::<_, User>(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db)
            .await
            .or_db()
    }

    /// Every user with one of `ids`, for batched lookups.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn find_many(&self, ids: &[String]) -> Result<Vec<User>, ApiError> {
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.find(id).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// The user whose email and password match. The same work is done whether or not the
    /// email exists, so response times do not reveal registered addresses.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn authenticate(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<User>, ApiError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(&self.db)
                .await
                .or_db()?;
        let (id, hash) = match row {
            Some(row) => (Some(row.0), row.1),
            None => (None, self.dummy_hash().await?),
        };
        let matches = self.passwords.verify(password.to_owned(), hash).await?;
        match (id, matches) {
            (Some(id), true) => self.find(&id).await,
            _ => Ok(None),
        }
    }

    /// Applies `changes`; `None` if there is no such user.
    ///
    /// # Errors
    /// `409` for a duplicate email, `500` for database failures.
    pub async fn update(&self, id: &str, changes: UserChanges) -> Result<Option<User>, ApiError> {
        let Some(current) = self.find(id).await? else {
            return Ok(None);
        };
        let hash = match changes.password {
            Some(password) => Some(self.passwords.hash(password).await?),
            None => None,
        };
        let name = changes.name.map_or(current.name, |n| n.trim().to_owned());
        let email = changes
            .email
            .map_or(current.email, |e| e.trim().to_lowercase());
        let role = changes.role.map_or(current.role, |r| r.as_str().to_owned());
        let updated = sqlx::query(
            "UPDATE users SET name = $1, email = $2, role = $3, password_hash = COALESCE($4, password_hash), updated_at = $5 WHERE id = $6",
        )
        .bind(&name)
        .bind(&email)
        .bind(&role)
        .bind(hash)
        .bind(now_ms())
        .bind(id)
        .execute(&self.db)
        .await;
        match updated {
            Ok(_) => self.find(id).await,
            Err(error) if is_unique_violation(&error) => Err(email_taken()),
            Err(error) => Err(ApiError::internal_with(error)),
        }
    }

    /// Deletes the user and, by cascade, their sessions and posts. `false` if there was none.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn delete(&self, id: &str) -> Result<bool, ApiError> {
        // Explicit deletes: SQLite only cascades with `foreign_keys` on, and this must not
        // depend on a pragma.
        let mut tx = self.db.begin().await.or_db()?;
        for table in ["sessions WHERE user_id", "posts WHERE author_id"] {
            sqlx::query(&format!("DELETE FROM {table} = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .or_db()?;
        }
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .or_db()?;
        tx.commit().await.or_db()?;
        Ok(deleted.rows_affected() > 0)
    }

    /// The id of the user with this email (compared as stored: trimmed, lower-cased), if any.
    ///
    /// # Errors
    /// A database failure.
    pub async fn id_by_email(&self, email: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.db)
            .await
    }

    /// Creates the configured administrator if no user has that email.
    ///
    /// # Errors
    /// `500` for database failures.
    pub async fn ensure_admin(&self, email: &str, password: &str) -> Result<(), ApiError> {
        let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.db)
            .await
            .or_db()?;
        if exists.is_some() {
            return Ok(());
        }
        let created = self
            .create(NewUser {
                email: email.to_owned(),
                name: "Administrator".into(),
                password: password.to_owned(),
                role: Role::Admin,
            })
            .await;
        match created {
            // Another instance starting at the same moment created it first: that is success.
            Err(error) if error.status() == arbor::http::StatusCode::CONFLICT => Ok(()),
            Err(error) => Err(error),
            Ok(_) => Ok(()),
        }
    }
}

fn email_taken() -> ApiError {
    ApiError::conflict("A user with this email already exists")
        .with_details(serde_json::json!({ "field": "email" }))
}

impl Users {
    /// A hash of a random password with the same parameters as real ones, verified when the
    /// email is unknown so that unknown and known emails cost the same.
    async fn dummy_hash(&self) -> Result<String, ApiError> {
        static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        DUMMY
            .get_or_try_init(|| self.passwords.hash(crate::db::new_id()))
            .await
            .cloned()
    }
}
