//! `/api/v1/whoami`: a fn-level middleware chain, first listed outermost.

use arbor::{Extension, Json};
use serde_json::{json, Value};

use crate::middleware::{require_token, server_timing, Principal};

#[arbor::handler(server_timing, require_token)]
pub async fn GET(Extension(principal): Extension<Principal>) -> Json<Value> {
    Json(json!({ "subject": principal.subject }))
}
