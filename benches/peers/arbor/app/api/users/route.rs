//! `POST /api/users`: a JSON body checked with `Valid`, under the rules every peer applies:
//! an email address as the regex `^[^\s@]+@[^\s@]+\.[^\s@]+$` has it, a name of 2 to 100
//! characters, a password of at least 8. `201` with `{id, email, name}`; `400` for malformed
//! JSON, a missing field or a broken rule. Nothing is stored: the id is a counter.

use std::sync::atomic::{AtomicU64, Ordering};

use arbor::http::StatusCode;
use arbor::{Json, Valid};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Deserialize, Validate)]
pub struct CreateUser {
    #[validate(custom(function = "email_address"))]
    email: String,
    #[validate(length(min = 2, max = 100))]
    name: String,
    #[validate(length(min = 8))]
    password: String,
}

#[derive(Serialize)]
pub struct Created {
    id: u64,
    email: String,
    name: String,
}

pub async fn POST(Valid(Json(input)): Valid<Json<CreateUser>>) -> (StatusCode, Json<Created>) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let created = Created {
        id,
        email: input.email,
        name: input.name,
    };
    (StatusCode::CREATED, Json(created))
}

/// The peers' rule, not `validator`'s `email` (which accepts `a@localhost`, for one): some
/// text, `@`, then a domain with a `.` that is neither its first nor its last character; no
/// whitespace and no second `@` anywhere. The same code as the axum peer's `valid_email`.
fn email_address(email: &str) -> Result<(), ValidationError> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && !email.chars().any(char::is_whitespace)
                && domain.len() >= 3
                && domain.as_bytes()[1..domain.len() - 1].contains(&b'.')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ValidationError::new("email").with_message("must be a valid email address".into()))
    }
}
