//! `/api/v1/docs` and `/api/v1/docs/a/b`: an optional catch-all is absent when nothing matched,
//! which is not the same as an empty list.

use arbor::auth::{require_auth, Auth};
use arbor::http::StatusCode;
use arbor::{ApiError, Json, Path, State};
use axum::extract::OriginalUri;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{CurrentUser, Sessions};
use crate::AppState;

/// Segment config, as in Next.js: `GET` answers are cached for a minute (`X-Cache: HIT|MISS`)
/// and the route may take up to 5 seconds.
pub const REVALIDATE: u64 = 60;
pub const MAX_DURATION: u64 = 5;

#[derive(Deserialize)]
pub struct Params {
    slug: Option<Vec<String>>,
}

pub async fn GET(Path(params): Path<Params>) -> Json<Value> {
    match params.slug {
        None => Json(json!({ "page": "index" })),
        Some(slug) => Json(json!({ "page": slug.join("/"), "slug": slug })),
    }
}

/// Drops the page's cached answer on every instance (Next.js's `revalidatePath`); admins only.
#[arbor::handler(require_auth(Sessions))]
pub async fn DELETE(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    OriginalUri(uri): OriginalUri,
) -> Result<StatusCode, ApiError> {
    current.require_admin()?;
    arbor::cache::invalidate(&state.stores, uri.path())
        .await
        .map_err(ApiError::internal_with)?;
    Ok(StatusCode::NO_CONTENT)
}
