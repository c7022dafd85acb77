//! `GET /api/hello`: the smallest JSON answer.

use arbor::Json;
use serde_json::{json, Value};

pub async fn GET() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}
