//! Cross-site request forgery protection for cookie sessions: an unsafe request (`POST`,
//! `PUT`, `PATCH`, `DELETE`...) that carries a session cookie and no bearer token must come
//! from this site, else `403 CSRF_FAILED`.
//!
//! ```
//! use arbor::csrf::{csrf, CsrfToken};
//! use arbor::{Json, Router};
//! use axum::routing::{get, post};
//!
//! // app/api/v1/middleware.rs:
//! //     arbor::middleware!(arbor::csrf());
//! // or with options:
//! let layer = csrf()
//!     .trusted_origin("https://admin.example.com")
//!     // For clients that send no `Origin`: echo the `arbor_csrf` cookie in `X-CSRF-Token`.
//!     .double_submit_token();
//!
//! async fn token(CsrfToken(token): CsrfToken) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "csrf_token": token }))
//! }
//!
//! let router: Router = Router::new()
//!     .route("/api/csrf-token", get(token))
//!     .route("/api/posts", post(|| async { "created" }))
//!     .layer(layer);
//! # let _ = router;
//! ```
//!
//! **How "from this site" is decided**, first answer wins:
//!
//! 1. with the token option, an `X-CSRF-Token` header equal to the `arbor_csrf` cookie (a
//!    value another site can neither read nor set through the browser) passes;
//! 2. `Origin`, sent by browsers on every cross-origin request and on same-origin unsafe
//!    ones: its host must be the request's `Host`, or the origin one of the trusted ones,
//!    or one that the app's CORS policy admits with credentials
//!    ([`CredentialedOrigins`](crate::cors::CredentialedOrigins)); `Origin: null` never
//!    passes;
//! 3. `Sec-Fetch-Site` (browsers that send it also send `Origin`; kept for proxies that drop
//!    `Origin`): `same-origin` and `none` (typed by the user) pass;
//! 4. `Referer`, whose origin is checked like `Origin`;
//! 5. nothing of the above: refused. A browser always sends one of them, so a client that
//!    sends none is a script with a stolen cookie or a misconfigured client; give it the
//!    token option or a bearer token.
//!
//! Requests without the session cookie are not checked (a browser's cross-site request then
//! carries no credential), nor are bearer-token requests (browsers never attach one on their
//! own), nor safe methods, which must not change anything.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::auth::bearer_token;
use crate::cookies::{Cookie, CookieConfig, Cookies, SameSite};
use crate::cors::CredentialedOrigins;
use crate::service::take_ready;
use crate::ApiError;

/// The token option's cookie.
pub const TOKEN_COOKIE: &str = "arbor_csrf";
/// The token option's request header.
pub const TOKEN_HEADER: &str = "x-csrf-token";

/// CSRF protection with the defaults: session cookie `arbor_session`, no trusted origin
/// besides the request's own, no token. See the [module docs](self).
pub fn csrf() -> CsrfLayer {
    CsrfLayer {
        config: Arc::new(Config {
            session_cookies: vec![DEFAULT_SESSION_COOKIE.to_owned()],
            trusted_origins: Vec::new(),
            token: false,
        }),
    }
}

const DEFAULT_SESSION_COOKIE: &str = "arbor_session";

#[derive(Debug, Clone)]
struct Config {
    session_cookies: Vec<String>,
    /// Lowercase `scheme://host[:port]`, default ports removed.
    trusted_origins: Vec<String>,
    token: bool,
}

/// See [`csrf`].
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    config: Arc<Config>,
}

impl CsrfLayer {
    /// The cookies whose presence makes a request a cookie session (default
    /// `arbor_session`); replaces the default.
    #[must_use]
    pub fn session_cookies<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: Into<String>,
    {
        Arc::make_mut(&mut self.config).session_cookies =
            names.into_iter().map(Into::into).collect();
        self
    }

    /// An origin (`https://admin.example.com`) allowed besides the request's own, such as a
    /// front end on another host. An origin that does not parse is ignored, with a warning.
    #[must_use]
    pub fn trusted_origin(mut self, origin: &str) -> Self {
        match normalize_origin(origin) {
            Some(origin) => Arc::make_mut(&mut self.config).trusted_origins.push(origin),
            None => tracing::warn!(origin, "not an origin (scheme://host[:port]); ignored"),
        }
        self
    }

    /// The token option (double submit): every response without it sets the `arbor_csrf`
    /// cookie (readable by the page's scripts, `SameSite=Strict`), handlers can hand its value
    /// out through [`CsrfToken`], and an unsafe request whose `X-CSRF-Token` header equals
    /// the cookie passes whatever its other headers say.
    #[must_use]
    pub fn double_submit_token(mut self) -> Self {
        Arc::make_mut(&mut self.config).token = true;
        self
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            config: Arc::clone(&self.config),
            inner,
        }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct Csrf<S> {
    config: Arc<Config>,
    inner: S,
}

/// The refusal: `403 CSRF_FAILED` in the standard shape.
#[derive(Debug, Clone, Copy)]
pub struct CsrfRejection;

impl IntoResponse for CsrfRejection {
    fn into_response(self) -> Response {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF_FAILED",
            "Cross-site request refused: send it from this site (Origin), with the CSRF token, or with a bearer token",
        )
        .into_response()
    }
}

impl<S> Service<Request> for Csrf<S>
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
        let config = Arc::clone(&self.config);
        let jar = Cookies::from_headers(request.headers());
        let cookie_token = jar
            .value(TOKEN_COOKIE)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let checked = is_unsafe(request.method())
            && config
                .session_cookies
                .iter()
                .any(|name| jar.value(name).is_some())
            && bearer_token(request.headers()).is_none();
        if checked && !allowed(&config, &request, cookie_token.as_deref()) {
            return Box::pin(async { Ok(CsrfRejection.into_response()) });
        }
        let mut new_token = None;
        if config.token {
            let token = cookie_token.unwrap_or_else(|| {
                let token = random_token();
                new_token = Some(token.clone());
                token
            });
            request.extensions_mut().insert(CsrfToken(token));
        }
        let cookies = CookieConfig::of(request.extensions());
        let mut inner = take_ready(&mut self.inner);
        Box::pin(async move {
            let mut response = inner.call(request).await?;
            if let Some(token) = new_token {
                let mut cookie = Cookie::new(TOKEN_COOKIE, token);
                cookie.set_http_only(false);
                cookie.set_same_site(SameSite::Strict);
                let cookie = cookies.apply(cookie);
                if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            Ok(response)
        })
    }
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn allowed(config: &Config, request: &Request, cookie_token: Option<&str>) -> bool {
    let headers = request.headers();
    if config.token {
        let sent = headers
            .get(HeaderName::from_static(TOKEN_HEADER))
            .map(HeaderValue::as_bytes);
        if let (Some(sent), Some(expected)) = (sent, cookie_token) {
            if bool::from(sent.ct_eq(expected.as_bytes())) {
                return true;
            }
        }
    }
    let host = request_host(request);
    if let Some(origin) = header_str(headers, &header::ORIGIN) {
        let cors = request.extensions().get::<Arc<CredentialedOrigins>>();
        return origin_allowed(config, cors.map(AsRef::as_ref), origin, host.as_deref());
    }
    if let Some(site) = header_str(headers, &HeaderName::from_static("sec-fetch-site")) {
        return matches!(site.trim(), "same-origin" | "none");
    }
    if let Some(referer) = header_str(headers, &header::REFERER) {
        return referer_origin(referer)
            .is_some_and(|origin| origin_allowed(config, None, &origin, host.as_deref()));
    }
    false
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request's own authority: `Host`, or the URI's (HTTP/2), lowercase, default port
/// removed.
fn request_host(request: &Request) -> Option<String> {
    let host = header_str(request.headers(), &header::HOST)
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))?;
    let host = host.trim().to_ascii_lowercase();
    Some(strip_default_port(&host).to_owned())
}

fn strip_default_port(authority: &str) -> &str {
    authority
        .strip_suffix(":80")
        .or_else(|| authority.strip_suffix(":443"))
        .unwrap_or(authority)
}

/// `scheme://host[:port]`, lowercase, default port removed; `None` for anything else
/// (`null`, paths, no scheme).
fn normalize_origin(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || authority.is_empty() || authority.contains('/') {
        return None;
    }
    Some(format!("{scheme}://{}", strip_default_port(authority)))
}

fn referer_origin(referer: &str) -> Option<String> {
    let (scheme, rest) = referer.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    normalize_origin(&format!("{scheme}://{authority}"))
}

fn origin_allowed(
    config: &Config,
    cors: Option<&CredentialedOrigins>,
    origin: &str,
    host: Option<&str>,
) -> bool {
    let Some(origin) = normalize_origin(origin) else {
        return false;
    };
    if config.trusted_origins.contains(&origin) {
        return true;
    }
    if cors.is_some_and(|cors| {
        cors.0
            .iter()
            .any(|admitted| normalize_origin(admitted).as_ref() == Some(&origin))
    }) {
        return true;
    }
    let authority = origin.split_once("://").map(|(_, a)| a);
    host.is_some_and(|host| authority == Some(host))
}

/// The request's CSRF token under [`CsrfLayer::double_submit_token`]: put it in the page (or
/// let scripts read the `arbor_csrf` cookie) and send it back in `X-CSRF-Token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            tracing::error!("`CsrfToken` extracted without csrf().double_submit_token()");
            ApiError::internal()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test::TestClient;
    use axum::routing::post;
    use axum::Router;

    fn client(layer: CsrfLayer) -> TestClient {
        TestClient::new(
            Router::new()
                .route(
                    "/posts",
                    post(|| async { "created" }).get(|| async { "list" }),
                )
                .layer(layer),
        )
    }

    const SESSION: &str = "arbor_session=abc";

    #[tokio::test]
    async fn cross_origin_cookie_posts_are_refused_and_same_origin_ones_pass() {
        let client = client(csrf());
        let cases: [(&[(&str, &str)], u16); 9] = [
            (&[("origin", "https://evil.example")], 403),
            (&[("origin", "http://app.test")], 200),
            (&[("origin", "https://APP.test:443")], 200),
            (&[("origin", "null")], 403),
            (&[("sec-fetch-site", "same-origin")], 200),
            (&[("sec-fetch-site", "cross-site")], 403),
            (&[("referer", "http://app.test/page?x=1")], 200),
            (&[("referer", "http://app.test.evil.example/")], 403),
            (&[], 403),
        ];
        for (headers, status) in cases {
            let mut request = client
                .post("/posts")
                .header("host", "app.test")
                .header("cookie", SESSION);
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let response = request.send().await;
            assert_eq!(response.status().as_u16(), status, "{headers:?}");
            if status == 403 {
                assert_eq!(response.json::<serde_json::Value>()["error"], "CSRF_FAILED");
            }
        }
    }

    #[tokio::test]
    async fn only_unsafe_cookie_requests_without_bearer_tokens_are_checked() {
        let client = client(csrf());
        let evil = |request: crate::test::TestRequest| {
            request
                .header("host", "app.test")
                .header("origin", "https://evil.example")
        };
        assert_eq!(
            evil(client.post("/posts")).send().await.status(),
            200,
            "no cookie"
        );
        assert_eq!(
            evil(client.get("/posts").header("cookie", SESSION))
                .send()
                .await
                .status(),
            200,
            "safe method"
        );
        assert_eq!(
            evil(client.post("/posts").header("cookie", SESSION))
                .header("authorization", "Bearer t")
                .send()
                .await
                .status(),
            200,
            "bearer"
        );
        assert_eq!(
            evil(client.post("/posts").header("cookie", "theme=dark"))
                .send()
                .await
                .status(),
            200,
            "not a session cookie"
        );
    }

    #[tokio::test]
    async fn trusted_origins_pass() {
        let client = client(csrf().trusted_origin("https://admin.example.com/"));
        let response = client
            .post("/posts")
            .header("host", "api.example.com")
            .header("cookie", SESSION)
            .header("origin", "https://admin.example.com")
            .send()
            .await;
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn origins_the_cors_policy_admits_with_credentials_pass() {
        let router = |credentials: bool| {
            let cors = crate::cors::Cors::new()
                .allow_origins(["https://App.example.com"])
                .allow_credentials(credentials)
                .build()
                .unwrap();
            Router::new()
                .route("/posts", post(|| async { "created" }))
                .layer(csrf())
                .layer(cors)
        };
        let send = |router: Router, origin: &'static str| async move {
            TestClient::new(router)
                .post("/posts")
                .header("host", "api.example.com")
                .header("cookie", SESSION)
                .header("origin", origin)
                .send()
                .await
                .status()
        };
        assert_eq!(send(router(true), "https://app.example.com").await, 200);
        assert_eq!(
            send(router(true), "https://evil.example").await,
            403,
            "an origin the policy does not list"
        );
        assert_eq!(
            send(router(false), "https://app.example.com").await,
            403,
            "a policy without credentials sends no cookies cross-origin: nothing to trust"
        );
    }

    #[tokio::test]
    async fn the_token_option_hands_out_a_cookie_and_accepts_it_echoed() {
        let client = client(csrf().double_submit_token());
        let first = client.get("/posts").send().await;
        let set = first.header("set-cookie").unwrap_or_default().to_owned();
        assert!(
            set.starts_with("arbor_csrf=") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(!set.contains("HttpOnly"), "scripts must read it: {set}");
        let token = set
            .split(';')
            .next()
            .and_then(|pair| pair.split_once('='))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        assert_eq!(token.len(), 64);
        let cookies = format!("{SESSION}; arbor_csrf={token}");
        let post = |sent: &str| {
            client
                .post("/posts")
                .header("host", "app.test")
                .header("cookie", &cookies)
                .header("x-csrf-token", sent)
                .send()
        };
        assert_eq!(post(&token).await.status(), 200);
        assert_eq!(
            post("0000").await.status(),
            403,
            "a wrong token and no Origin"
        );
    }
}
