//! Event-bus topics of the reference app.

use std::fmt;

/// The topic of one user's events (`/api/v1/events`): `user:{id}`.
pub fn user_topic(user: impl fmt::Display) -> String {
    format!("user:{user}")
}
