//! `/api/v1/whoami`: a fn-level middleware chain, first listed outermost: the timing header
//! is added even when authentication ends the request early.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::Json;
use serde_json::{json, Value};

use crate::auth::{CurrentUser, Sessions};
use crate::middleware::server_timing;

#[arbor::handler(server_timing, require_auth_with_state::<Sessions>)]
pub async fn GET(Auth(current): Auth<CurrentUser>) -> Json<Value> {
    Json(json!({ "id": current.user.id, "email": current.user.email, "role": current.user.role }))
}
