//! `GET /api/v1/events`: the signed-in user's live events as Server-Sent Events — a
//! `connected` event, then e.g. `post.updated` and `webhook`, a heartbeat comment every 30 s,
//! resume with `Last-Event-ID`, and cleanup when the client goes away (guide Step 4).

use arbor::auth::{require_auth_with_state, Auth};
use arbor::openapi::DocumentBuilder;
use arbor::sse::Sse;
use arbor::{ApiError, Response, State};

use crate::auth::{CurrentUser, Sessions};
use crate::topics::{user_topic, Connected, PostUpdated, WebhookNotice};
use crate::AppState;

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn GET(
    State(state): State<AppState>,
    Auth(current): Auth<CurrentUser>,
    sse: Sse,
) -> Result<Response, ApiError> {
    let user_id = current.user.id.clone();
    sse.connected(&Connected {
        user_id: user_id.clone(),
    })
    .on_close(move || tracing::debug!(user_id, "event stream closed"))
    .subscribe(&state.events, &user_topic(&current.user.id))
    .await
}

/// The stream's event types, for the contract (the handler's types say only that it streams).
pub fn describe_GET(operation: &mut DocumentBuilder) {
    operation.event::<Connected>("connected");
    operation.event::<PostUpdated>("post.updated");
    operation.event::<WebhookNotice>("webhook");
}
