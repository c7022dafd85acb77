//! `GET /api/users/{id}`: one dynamic segment, read with a typed `Path`.

use arbor::{Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct Params {
    id: String, // named after the folder `[id]`: checked at build time
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    let name = format!("user {}", params.id);
    Json(json!({ "id": params.id, "name": name }))
}
