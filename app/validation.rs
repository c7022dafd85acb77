//! Request schemas shared by routes (and by GraphQL), validated with `validator`. They are
//! `Serialize` too, for typed clients (`arbor::client`).

use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::services::users::Role;

/// `POST /api/v1/users` and registration: the guide's rules.
#[derive(Debug, Deserialize, Serialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// A valid email address.
    #[validate(email)]
    pub email: String,
    /// 2 to 100 characters.
    #[validate(length(min = 2, max = 100))]
    pub name: String,
    /// At least 8 characters with a lower-case letter, an upper-case letter and a digit.
    #[validate(length(min = 8, max = 256), custom(function = "strong_password"))]
    // `strong_password`'s rule, for the contract (a `custom` rule has no schema of its own).
    #[schemars(pattern(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])"))]
    pub password: String,
    /// `user` (default) or `admin`.
    #[serde(default)]
    pub role: Role,
}

/// `PATCH /api/v1/users/[id]`.
#[derive(Debug, Deserialize, Serialize, Validate, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// A valid email address.
    #[validate(email)]
    pub email: Option<String>,
    /// 2 to 100 characters.
    #[validate(length(min = 2, max = 100))]
    pub name: Option<String>,
    /// As for [`CreateUser::password`].
    #[validate(length(min = 8, max = 256), custom(function = "strong_password"))]
    #[schemars(pattern(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])"))]
    pub password: Option<String>,
    /// Administrators only.
    pub role: Option<Role>,
}

/// `?page=&limit=` on list endpoints.
#[derive(Debug, Deserialize, Serialize, Validate, schemars::JsonSchema)]
pub struct PageQuery {
    /// 1-based page, default 1.
    #[validate(range(min = 1, max = 100_000))]
    #[serde(default = "first_page")]
    pub page: u32,
    /// Page size 1 to 100, default 20.
    #[validate(range(min = 1, max = 100))]
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn first_page() -> u32 {
    1
}

fn default_limit() -> u32 {
    20
}

/// Lower case, upper case and a digit, as the guide's regex `^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)`.
fn strong_password(password: &str) -> Result<(), ValidationError> {
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    if has(char::is_ascii_lowercase) && has(char::is_ascii_uppercase) && has(char::is_ascii_digit) {
        Ok(())
    } else {
        Err(ValidationError::new("password_strength").with_message(
            "must contain an uppercase letter, a lowercase letter and a number".into(),
        ))
    }
}
