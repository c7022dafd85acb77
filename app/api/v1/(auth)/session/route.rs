//! `GET /api/v1/session`: who is signed in. Inside the `(auth)` group, so its folder
//! middleware (`Cache-Control: no-store`) applies.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::Json;
use serde::Serialize;

use crate::auth::{Credential, CurrentUser, Sessions};
use crate::services::users::User;

/// The signed-in user, and how the request proved it.
#[derive(Serialize, schemars::JsonSchema)]
pub struct SessionInfo {
    user: User,
    credential: Via,
}

/// The credential the request carried.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `Authorization: Bearer ..`.
    Bearer,
    /// The session cookie.
    Cookie,
}

/// Who is signed in.
#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn GET(Auth(current): Auth<CurrentUser>) -> Json<SessionInfo> {
    let credential = match current.credential {
        Credential::Bearer => Via::Bearer,
        Credential::Cookie => Via::Cookie,
    };
    Json(SessionInfo {
        user: current.user,
        credential,
    })
}
