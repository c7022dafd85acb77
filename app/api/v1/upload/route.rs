//! `POST /api/v1/upload` (multipart, field `file`): streams the file to storage chunk by chunk —
//! never the whole file in memory — with progress events, then `complete` with the URL that
//! serves it back. `400` without a file, `413` over the limit, `415` for a type not allowed.

use arbor::auth::{require_auth_with_state, Auth};
use arbor::upload::{Upload, UploadLimits};
use arbor::{ApiError, Request, Response, State};
use serde_json::json;

use crate::auth::{CurrentUser, Sessions};
use crate::AppState;

/// What may be uploaded.
const ALLOWED: [&str; 7] = [
    "image/*",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/json",
    "application/zip",
    "application/octet-stream",
];

#[arbor::handler(require_auth_with_state::<Sessions>)]
pub async fn POST(
    State(state): State<AppState>,
    Auth(_current): Auth<CurrentUser>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = UploadLimits::new()
        .max_size(state.config.upload_max_bytes)
        .allow(ALLOWED);
    // Refusals (400/413/415) are answered before the stream starts, with their own status.
    let upload = Upload::accept(request, &limits).await?;
    let storage = state.uploads.clone();
    Ok(arbor::progress::stream(move |progress| async move {
        let stored = upload
            .save(&*storage, |update| {
                if let Some(percent) = update.percent {
                    progress.try_processing(percent);
                }
            })
            .await?;
        Ok(json!({
            "id": stored.id,
            "url": format!("/api/v1/uploads/{}", stored.id),
            "name": stored.file_name,
            "size": stored.size,
            "contentType": stored.content_type,
        }))
    }))
}

/// A multipart body with the file in `file`; its progress, then where it is served.
pub fn describe_POST(operation: &mut arbor::openapi::DocumentBuilder) {
    operation.multipart_body(&[("file", true)]);
    operation.error(400, "FILE_REQUIRED");
    operation.progress_stream::<serde_json::Value>();
}
