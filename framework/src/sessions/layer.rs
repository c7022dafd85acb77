//! [`SessionManagerLayer`]: loads the request's session before the handler, saves it and sets or
//! clears its cookie after.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::{header, HeaderValue};
use tower::{Layer, Service};

use super::{
    well_formed, CookieChange, Credential, Manager, Session, SessionStore, State, Transport,
};
use crate::auth::bearer_token;
use crate::clock::Clock;
use crate::cookies::{CookieConfig, Cookies};
use crate::service::take_ready;
use crate::ApiError;

/// Middleware that gives every request a [`Session`]. See the [module docs](super).
#[derive(Clone)]
pub struct SessionManagerLayer {
    manager: Arc<Manager>,
}

impl std::fmt::Debug for SessionManagerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.manager;
        f.debug_struct("SessionManagerLayer")
            .field("cookie_name", &m.cookie_name)
            .field("transport", &m.transport)
            .field("idle", &m.idle)
            .field("absolute", &m.absolute)
            .finish_non_exhaustive()
    }
}

impl SessionManagerLayer {
    /// Sessions in `store`: cookie `arbor_session` or a bearer token, 24 hours idle, 7 days
    /// absolute, the last request written back at most once a minute.
    pub fn new(store: impl SessionStore) -> Self {
        Self::with_store(Arc::new(store))
    }

    /// Sessions in a shared store.
    pub fn with_store(store: Arc<dyn SessionStore>) -> Self {
        Self {
            manager: Arc::new(Manager::new(store)),
        }
    }

    fn map(mut self, change: impl FnOnce(&mut Manager)) -> Self {
        change(Arc::make_mut(&mut self.manager));
        self
    }

    /// A session ends this long after its last request (default 24 hours).
    #[must_use]
    pub fn idle_timeout(self, idle: Duration) -> Self {
        self.map(|m| m.idle = idle)
    }

    /// A session ends this long after it started (its login), however active (default 7
    /// days). It is also the cookie's `Max-Age`.
    #[must_use]
    pub fn absolute_timeout(self, absolute: Duration) -> Self {
        self.map(|m| m.absolute = absolute)
    }

    /// How often at most the last request is written back to the store (default a minute):
    /// the idle expiry is precise to this much, and most requests write nothing.
    #[must_use]
    pub fn touch_interval(self, interval: Duration) -> Self {
        self.map(|m| m.touch_interval = interval)
    }

    /// The session cookie's name (default `arbor_session`).
    #[must_use]
    pub fn cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.map(|m| m.cookie_name = name)
    }

    /// The session cookie's attributes. Default: the [`CookieConfig`] in the request's
    /// extensions (see [`CookieConfig::into_layer`]), else the secure defaults.
    #[must_use]
    pub fn cookie_config(self, config: CookieConfig) -> Self {
        self.map(|m| m.cookies = Some(config))
    }

    /// How clients present their token (default [`Transport::CookieOrBearer`]).
    #[must_use]
    pub fn transport(self, transport: Transport) -> Self {
        self.map(|m| m.transport = transport)
    }

    /// The clock that expiry is measured on (default the system clock); tests pass a
    /// [`ManualClock`](crate::clock::ManualClock).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        self.map(|m| {
            m.clock = Arc::new(clock);
            m.anchor();
        })
    }

    /// Ends every session of `user_id` outside a request (an administrator disabling an
    /// account, a password reset). Returns how many were ended.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn end_user_sessions(&self, user_id: impl Into<String>) -> Result<u64, ApiError> {
        Ok(self.manager.store.delete_user(user_id.into()).await?)
    }
}

impl<S> Layer<S> for SessionManagerLayer {
    type Service = SessionManager<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionManager {
            manager: Arc::clone(&self.manager),
            inner,
        }
    }
}

/// The service of [`SessionManagerLayer`].
#[derive(Clone)]
pub struct SessionManager<S> {
    manager: Arc<Manager>,
    inner: S,
}

impl<S: std::fmt::Debug> std::fmt::Debug for SessionManager<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Service<Request> for SessionManager<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let manager = Arc::clone(&self.manager);
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            let cookies = manager
                .cookies
                .clone()
                .unwrap_or_else(|| CookieConfig::of(request.extensions()));
            let state = match load(&manager, request.headers()).await {
                Ok(state) => state,
                Err(error) => return Ok(error.into_response()),
            };
            let session = Session::new(Arc::clone(&manager), state);
            request.extensions_mut().insert(session.clone());
            let response = inner.call(request).await?;
            Ok(finish(&manager, &session, &cookies, response).await)
        })
    }
}

/// The request's token, how it came, and its live record.
async fn load(manager: &Manager, headers: &http::HeaderMap) -> Result<State, ApiError> {
    let presented = match bearer_token(headers).filter(|_| manager.transport.bearer()) {
        Some(token) => Some((token.to_owned(), Credential::Bearer)),
        None if manager.transport.cookie() => Cookies::from_headers(headers)
            .value(&manager.cookie_name)
            .map(|token| (token.to_owned(), Credential::Cookie)),
        None => None,
    };
    let mut state = State {
        token: None,
        record: None,
        credential: None,
        changed: false,
        touched: false,
        cookie: CookieChange::Keep,
    };
    let Some((token, credential)) = presented else {
        return Ok(state);
    };
    let stale_cookie = if credential == Credential::Cookie {
        CookieChange::Clear
    } else {
        CookieChange::Keep
    };
    if !well_formed(&token) {
        state.cookie = stale_cookie;
        return Ok(state);
    }
    let id = super::digest(&token);
    let Some(mut record) = manager.store.load(id.clone()).await? else {
        state.cookie = stale_cookie;
        return Ok(state);
    };
    let now = manager.now_ms();
    // The record's own `expires_at` may predate a configuration change; the layer's timeouts
    // are the rule.
    let expires_at = manager
        .expiry(record.created_at, record.last_seen_at)
        .min(record.expires_at);
    if now >= expires_at {
        if let Err(error) = manager.store.delete(id).await {
            tracing::warn!(%error, "could not delete an expired session");
        }
        state.cookie = stale_cookie;
        return Ok(state);
    }
    if now.saturating_sub(record.last_seen_at) >= super::millis(manager.touch_interval) {
        record.last_seen_at = now;
        record.expires_at = manager.expiry(record.created_at, now);
        state.touched = true;
    }
    state.token = Some(token);
    state.record = Some(record);
    state.credential = Some(credential);
    Ok(state)
}

/// Saves what changed and sets or clears the cookie.
async fn finish(
    manager: &Manager,
    session: &Session,
    cookies: &CookieConfig,
    mut response: Response,
) -> Response {
    let (record, changed, touched, cookie, token) = {
        let state = session.lock();
        (
            state.record.clone(),
            state.changed,
            state.touched,
            state.cookie,
            state.token.clone(),
        )
    };
    if let Some(record) = record.filter(|_| changed || touched) {
        let now = manager.now_ms();
        let ttl = Manager::ttl(&record, now);
        if let Err(error) = manager.store.save(record, ttl).await {
            if changed {
                // The handler's answer promised a change the store did not keep.
                return ApiError::from(error).into_response();
            }
            tracing::warn!(%error, "could not record a session's last request");
        }
    }
    if !manager.transport.cookie() {
        return response;
    }
    let set_cookie = match (cookie, token) {
        (CookieChange::Set, Some(token)) => {
            let remaining = session
                .lock()
                .record
                .as_ref()
                .map(|r| r.created_at.saturating_add(super::millis(manager.absolute)))
                .map(|end| end.saturating_sub(manager.now_ms()).max(0))
                .unwrap_or_default();
            let max_age = Duration::from_millis(u64::try_from(remaining).unwrap_or(0));
            Some(cookies.session_cookie(&manager.cookie_name, token, Some(max_age)))
        }
        (CookieChange::Clear, _) => Some(cookies.removal(manager.cookie_name.clone())),
        _ => None,
    };
    if let Some(cookie) = set_cookie {
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
