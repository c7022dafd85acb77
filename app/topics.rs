//! Event-bus topics of the reference app, and the events on them: typed, so that the routes
//! that publish them and the contract of `GET /api/v1/events` agree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The topic of one user's events (`/api/v1/events`): `user:{id}`.
pub fn user_topic(user: impl fmt::Display) -> String {
    format!("user:{user}")
}

/// `connected`: the stream is open, for this user.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connected {
    pub user_id: String,
}

/// `post.updated`: one of the user's posts changed.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PostUpdated {
    /// The post.
    pub id: String,
    /// Its version after the change.
    pub version: i64,
    /// Its title after the change.
    pub title: String,
    /// Who changed it (the author, or an administrator).
    pub by: String,
}

/// `webhook`: a provider's event that concerns the user was processed.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookNotice {
    /// `stripe` or `github`.
    pub provider: String,
    /// The provider's event id.
    pub event_id: String,
    /// The provider's event type.
    #[serde(rename = "type")]
    pub event_type: String,
}
