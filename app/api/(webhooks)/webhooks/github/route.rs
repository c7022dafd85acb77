//! `POST /api/webhooks/github`: a GitHub delivery, its `X-Hub-Signature-256` already checked by
//! the `(webhooks)` folder middleware. Answers at once; the event is processed in the
//! background, and a redelivery of the same `X-GitHub-Delivery` id is acknowledged without being
//! processed again.

use arbor::{ApiError, Extension, Json, State};
use serde_json::{json, Value};

use crate::webhooks::{Accepted, VerifiedEvent};
use crate::AppState;

pub async fn POST(
    State(state): State<AppState>,
    Extension(event): Extension<VerifiedEvent>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(match state.webhooks.accept(event).await? {
        Accepted::New => json!({ "received": true }),
        Accepted::Duplicate => json!({ "received": true, "duplicate": true }),
    }))
}
