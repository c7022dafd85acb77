//! Password hashing with argon2, bounded: each hash works in about 19 MB. At most
//! `concurrency` hashes run at once, on the blocking pool; a request that cannot start one
//! within `queue_wait` is answered `503 BUSY` with `Retry-After`.
//!
//! The 19 MB are not allocated per hash: each running hash borrows a buffer from a pool that
//! never holds more than `concurrency` of them. Allocating per hash, as
//! `PasswordHasher::hash_password` does, left the freed buffers in the malloc arenas of the
//! blocking threads: a flood of 64 logins took the app from 13 MB to 244 MB even with the
//! bound (`benches/login_flood.sh`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arbor::http::{header, HeaderValue, StatusCode};
use arbor::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for its turn to hash, by default.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords, a bounded number at a time. Cheap to clone (shared permits).
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    queue_wait: Duration,
    /// Work buffers of [`Params::default`]'s size, one per hash running at most.
    buffers: Arc<Mutex<Vec<Vec<Block>>>>,
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
            buffers: Arc::default(),
        }
    }

    /// A PHC-format argon2 hash of `password` with a fresh salt (argon2id, the crate's
    /// default parameters, as `Argon2::default().hash_password` makes).
    ///
    /// # Errors
    /// `503 BUSY` when no hash could start within the queue wait; `500` if hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move |blocks| {
            let salt = SaltString::generate(&mut OsRng);
            let argon2 = Argon2::default();
            let output = blocks.hash(
                &argon2,
                password.as_bytes(),
                salt.as_salt(),
                Params::DEFAULT_OUTPUT_LEN,
            )?;
            let hash = PasswordHash {
                algorithm: Algorithm::default().ident(),
                version: Some(Version::default().into()),
                params: ParamsString::try_from(argon2.params())?,
                salt: Some(salt.as_salt()),
                hash: Some(output),
            };
            Ok(hash.to_string())
        })
        .await
    }

    /// Whether `password` matches the PHC-format `hash`, with the parameters the hash names.
    ///
    /// # Errors
    /// As [`Passwords::hash`]; `500` for a stored hash that does not parse.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        self.run(move |blocks| {
            let parsed = PasswordHash::new(&hash)?;
            let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                return Err(argon2::password_hash::Error::PhcStringField);
            };
            let version = match parsed.version {
                Some(version) => Version::try_from(version)?,
                None => Version::default(),
            };
            let argon2 = Argon2::new(
                Algorithm::try_from(parsed.algorithm)?,
                version,
                Params::try_from(&parsed)?,
            );
            let actual = blocks.hash(&argon2, password.as_bytes(), salt, expected.len())?;
            // `Output`'s comparison is constant-time.
            Ok(actual == expected)
        })
        .await
    }

    /// Runs `work` on the blocking pool with a permit and a work buffer.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut WorkBuffer) -> Result<T, argon2::password_hash::Error> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self.permit().await?;
        let buffers = Arc::clone(&self.buffers);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut buffer = WorkBuffer {
                blocks: buffers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop()
                    .unwrap_or_else(|| vec![Block::default(); Params::default().block_count()]),
                larger: Vec::new(),
            };
            let result = work(&mut buffer);
            buffers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buffer.blocks);
            result.map_err(|e| ApiError::internal_with(hashing_error(e)))
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

/// A pooled buffer of the default parameters' size, and room for a stored hash made with
/// more memory (allocated for that hash only).
struct WorkBuffer {
    blocks: Vec<Block>,
    larger: Vec<Block>,
}

impl WorkBuffer {
    /// `argon2`'s hash of `password` with `salt`, `len` bytes long, worked out in this buffer.
    fn hash(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: Salt<'_>,
        len: usize,
    ) -> Result<Output, argon2::password_hash::Error> {
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes)?;
        let blocks = self.for_params(argon2.params());
        Output::init_with(len, |out| {
            Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut *blocks)?)
        })
    }

    fn for_params(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if needed <= self.blocks.len() {
            &mut self.blocks[..needed]
        } else {
            self.larger = vec![Block::default(); needed];
            &mut self.larger
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
        assert!(!passwords
            .verify("wrong".into(), hash.clone())
            .await
            .unwrap());
        // The same hashes as the argon2 crate's own API, both ways: stored hashes keep working.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"Str0ngPassword", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let made_elsewhere = Argon2::default()
            .hash_password(b"other", &salt)
            .unwrap()
            .to_string();
        assert!(passwords
            .verify("other".into(), made_elsewhere.clone())
            .await
            .unwrap());
        assert!(!passwords
            .verify("wrong".into(), made_elsewhere)
            .await
            .unwrap());
        // A hash made with other parameters (more memory than the pooled buffers) verifies.
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(32 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"big", &salt)
        .unwrap()
        .to_string();
        assert!(passwords.verify("big".into(), bigger).await.unwrap());
        assert!(
            passwords.buffers.lock().unwrap().len() <= 1,
            "one buffer for one permit"
        );

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
