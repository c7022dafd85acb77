//! `/api/hello`: the smallest route, and a JSON echo.

use arbor::{Json, Valid};
use serde::Deserialize;
use serde_json::{json, Value};
use validator::Validate;

pub async fn GET() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}

#[derive(Deserialize, Validate, schemars::JsonSchema)]
pub struct Greeting {
    #[validate(length(min = 1, max = 50))]
    name: String,
}

pub async fn POST(Valid(Json(greeting)): Valid<Json<Greeting>>) -> Json<Value> {
    Json(json!({ "message": format!("hello, {}", greeting.name) }))
}
