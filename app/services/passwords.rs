//! Password hashing with argon2, bounded: each hash holds about 19 MB for its duration, so
//! without a bound a flood of logins takes memory in proportion to the flood (13 logins in a
//! row once took the app from 10 MB to 221 MB). At most `concurrency` hashes run at once, on
//! the blocking pool; a request that cannot start one within `queue_wait` is answered
//! `503 BUSY` with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use arbor::http::{header, HeaderValue, StatusCode};
use arbor::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for its turn to hash, by default.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords, a bounded number at a time. Cheap to clone (shared permits).
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    queue_wait: Duration,
}

impl Default for Passwords {
    /// One hash per core, and up to [`DEFAULT_QUEUE_WAIT`] for one.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores, DEFAULT_QUEUE_WAIT)
    }
}

impl Passwords {
    /// At most `concurrency` (at least one) hashes at once; a caller waits at most
    /// `queue_wait` for its turn.
    pub fn new(concurrency: usize, queue_wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            queue_wait,
        }
    }

    /// A PHC-format argon2 hash of `password` with a fresh salt.
    ///
    /// # Errors
    /// `503 BUSY` when no hash could start within the queue wait; `500` if hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let permit = self.permit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| ApiError::internal_with(hashing_error(e)))
        })
        .await?
    }

    /// Whether `password` matches the PHC-format `hash`.
    ///
    /// # Errors
    /// As [`Passwords::hash`]; `500` for a stored hash that does not parse.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let permit = self.permit().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let parsed =
                PasswordHash::new(&hash).map_err(|e| ApiError::internal_with(hashing_error(e)))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await?
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let waited = tokio::time::timeout(self.queue_wait, self.permits.clone().acquire_owned());
        match waited.await {
            Ok(Ok(permit)) => Ok(permit),
            // Elapsed, or (never: the semaphore is not closed) closed.
            Ok(Err(_)) | Err(_) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
                "Too many sign-ins at once; try again shortly",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))),
        }
    }
}

fn hashing_error(error: argon2::password_hash::Error) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_the_bound_answers_busy() {
        let passwords = Passwords::new(1, Duration::ZERO);
        let hash = passwords.hash("Str0ngPassword".into()).await.unwrap();
        assert!(passwords
            .verify("Str0ngPassword".into(), hash.clone())
            .await
            .unwrap());
        assert!(!passwords.verify("wrong".into(), hash).await.unwrap());

        // The one permit taken: the next caller is refused at once, with `Retry-After`.
        let held = passwords.permits.clone().acquire_owned().await.unwrap();
        let busy = passwords.hash("x".into()).await.unwrap_err();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.code(), "BUSY");
        let response = arbor::IntoResponse::into_response(busy);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        drop(held);
        assert!(passwords.hash("x".into()).await.is_ok(), "free again");
    }
}
