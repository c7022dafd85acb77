//! Idempotency keys: a retried `POST`/`PUT`/`PATCH` is answered with the first attempt's
//! response instead of running the handler again.
//!
//! ```
//! use arbor::idempotency::idempotency;
//! use arbor::http::StatusCode;
//! use arbor::Json;
//! use serde_json::{json, Value};
//!
//! // app/api/payments/route.rs
//! #[arbor::handler(idempotency())]
//! pub async fn POST(Json(payment): Json<Value>) -> (StatusCode, Json<Value>) {
//!     // charge the card once, however often the client retries
//!     (StatusCode::CREATED, Json(json!({ "charged": payment["amount"] })))
//! }
//! ```
//!
//! A client sends `Idempotency-Key: <unique string>` with the request. The first request with a
//! key runs the handler and its response is kept for the TTL (24 h by default); a retry with the
//! same key and the same request gets that response again, with `Idempotent-Replayed: true`.
//!
//! | Situation | Answer |
//! |---|---|
//! | first request with the key | the handler runs; a non-`5xx` response is stored |
//! | same key, same method, path and body | the stored response, `Idempotent-Replayed: true` |
//! | same key, different body (or query) | `422 IDEMPOTENCY_KEY_REUSED` |
//! | same key while the first is still running | `409 IDEMPOTENCY_IN_FLIGHT`, `Retry-After: 1` |
//! | the handler answered `5xx` | not stored: the key is released, the client may retry |
//! | key empty, longer than 255, or not visible ASCII | `400 INVALID_IDEMPOTENCY_KEY` |
//! | body over [`max_body_bytes`](IdempotencyLayer::max_body_bytes) | `413 PAYLOAD_TOO_LARGE` |
//! | the store fails or is full | `503 IDEMPOTENCY_UNAVAILABLE` |
//!
//! Keys belong to a client: the [`Scope`] an upstream middleware inserted (such as the
//! authenticated user), or else the client's IP ([`crate::ClientIp`]). They are also scoped by
//! method and path, so the same key on two endpoints names two operations. Once claimed, the
//! handler runs to the end even if the client disconnects, so that its retry finds the result.
//!
//! Storage is pluggable through [`IdempotencyStore`]. A layer given no store of its own uses the
//! app's shared store ([`Stores`](crate::store::Stores), for example Redis, so that a key has one
//! effect across instances), and otherwise its own [`MemoryStore`], for a single process. See
//! `docs/idempotency.md`.
//!
//! The module is laid out by role: `layer.rs` (the layer and its service), `store.rs` (what a
//! store keeps, [`IdempotencyStore`] and [`MemoryStore`]).

mod layer;
mod store;

use http::HeaderName;

pub use layer::{Idempotency, IdempotencyLayer};
pub use store::{Claim, IdempotencyStore, MemoryStore, Record, RecordState, StoredResponse};

pub use crate::clock::{Clock, ManualClock, SystemClock};
/// The future type of [`IdempotencyStore`] methods.
pub use crate::store::{BoxFuture, StoreError};

/// `Idempotency-Key`, the request header that names an operation.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `Idempotent-Replayed: true`, on a response that was stored and is sent again.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The longest TTL accepted (ten years); larger values are clamped.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// Whose keys these are. Insert one from a middleware that runs before [`idempotency`] (listed
/// before it) to scope keys by user instead of by client IP:
///
/// ```
/// use arbor::idempotency::{idempotency, Scope};
/// use arbor::{Next, Request, Response};
///
/// pub async fn require_user(mut request: Request, next: Next) -> Response {
///     let user_id = "user-42"; // from the verified session or token
///     request.extensions_mut().insert(Scope(user_id.to_owned()));
///     next.run(request).await
/// }
///
/// # pub type State = (); // the generated `routes` module's, around every route file
/// # pub mod route {
/// # use super::*;
/// #[arbor::handler(require_user, idempotency())]
/// pub async fn POST() -> &'static str {
///     "created"
/// }
/// # }
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(pub String);

/// Idempotency for `POST`, `PUT` and `PATCH` requests that carry an `Idempotency-Key`
/// (others pass through untouched): responses kept 24 h (in the app's shared store, else in a
/// [`MemoryStore`]), request bodies up to 1 MiB.
///
/// ```
/// use arbor::idempotency::idempotency;
///
/// #[arbor::handler(idempotency(ttl = 3600))]
/// pub async fn POST(body: String) -> String {
///     format!("created {body}")
/// }
/// ```
pub fn idempotency() -> IdempotencyLayer {
    IdempotencyLayer::new()
}
