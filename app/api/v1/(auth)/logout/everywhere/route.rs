//! `POST /api/v1/logout/everywhere`: end every session of the signed-in user, on every
//! device; answers how many ended.

use arbor::auth::require_auth_with_state;
use arbor::sessions::Session;
use arbor::{ApiError, Json};
use serde_json::{json, Value};

use crate::auth::Sessions;

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn POST(session: Session) -> Result<Json<Value>, ApiError> {
    let ended = session.logout_everywhere().await?;
    Ok(Json(json!({ "ended": ended })))
}
