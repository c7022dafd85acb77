//! `/api/v1/docs` and `/api/v1/docs/a/b`: an optional catch-all is absent when nothing matched,
//! which is not the same as an empty list.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::cache::{CacheTags, Invalidator, Revalidate};
use arbor::http::StatusCode;
use arbor::{ApiError, Json, Path, ResultExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::{CurrentUser, Sessions};

/// Segment config, as in Next.js: `GET` answers are cached for a minute (`X-Cache: HIT|MISS`),
/// CDNs may serve them stale for five more while they refetch, and the route may take up to 5
/// seconds.
pub const REVALIDATE: Revalidate = Revalidate::every(60).stale_while_revalidate(300);
pub const MAX_DURATION: u64 = 5;

/// Every page is tagged, so that one call drops them all.
const DOCS_TAG: &str = "docs";

#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct Params {
    pub slug: Option<Vec<String>>,
}

pub async fn GET(Path(params): Path<Params>) -> (CacheTags, Json<Value>) {
    let page = match params.slug {
        None => json!({ "page": "index" }),
        Some(slug) => json!({ "page": slug.join("/"), "slug": slug }),
    };
    (CacheTags::new([DOCS_TAG]), Json(page))
}

/// Drops cached answers on every instance; admins only. On a page, that page (Next.js's
/// `revalidatePath`); on `/api/v1/docs` itself, every page (`revalidateTag`).
#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn DELETE(
    Auth(current): Auth<CurrentUser>,
    Path(params): Path<Params>,
    invalidate: Invalidator,
) -> Result<StatusCode, ApiError> {
    current.require_admin()?;
    match params.slug {
        None => invalidate.tag(DOCS_TAG).await.or_internal()?,
        Some(slug) => {
            invalidate
                .path(&format!("/api/v1/docs/{}", slug.join("/")))
                .await
                .or_internal()?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
