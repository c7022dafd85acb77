//! `POST /api/batch` (guide: "Use Case 4: Batch API Operations"): up to 10 operations, each
//! dispatched in-process through the app's own router with the caller's credentials, run in
//! order. See `app/batch.rs`.

use arbor::http::{header, Extensions, HeaderMap, HeaderValue, Uri};
use arbor::{ApiError, Json, State, Valid};

use crate::batch::{self, BatchRequest, BatchResponse, Caller, InBatch};
use crate::AppState;

/// Runs the operations and answers `200` with one result per operation, whatever each one
/// answered; `400 VALIDATION_ERROR` for a body that is not 1 to 10 well-formed operations.
/// A cookie-authenticated batch must come from this site, as for `/api/v1`.
#[arbor::handler(arbor::csrf())]
pub async fn POST(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
    Valid(Json(input)): Valid<Json<BatchRequest>>,
) -> Result<([(header::HeaderName, HeaderValue); 1], Json<BatchResponse>), ApiError> {
    if extensions.get::<InBatch>().is_some() {
        return Err(batch::nested());
    }
    let caller = Caller::new(&headers, &uri, &extensions);
    let results = batch::run(&state.dispatcher, &caller, input).await?;
    // Results can hold private data: never cache them.
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(results),
    ))
}
