//! `/api/_internal`: an escaped underscore (`%5F`) makes a URL segment that starts with `_`
//! without making the folder private.

use arbor::Json;
use serde_json::{json, Value};

pub async fn GET() -> Json<Value> {
    Json(json!({ "status": "ok", "routes": crate::routes::ROUTES.len() }))
}
