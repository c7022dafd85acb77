//! `GET /api/v1/events`: the signed-in user's live events as Server-Sent Events — a
//! `connected` event, then e.g. `post.updated` and `webhook`, a heartbeat comment every 30 s,
//! resume with `Last-Event-ID`, and cleanup when the client goes away (guide Step 4).

use crate::topics::user_topic;
use arbor::auth::{require_auth_with_state, Auth};
use arbor::sse::Sse;
use arbor::{ApiError, Response, State};
use serde_json::json;

use crate::auth::{CurrentUser, Sessions};
use crate::AppState;

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn GET(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    sse: Sse,
) -> Result<Response, ApiError> {
    let user_id = current.user.id.clone();
    sse.connected(&json!({ "userId": user_id }))
        .on_close(move || tracing::debug!(user_id, "event stream closed"))
        .subscribe(&state.events, &user_topic(&current.user.id))
        .await
}
