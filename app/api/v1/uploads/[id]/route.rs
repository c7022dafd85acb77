//! `GET /api/v1/uploads/{id}`: serves an uploaded file back, streamed, with its content type.

use arbor::{ApiError, Path, Response, State};

use crate::AppState;

pub async fn GET(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    arbor::upload::serve_file(&*state.uploads, &id).await
}
