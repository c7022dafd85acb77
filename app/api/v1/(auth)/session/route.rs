//! `/api/v1/session`: inside the `(auth)` group, so its folder middleware applies.

use arbor::{Extension, Json};
use serde_json::{json, Value};

use crate::middleware::{require_token, Principal};

#[arbor::handler(require_token)]
pub async fn GET(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({ "subject": principal.subject }))
}
