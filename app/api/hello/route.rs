//! `/api/hello`: the smallest route, and a JSON echo.

use arbor::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub async fn GET() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}

#[derive(Deserialize, Serialize)]
pub struct Greeting {
    name: String,
}

pub async fn POST(Json(greeting): Json<Greeting>) -> Json<Value> {
    Json(json!({ "message": format!("hello, {}", greeting.name) }))
}
