//! The HTTP side: the `(webhooks)` folder middleware, and the handler every provider's route
//! file exports as its `POST`.

use arbor::http::Method;
use arbor::{ApiError, Extension, IntoResponse, Json, Next, Request, Response, State};
use axum::body::Body;
use serde_json::{json, Value};

use super::{Accepted, Provider, VerifiedEvent};
use crate::AppState;

/// `POST /api/webhooks/{provider}`: a delivery whose signature the `(webhooks)` middleware
/// already checked. Answers at once; the event is processed in the background, and a
/// redelivery of the same event id is acknowledged without being processed again. Each
/// provider's route file is `pub use crate::webhooks::receive as POST;`.
///
/// # Errors
/// `500` if the event cannot be stored.
pub async fn receive(
    State(state): State<AppState>,
    Extension(event): Extension<VerifiedEvent>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(match state.webhooks.accept(event).await? {
        Accepted::New => json!({ "received": true }),
        Accepted::Duplicate => json!({ "received": true, "duplicate": true }),
    }))
}

/// The `(webhooks)` folder middleware: `404` for a disabled provider, `400` for a missing or
/// wrong signature, and otherwise the request, with its body intact and a [`VerifiedEvent`]
/// in its extensions. The provider is the last segment of the URL. `OPTIONS` passes through;
/// every other method must be signed.
pub async fn verify(request: Request, next: Next) -> Response {
    match verified(request).await {
        Ok(request) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn verified(request: Request) -> Result<Request, ApiError> {
    let Some(state) = request.extensions().get::<AppState>().cloned() else {
        tracing::error!("AppState extension missing: build the router with arbor_app::app");
        return Err(ApiError::internal());
    };
    let path = request.uri().path().to_owned();
    let Some(provider) = path.rsplit('/').next().and_then(Provider::parse) else {
        tracing::error!(%path, "a route under (webhooks) whose last segment is not a webhook provider");
        return Err(ApiError::internal());
    };
    if !state.webhooks.is_enabled(provider) {
        return Err(ApiError::not_found(format!("no route for {path}")));
    }
    if request.method() == Method::OPTIONS {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    // Within the route's body limit, with the same answers as Arbor's own extractors.
    let bytes = arbor::extract::read_body(Request::from_parts(parts.clone(), body), &()).await?;
    let event = state
        .webhooks
        .authenticate(provider, &parts.headers, &bytes)?;
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(event);
    Ok(request)
}
