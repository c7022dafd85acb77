//! `/api/v1/items/{id}`: a dynamic segment, typed.

use arbor::{Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Params {
    id: u64,
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    Json(json!({ "id": params.id, "name": format!("item {}", params.id) }))
}

pub async fn DELETE(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({ "deleted": id }))
}
