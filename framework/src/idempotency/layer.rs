//! The idempotency layer and the service it makes.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use sha2::{Digest, Sha256};
use tower::{Layer, Service};
use tracing::Instrument;

use super::{
    Claim, IdempotencyStore, MemoryStore, Record, RecordState, Scope, StoredResponse,
    IDEMPOTENCY_KEY, MAX_KEY_LEN, MAX_TTL_SECS,
};
use crate::body::{buffer_body, Buffered};
use crate::service::take_ready;
use crate::store::{BoxFuture, OutageLog, Stores};
use crate::{ApiError, ClientIp};

/// The layer made by [`idempotency`]. Every service it makes shares its store.
#[derive(Clone)]
#[must_use]
pub struct IdempotencyLayer {
    store: Arc<dyn IdempotencyStore>,
    /// Whether [`store`](Self::store) chose it (then the app's shared store is not used).
    own_store: bool,
    outage: Arc<OutageLog>,
    ttl: Duration,
    in_flight_ttl: Duration,
    max_body_bytes: usize,
}

impl fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("ttl", &self.ttl)
            .field("in_flight_ttl", &self.in_flight_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("own_store", &self.own_store)
            .finish_non_exhaustive()
    }
}

impl IdempotencyLayer {
    pub(super) fn new() -> Self {
        Self {
            store: Arc::new(MemoryStore::default()),
            own_store: false,
            outage: Arc::new(OutageLog::new("idempotency")),
            ttl: Duration::from_secs(24 * 60 * 60),
            in_flight_ttl: Duration::from_secs(5 * 60),
            max_body_bytes: 1024 * 1024,
        }
    }

    /// How long a response is kept for replay, in seconds (86,400: 24 h, by default).
    pub fn ttl(mut self, secs: u64) -> Self {
        self.ttl = Duration::from_secs(secs.min(MAX_TTL_SECS));
        self
    }

    /// How long a claim may stay in flight, in seconds (300 by default). It only matters when
    /// a shared store outlives a crashed process: the claim then expires instead of answering
    /// `409` for the whole TTL. Set it above your longest handler time.
    pub fn in_flight_ttl(mut self, secs: u64) -> Self {
        self.in_flight_ttl = Duration::from_secs(secs.min(MAX_TTL_SECS));
        self
    }

    /// The largest request body accepted with a key (larger: `413`), and the largest response
    /// body stored (a larger response replays its status and headers only). 1 MiB by default.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Where records live, instead of the app's shared store or a new [`MemoryStore`]. Pass a
    /// clone of one store (or an `Arc`) to several routes to share it.
    pub fn store(mut self, store: impl IdempotencyStore) -> Self {
        self.store = Arc::new(store);
        self.own_store = true;
        self
    }

    /// The layer's own store, or the app's shared one when the layer has none.
    fn store_for(&self, extensions: &http::Extensions) -> Arc<dyn IdempotencyStore> {
        if !self.own_store {
            if let Some(store) =
                Stores::from_extensions(extensions).and_then(Stores::idempotency_store)
            {
                return Arc::clone(store);
            }
        }
        Arc::clone(&self.store)
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The service made by [`IdempotencyLayer`].
#[derive(Clone)]
pub struct Idempotency<S> {
    inner: S,
    config: Arc<IdempotencyLayer>,
}

impl<S: fmt::Debug> fmt::Debug for Idempotency<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Service<Request> for Idempotency<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = take_ready(&mut self.inner);
        Box::pin(handle(self.config.clone(), inner, request))
    }
}

async fn handle<S>(
    config: Arc<IdempotencyLayer>,
    mut inner: S,
    request: Request,
) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH
    ) || !request.headers().contains_key(IDEMPOTENCY_KEY)
    {
        return inner.call(request).await;
    }
    let key = match idempotency_key(request.headers()) {
        Ok(key) => key.to_owned(),
        Err(error) => return Ok(error.into_response()),
    };
    let Some(scope) = scope_of(request.extensions()) else {
        tracing::error!(
            "idempotency: no Scope and no client address; serve with arbor::serve (it records \
             the peer address) or insert arbor::idempotency::Scope in a middleware"
        );
        return Ok(ApiError::internal().into_response());
    };

    let (parts, body) = request.into_parts();
    let body = match buffer_body(body, config.max_body_bytes).await {
        Buffered::Complete(bytes) => bytes,
        Buffered::Partial { failed: true, .. } => {
            return Ok(ApiError::bad_request("the request body could not be read").into_response())
        }
        Buffered::Partial { failed: false, .. } => {
            return Ok(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!(
                    "a request with an Idempotency-Key may have a body of at most {} bytes",
                    config.max_body_bytes
                ),
            )
            .into_response())
        }
    };
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    let method = parts.method.as_str();
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let store_key = digest(&[
        scope.as_bytes(),
        method.as_bytes(),
        uri.path().as_bytes(),
        key.as_bytes(),
    ]);
    let fingerprint = digest(&[method.as_bytes(), target.as_bytes(), &body]);
    let store = config.store_for(&parts.extensions);
    let request = Request::from_parts(parts, Body::from(body));

    let claim = store
        .claim(store_key.clone(), fingerprint.clone(), config.in_flight_ttl)
        .await;
    if claim.is_ok() {
        config.outage.recovered();
    }
    match claim {
        Err(error) => {
            config.outage.failed(&error);
            Ok(unavailable())
        }
        Ok(Claim::Existing(record)) if record.fingerprint != fingerprint => Ok(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used with a different request; \
             send a new key for a new operation",
        )
        .into_response()),
        Ok(Claim::Existing(Record {
            state: RecordState::InFlight,
            ..
        })) => Ok(ApiError::new(
            StatusCode::CONFLICT,
            "IDEMPOTENCY_IN_FLIGHT",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        .into_response()),
        Ok(Claim::Existing(Record {
            state: RecordState::Completed(stored),
            ..
        })) => Ok(stored.replay()),
        Ok(Claim::Acquired) => {
            let guard = ClaimGuard {
                store,
                key: Some(store_key.clone()),
            };
            // Called here, while `inner` is the service that was polled ready.
            let response = inner.call(request);
            let run = finish(config, guard, response, store_key, fingerprint);
            // Spawned, so that the handler and the recording of its response finish even if
            // the client goes away: its retry then gets the replay.
            match tokio::spawn(run.instrument(tracing::Span::current())).await {
                Ok(result) => result,
                Err(error) => {
                    tracing::error!(%error, "idempotency: the handler panicked; the key is released");
                    Ok(ApiError::internal().into_response())
                }
            }
        }
    }
}

/// Runs the claimed request and records its response.
async fn finish<F, E>(
    config: Arc<IdempotencyLayer>,
    mut guard: ClaimGuard,
    response: F,
    store_key: String,
    fingerprint: String,
) -> Result<Response, E>
where
    F: Future<Output = Result<Response, E>>,
{
    // An error drops `guard`, which releases the key.
    let response = response.await?;
    if response.status().is_server_error() {
        guard.release().await;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let (stored, body) = match buffer_body(body, config.max_body_bytes).await {
        Buffered::Complete(bytes) => (
            StoredResponse {
                status: parts.status,
                headers: parts.headers.clone(),
                body: bytes.clone(),
            },
            Body::from(bytes),
        ),
        Buffered::Partial { body, failed: true } => {
            // The response broke while being produced: treat it as a failure.
            guard.release().await;
            return Ok(Response::from_parts(parts, body));
        }
        Buffered::Partial {
            body,
            failed: false,
        } => {
            // Too large to keep: the handler ran, so the key must not run it again; a replay
            // gets the status and headers without the body.
            let mut headers = parts.headers.clone();
            headers.remove(header::CONTENT_LENGTH);
            headers.remove(header::CONTENT_TYPE);
            let stored = StoredResponse {
                status: parts.status,
                headers,
                body: Bytes::new(),
            };
            (stored, body)
        }
    };
    if let Err(error) = guard
        .store
        .complete(store_key, fingerprint, stored, config.ttl)
        .await
    {
        // The handler's effect happened: leave the key in flight until its in-flight TTL
        // rather than let a retry run it again.
        tracing::error!(%error, "idempotency: could not record a response");
    }
    guard.disarm();
    Ok(Response::from_parts(parts, body))
}

/// Releases a claimed key unless disarmed, also when dropped (an error, a panic).
struct ClaimGuard {
    store: Arc<dyn IdempotencyStore>,
    key: Option<String>,
}

impl ClaimGuard {
    async fn release(&mut self) {
        if let Some(key) = self.key.take() {
            if let Err(error) = self.store.release(key).await {
                tracing::error!(%error, "idempotency: could not release a key");
            }
        }
    }

    fn disarm(&mut self) {
        self.key = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release(key).await {
                    tracing::error!(%error, "idempotency: could not release a key");
                }
            });
        }
    }
}

fn unavailable() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "IDEMPOTENCY_UNAVAILABLE",
        "idempotency keys cannot be honoured right now; retry later with the same key",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    .into_response()
}

/// The key, if it is one header of 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_IDEMPOTENCY_KEY",
            format!(
                "send one Idempotency-Key header of 1 to {MAX_KEY_LEN} visible ASCII characters \
                 (a UUID is a good key)"
            ),
        )
    };
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(invalid());
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    value.to_str().map_err(|_| invalid())
}

/// `scope:<Scope>` or `ip:<client address>`.
fn scope_of(extensions: &http::Extensions) -> Option<String> {
    if let Some(Scope(scope)) = extensions.get::<Scope>() {
        return Some(format!("scope:{scope}"));
    }
    ClientIp::from_extensions(extensions).map(|ip| format!("ip:{ip}"))
}

/// SHA-256 of the parts, each length-prefixed so that no two lists collide, in hex.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_visible_ascii_of_bounded_length() {
        let check = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(value).unwrap());
            idempotency_key(&headers).map(str::to_owned)
        };
        assert_eq!(check(b"order-1_A~").unwrap(), "order-1_A~");
        assert!(check(&[b'k'; 255]).is_ok());
        assert!(check(&[b'k'; 256]).is_err());
        assert!(check(b"").is_err());
        assert!(check(b"has space").is_err());
        assert!(check("cl\u{e9}".as_bytes()).is_err());
        let mut two = HeaderMap::new();
        two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert!(idempotency_key(&two).is_err());
    }

    #[test]
    fn digests_are_unambiguous() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]).len(), 64);
    }
}
