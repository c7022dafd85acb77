//! Accounts: what sign-up and login take and give, and password hashes (argon2id with the
//! crate's default parameters, off the async threads: a hash takes tens of milliseconds on
//! purpose).

use arbor::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use validator::Validate;

#[derive(Deserialize, Serialize, Validate, schemars::JsonSchema)]
pub struct Credentials {
    #[validate(email, length(max = 320))]
    pub email: String,
    #[validate(length(min = 10, max = 256))]
    pub password: String,
}

#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct SignedIn {
    pub user_id: i64,
    /// For API clients (`Authorization: Bearer`); browsers use the session cookie.
    pub token: String,
}

/// A PHC-format hash of `password`, with a fresh salt.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(ApiError::internal_with)
    })
    .await
    .map_err(ApiError::internal_with)?
}

/// Whether `password` matches `hash`.
pub async fn verify_password(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let hash = PasswordHash::new(&hash).map_err(ApiError::internal_with)?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok())
    })
    .await
    .map_err(ApiError::internal_with)?
}
