//! `GET /api/hello`.

use arbor::Json;
use serde_json::{json, Value};

/// Says hello.
pub async fn GET() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}
