//! The verifying layer ([`verify`], [`verify_registered`]), the [`Verifiers`] registry, and
//! [`WebhookEvent`], what the handler gets.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tower::{Layer, Service};

use super::{EventIdentity, MemoryReplayStore, ReplayStore, WebhookVerifier, MAX_ID_LEN};
use crate::clock::{Clock, SystemClock};
use crate::service::take_ready;
use crate::store::{BoxFuture, Stores};
use crate::{ApiError, Json};

/// The longest replay TTL accepted (a year); larger values are clamped.
const MAX_REPLAY_TTL_SECS: u64 = 365 * 24 * 60 * 60;

/// Verifies deliveries with `verifier`: the layer for a route, a route file or a folder.
///
/// ```
/// use arbor::webhooks::{verify, Stripe, WebhookEvent};
///
/// // Event ids are remembered for a day: a replay is acknowledged, not handled again.
/// #[arbor::handler(verify(Stripe::new("whsec_test"), replay_ttl = 86_400))]
/// pub async fn POST(event: WebhookEvent) -> &'static str {
///     "ok"
/// }
/// ```
pub fn verify(verifier: impl WebhookVerifier) -> VerifyWebhookLayer {
    VerifyWebhookLayer::new(Source::Fixed(Arc::new(verifier)))
}

/// Verifies deliveries with the verifier registered as `name` on the router ([`Verifiers`]),
/// looked up per request: for secrets known only at start-up. A name that is not registered
/// answers `404`, as a URL without a route does, so a provider that is not configured is not
/// there.
///
/// ```
/// use arbor::webhooks::{verify_registered, GitHub, Verifiers, WebhookEvent};
///
/// // app/api/webhooks/github/route.rs
/// #[arbor::handler(verify_registered("github"))]
/// pub async fn POST(event: WebhookEvent) -> String {
///     format!("{} {}", event.event_type, event.id)
/// }
///
/// // at start-up, with the secret from the configuration
/// let secret = "It's a Secret to Everybody"; // std::env::var("GITHUB_WEBHOOK_SECRET")
/// let router: arbor::Router = arbor::Router::new()
///     .route("/api/webhooks/github", axum::routing::post(POST))
///     .layer(Verifiers::new().register(GitHub::new(secret)));
/// # let _ = router;
/// ```
pub fn verify_registered(name: impl Into<String>) -> VerifyWebhookLayer {
    VerifyWebhookLayer::new(Source::Registered(name.into().into()))
}

#[derive(Clone)]
enum Source {
    Fixed(Arc<dyn WebhookVerifier>),
    Registered(Arc<str>),
}

/// The verifiers of an app, by [`name`](WebhookVerifier::name), for [`verify_registered`].
/// It is a layer: `router.layer(verifiers)` puts it in every request's extensions.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone, Default)]
pub struct Verifiers {
    inner: Arc<BTreeMap<String, Arc<dyn WebhookVerifier>>>,
}

impl Verifiers {
    /// No verifiers: every [`verify_registered`] route answers `404`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `verifier` under its name, replacing one of the same name.
    #[must_use]
    pub fn register(mut self, verifier: impl WebhookVerifier) -> Self {
        Arc::make_mut(&mut self.inner).insert(verifier.name().to_owned(), Arc::new(verifier));
        self
    }

    /// The verifier registered as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn WebhookVerifier>> {
        self.inner.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.keys().map(String::as_str)
    }
}

impl fmt::Debug for Verifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl<S> Layer<S> for Verifiers {
    type Service = tower_http::add_extension::AddExtension<S, Verifiers>;

    fn layer(&self, inner: S) -> Self::Service {
        tower_http::add_extension::AddExtension::new(inner, self.clone())
    }
}

/// A delivery whose signature checked out, as [`verify`] hands it to the handler: take it as a
/// handler argument (or as `Extension<WebhookEvent>`).
///
/// Without the layer in front, taking it is a `500` (logged): the route is missing its
/// middleware.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    /// The verifier's [`name`](WebhookVerifier::name): `stripe`, `github`, ...
    pub provider: String,
    /// The provider's event id, the same on every redelivery.
    pub id: String,
    /// The event type; empty if the provider has none.
    pub event_type: String,
    /// The raw body, exactly as signed.
    pub body: Bytes,
}

impl WebhookEvent {
    /// The body parsed as JSON.
    ///
    /// # Errors
    /// `400 INVALID_JSON` or `400 VALIDATION_ERROR`, as [`Json`](crate::Json) answers.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        crate::extract::from_slice(&self.body)
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebhookEvent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<WebhookEvent>()
            .cloned()
            .ok_or_else(|| {
                tracing::error!(
                "handler takes a WebhookEvent but no arbor::webhooks::verify layer ran; is the \
                 route missing its middleware?"
            );
                ApiError::internal()
            })
    }
}

/// The layer made by [`verify`] and [`verify_registered`].
#[derive(Clone)]
#[must_use]
pub struct VerifyWebhookLayer {
    source: Source,
    clock: Arc<dyn Clock>,
    replay_ttl: Option<Duration>,
    replay_store: Arc<dyn ReplayStore>,
    /// Whether [`replay_store`](Self::replay_store) chose it (then the app's shared store is
    /// not used).
    own_store: bool,
}

impl fmt::Debug for VerifyWebhookLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verifier = match &self.source {
            Source::Fixed(verifier) => verifier.name().to_owned(),
            Source::Registered(name) => format!("registered {name:?}"),
        };
        f.debug_struct("VerifyWebhookLayer")
            .field("verifier", &verifier)
            .field("replay_ttl", &self.replay_ttl)
            .field("own_store", &self.own_store)
            .finish_non_exhaustive()
    }
}

impl VerifyWebhookLayer {
    fn new(source: Source) -> Self {
        Self {
            source,
            clock: Arc::new(SystemClock),
            replay_ttl: None,
            replay_store: Arc::new(MemoryReplayStore::default()),
            own_store: false,
        }
    }

    /// Remembers each event id for `secs` seconds: a delivery whose id was seen is answered
    /// `200 {"received":true,"duplicate":true}` without running the handler. Ids live in the
    /// app's shared store ([`Stores::webhook_replays`]), else in this layer's
    /// [`MemoryReplayStore`]. An id whose handler did not answer `2xx` is forgotten, so that the
    /// provider's retry is handled.
    ///
    /// Off by default: an app that stores events durably (see [`queue`](super)) catches
    /// replays there.
    pub fn replay_ttl(mut self, secs: u64) -> Self {
        self.replay_ttl = Some(Duration::from_secs(secs.min(MAX_REPLAY_TTL_SECS)));
        self
    }

    /// Where event ids live, instead of the app's shared store or a new [`MemoryReplayStore`];
    /// turns replay protection on (24 h) unless [`replay_ttl`](Self::replay_ttl) says otherwise.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay_store = Arc::new(store);
        self.own_store = true;
        self.replay_ttl
            .get_or_insert(Duration::from_secs(24 * 60 * 60));
        self
    }

    /// The clock that signed timestamps are compared with ([`ManualClock`] in tests).
    ///
    /// [`ManualClock`]: crate::clock::ManualClock
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn replay_store_for(&self, extensions: &http::Extensions) -> Arc<dyn ReplayStore> {
        if !self.own_store {
            if let Some(store) =
                Stores::from_extensions(extensions).and_then(Stores::webhook_replay_store)
            {
                return Arc::clone(store);
            }
        }
        Arc::clone(&self.replay_store)
    }
}

impl<S> Layer<S> for VerifyWebhookLayer {
    type Service = VerifyWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyWebhook {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}

/// The service made by [`VerifyWebhookLayer`].
#[derive(Clone)]
pub struct VerifyWebhook<S> {
    inner: S,
    config: Arc<VerifyWebhookLayer>,
}

impl<S: fmt::Debug> fmt::Debug for VerifyWebhook<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyWebhook")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Service<Request> for VerifyWebhook<S>
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

/// The one answer to every signature failure, whatever failed.
fn invalid_signature() -> Response {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_SIGNATURE",
        "Webhook signature verification failed",
    )
    .into_response()
}

fn invalid_payload(provider: &str, what: &str) -> Response {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_PAYLOAD",
        format!("The {provider} webhook {what}"),
    )
    .into_response()
}

/// The id and type within bounds.
fn checked(identity: EventIdentity) -> Result<EventIdentity, &'static str> {
    if identity.id.trim().is_empty() {
        return Err("delivery has no event id");
    }
    if identity.id.len() > MAX_ID_LEN {
        return Err("event id is longer than 255 bytes");
    }
    if identity.event_type.len() > MAX_ID_LEN {
        return Err("event type is longer than 255 bytes");
    }
    Ok(identity)
}

async fn handle<S>(
    config: Arc<VerifyWebhookLayer>,
    mut inner: S,
    request: Request,
) -> Result<Response, S::Error>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    let verifier = match &config.source {
        Source::Fixed(verifier) => Arc::clone(verifier),
        Source::Registered(name) => {
            let Some(verifiers) = request.extensions().get::<Verifiers>() else {
                tracing::error!(
                    provider = &**name,
                    "verify_registered needs the app's Verifiers: add `.layer(verifiers)` to the router"
                );
                return Ok(ApiError::internal().into_response());
            };
            match verifiers.get(name) {
                Some(verifier) => Arc::clone(verifier),
                None => return Ok(crate::routing::not_found(request.uri().clone()).await),
            }
        }
    };
    // The automatic OPTIONS answer carries nothing to sign.
    if request.method() == Method::OPTIONS {
        return inner.call(request).await;
    }
    let provider = verifier.name().to_owned();
    let (parts, body) = request.into_parts();
    // Within the route's body limit, with the same answers as Arbor's own extractors.
    let body = match crate::extract::read_body(Request::from_parts(parts.clone(), body), &()).await
    {
        Ok(body) => body,
        Err(error) => return Ok(error.into_response()),
    };
    let now = config.clock.system_time();
    if let Err(reason) = verifier.verify(&parts.headers, &body, now) {
        tracing::warn!(%provider, %reason, "webhook refused");
        return Ok(invalid_signature());
    }
    let identity = match verifier.identify(&parts.headers, &body).and_then(checked) {
        Ok(identity) => identity,
        Err(what) => {
            tracing::warn!(%provider, what, "signed webhook without a usable event id or type");
            return Ok(invalid_payload(&provider, what));
        }
    };
    let replay = match config.replay_ttl {
        None => None,
        Some(ttl) => {
            let store = config.replay_store_for(&parts.extensions);
            let key = format!("{provider}:{}", identity.id);
            match store.first_seen(key.clone(), ttl).await {
                Ok(true) => Some((store, key)),
                Ok(false) => {
                    tracing::info!(%provider, event_id = %identity.id, "duplicate webhook delivery acknowledged");
                    let duplicate = serde_json::json!({ "received": true, "duplicate": true });
                    return Ok(Json(duplicate).into_response());
                }
                Err(error) => return Ok(ApiError::from(error).into_response()),
            }
        }
    };
    let event = WebhookEvent {
        provider,
        id: identity.id,
        event_type: identity.event_type,
        body: body.clone(),
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(event);
    let response = inner.call(request).await?;
    if let Some((store, key)) = replay {
        if !response.status().is_success() {
            // Not handled: the provider retries, and the retry must not count as a replay.
            if let Err(error) = store.forget(key).await {
                tracing::error!(%error, "could not forget a failed webhook's event id; its redelivery will be acknowledged as a duplicate");
            }
        }
    }
    Ok(response)
}
