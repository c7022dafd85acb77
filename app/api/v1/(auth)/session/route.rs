//! `GET /api/v1/session`: who is signed in. Inside the `(auth)` group, so its folder
//! middleware (`Cache-Control: no-store`) applies.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::Json;
use serde_json::{json, Value};

use crate::auth::{Credential, CurrentUser, Sessions};

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn GET(Auth(current): Auth<CurrentUser>) -> Json<Value> {
    let via = match current.credential {
        Credential::Bearer => "bearer",
        Credential::Cookie => "cookie",
    };
    Json(json!({ "user": current.user, "credential": via }))
}
