//! `/api/v1/files/a/b/c`: a catch-all gives the decoded segments as a list.

use arbor::{Json, Path};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Params {
    path: Vec<String>,
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    Json(json!({ "segments": params.path }))
}
