//! Cookies: a jar extractor on the [`cookie`] crate, with secure defaults added to every cookie
//! it sets (`HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` unless the app says it serves
//! plain HTTP), plus signed and encrypted jars under the `cookies-signed` and
//! `cookies-private` features.
//!
//! ```
//! use arbor::cookies::{Cookie, CookieConfig, Cookies};
//! use arbor::{IntoResponse, Router};
//! use axum::routing::post;
//!
//! // app/api/theme/route.rs
//! pub async fn POST(mut jar: Cookies) -> impl IntoResponse {
//!     let previous = jar.value("theme").unwrap_or("light").to_owned();
//!     // Set-Cookie: theme=dark; HttpOnly; SameSite=Lax; Path=/; Secure
//!     jar.add(Cookie::new("theme", "dark"));
//!     jar.remove("legacy_theme");
//!     (jar, previous)
//! }
//!
//! // Once for the whole app: in development over plain HTTP, drop `Secure`.
//! let router: Router = Router::new()
//!     .route("/api/theme", post(POST))
//!     .layer(CookieConfig::new().secure(false).into_layer());
//! # let _ = router;
//! ```
//!
//! **Why not `axum-extra`'s jars.** They find their key in the router state (`Key: FromRef<S>`),
//! so every app state would need an impl, and they leave each cookie's attributes to the caller.
//! Arbor's jars read one [`CookieConfig`] (key and defaults) from the request, set once for the
//! app, and the session middleware and CSRF layer share it. The parsing, signing and
//! encryption are the `cookie` crate's (the one `axum-extra` uses).
//!
//! **Secure in production, usable in development.** `Secure` is on unless
//! [`CookieConfig::secure`] turns it off: browsers drop `Secure` cookies over plain HTTP
//! (except on `localhost`), so an app served without TLS says so explicitly, typically from
//! its configuration (the reference app's `ARBOR_SECURE_COOKIES`).

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue};

#[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
pub use cookie::Key;
pub use cookie::{Cookie, SameSite};

/// The attributes every cookie set through Arbor's jars gets unless it sets them itself, and
/// the key of the signed and private jars.
///
/// Put it in the request extensions once for the app ([`CookieConfig::into_layer`]); without
/// one, jars use [`CookieConfig::default`] (secure, no key).
#[derive(Clone)]
pub struct CookieConfig {
    secure: bool,
    same_site: SameSite,
    path: String,
    domain: Option<String>,
    #[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
    key: Option<Key>,
}

impl std::fmt::Debug for CookieConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CookieConfig")
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Default for CookieConfig {
    /// `HttpOnly; SameSite=Lax; Path=/; Secure`, no `Domain` (host-only), no key.
    fn default() -> Self {
        Self {
            secure: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            #[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
            key: None,
        }
    }
}

impl CookieConfig {
    /// The secure defaults ([`CookieConfig::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether cookies get `Secure` (default `true`). Turn it off only for development over
    /// plain HTTP.
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The default `SameSite` (default `Lax`: sent on top-level navigations from other sites,
    /// not on their sub-requests or form posts).
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The default `Path` (default `/`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// A `Domain` for every cookie (default none: the cookie goes back to this host only, which
    /// is the safer choice).
    #[must_use]
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The key of [`SignedCookies`] and [`PrivateCookies`]. Load it from your secrets (64
    /// bytes: [`Key::from`]); a key made with [`Key::generate`] invalidates every signed
    /// cookie when the process restarts.
    #[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
    #[must_use]
    pub fn key(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }

    /// Whether cookies get `Secure`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// A layer that puts this configuration in every request's extensions, where the jars,
    /// the session middleware and the CSRF layer find it.
    pub fn into_layer(self) -> axum::Extension<Self> {
        axum::Extension(self)
    }

    /// `cookie` with the defaults filled in: `HttpOnly`, `SameSite`, `Path`, `Domain` and
    /// `Secure`, each only where the cookie does not set it itself.
    pub fn apply(&self, mut cookie: Cookie<'static>) -> Cookie<'static> {
        if cookie.http_only().is_none() {
            cookie.set_http_only(true);
        }
        if cookie.same_site().is_none() {
            cookie.set_same_site(self.same_site);
        }
        if cookie.path().is_none() {
            cookie.set_path(self.path.clone());
        }
        if cookie.domain().is_none() {
            if let Some(domain) = &self.domain {
                cookie.set_domain(domain.clone());
            }
        }
        if cookie.secure().is_none() {
            // `SameSite=None` is refused by browsers without `Secure`.
            cookie.set_secure(self.secure || cookie.same_site() == Some(SameSite::None));
        }
        cookie
    }

    /// A session cookie: `name=value` with the defaults and `Max-Age` of `max_age` (none: it
    /// ends with the browser session).
    pub fn session_cookie(
        &self,
        name: impl Into<String>,
        value: impl Into<String>,
        max_age: Option<std::time::Duration>,
    ) -> Cookie<'static> {
        let mut cookie = Cookie::new(name.into(), value.into());
        if let Some(max_age) = max_age {
            let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(seconds));
        }
        self.apply(cookie)
    }

    /// The cookie that deletes cookie `name` in the browser: empty, `Max-Age=0`, with the same
    /// `Path` and `Domain` as the defaults (a browser deletes only a cookie that matches).
    pub fn removal(&self, name: impl Into<String>) -> Cookie<'static> {
        let mut cookie = self.session_cookie(name, "", None);
        cookie.make_removal();
        cookie
    }

    /// The configuration in the request's extensions, or the default.
    pub(crate) fn of(parts_extensions: &http::Extensions) -> Self {
        parts_extensions.get::<Self>().cloned().unwrap_or_default()
    }
}

/// The request's cookies, and the cookies to set or remove in the response.
///
/// An extractor (it never fails) and a response part: return it from the handler (alone or in
/// a tuple before the body) and each cookie added or removed becomes a `Set-Cookie`. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Cookies {
    jar: cookie::CookieJar,
    config: CookieConfig,
}

impl Cookies {
    /// The cookies of `headers`, with the default [`CookieConfig`]. Malformed pairs are
    /// skipped.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::with_config(headers, CookieConfig::default())
    }

    fn with_config(headers: &HeaderMap, config: CookieConfig) -> Self {
        let mut jar = cookie::CookieJar::new();
        for cookie in headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
        {
            jar.add_original(cookie.into_owned());
        }
        Self { jar, config }
    }

    /// Cookie `name`, as sent (or as added in this request).
    pub fn get(&self, name: &str) -> Option<&Cookie<'static>> {
        self.jar.get(name)
    }

    /// The value of cookie `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.jar.get(name).map(Cookie::value)
    }

    /// Sets `cookie` in the response, with the [`CookieConfig`] defaults for every attribute
    /// it does not set (`Cookie::new(..)` sets none).
    pub fn add(&mut self, cookie: impl Into<Cookie<'static>>) {
        let cookie = self.config.apply(cookie.into());
        self.jar.add(cookie);
    }

    /// Removes cookie `name` in the browser (`Max-Age=0`, with the default `Path` and
    /// `Domain`).
    pub fn remove(&mut self, name: impl Into<String>) {
        let removal = self.config.removal(name);
        self.jar.remove(removal);
    }

    /// Every cookie of the request, with the changes of this request.
    pub fn iter(&self) -> impl Iterator<Item = &Cookie<'static>> {
        self.jar.iter()
    }

    /// The configuration the jar applies.
    pub fn config(&self) -> &CookieConfig {
        &self.config
    }

    /// The `Set-Cookie` values of the changes.
    fn set_cookie_headers(&self) -> impl Iterator<Item = HeaderValue> + '_ {
        self.jar
            .delta()
            .filter_map(|cookie| HeaderValue::from_str(&cookie.to_string()).ok())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Cookies {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::with_config(
            &parts.headers,
            CookieConfig::of(&parts.extensions),
        ))
    }
}

impl IntoResponseParts for Cookies {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for value in self.set_cookie_headers() {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(res)
    }
}

impl IntoResponse for Cookies {
    fn into_response(self) -> Response {
        (self, ()).into_response()
    }
}

/// The rejection of [`SignedCookies`] and [`PrivateCookies`] when the app configured no key:
/// a `500` in the standard shape (the cause is logged, not shown).
#[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
#[derive(Debug)]
pub struct MissingKey;

#[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
impl IntoResponse for MissingKey {
    fn into_response(self) -> Response {
        tracing::error!(
            "a signed or private cookie jar was extracted, but no key is configured: \
             add CookieConfig::new().key(..).into_layer() to the app"
        );
        crate::ApiError::internal().into_response()
    }
}

#[cfg(any(feature = "cookies-signed", feature = "cookies-private"))]
fn keyed(parts: &Parts) -> Result<(Cookies, Key), MissingKey> {
    let jar = Cookies::with_config(&parts.headers, CookieConfig::of(&parts.extensions));
    let key = jar.config.key.clone().ok_or(MissingKey)?;
    Ok((jar, key))
}

/// A jar whose cookies are signed with the [`CookieConfig::key`]: readable by the client, but a
/// changed or forged cookie reads as absent.
///
/// ```
/// use arbor::cookies::{Cookie, SignedCookies};
///
/// pub async fn GET(mut jar: SignedCookies) -> (SignedCookies, String) {
///     let visits: u32 = jar.value("visits").and_then(|v| v.parse().ok()).unwrap_or(0);
///     jar.add(Cookie::new("visits", (visits + 1).to_string()));
///     (jar, format!("visit {}", visits + 1))
/// }
/// ```
#[cfg(feature = "cookies-signed")]
#[derive(Clone)]
pub struct SignedCookies {
    jar: Cookies,
    key: Key,
}

#[cfg(feature = "cookies-signed")]
impl std::fmt::Debug for SignedCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedCookies")
            .field("jar", &self.jar)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "cookies-signed")]
impl SignedCookies {
    /// Cookie `name` if its signature is valid (the value without the signature).
    pub fn get(&self, name: &str) -> Option<Cookie<'static>> {
        self.jar.jar.signed(&self.key).get(name)
    }

    /// The value of cookie `name` if its signature is valid.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name).map(|cookie| cookie.value().to_owned())
    }

    /// Signs `cookie` and sets it, with the defaults (see [`Cookies::add`]).
    pub fn add(&mut self, cookie: impl Into<Cookie<'static>>) {
        let cookie = self.jar.config.apply(cookie.into());
        self.jar.jar.signed_mut(&self.key).add(cookie);
    }

    /// Removes cookie `name` in the browser.
    pub fn remove(&mut self, name: impl Into<String>) {
        self.jar.remove(name);
    }
}

#[cfg(feature = "cookies-signed")]
impl<S: Send + Sync> FromRequestParts<S> for SignedCookies {
    type Rejection = MissingKey;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (jar, key) = keyed(parts)?;
        Ok(Self { jar, key })
    }
}

#[cfg(feature = "cookies-signed")]
impl IntoResponseParts for SignedCookies {
    type Error = Infallible;

    fn into_response_parts(self, res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.jar.into_response_parts(res)
    }
}

/// A jar whose cookies are encrypted and authenticated with the [`CookieConfig::key`]
/// (AES-256-GCM): the client can neither read nor change them.
///
/// ```
/// use arbor::cookies::{Cookie, PrivateCookies};
///
/// pub async fn POST(mut jar: PrivateCookies) -> PrivateCookies {
///     jar.add(Cookie::new("cart", r#"{"items":[42]}"#));
///     jar
/// }
/// ```
#[cfg(feature = "cookies-private")]
#[derive(Clone)]
pub struct PrivateCookies {
    jar: Cookies,
    key: Key,
}

#[cfg(feature = "cookies-private")]
impl std::fmt::Debug for PrivateCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateCookies").finish_non_exhaustive()
    }
}

#[cfg(feature = "cookies-private")]
impl PrivateCookies {
    /// Cookie `name`, decrypted, if it was encrypted with this key and not changed.
    pub fn get(&self, name: &str) -> Option<Cookie<'static>> {
        self.jar.jar.private(&self.key).get(name)
    }

    /// The decrypted value of cookie `name`.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name).map(|cookie| cookie.value().to_owned())
    }

    /// Encrypts `cookie` and sets it, with the defaults (see [`Cookies::add`]).
    pub fn add(&mut self, cookie: impl Into<Cookie<'static>>) {
        let cookie = self.jar.config.apply(cookie.into());
        self.jar.jar.private_mut(&self.key).add(cookie);
    }

    /// Removes cookie `name` in the browser.
    pub fn remove(&mut self, name: impl Into<String>) {
        self.jar.remove(name);
    }
}

#[cfg(feature = "cookies-private")]
impl<S: Send + Sync> FromRequestParts<S> for PrivateCookies {
    type Rejection = MissingKey;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let (jar, key) = keyed(parts)?;
        Ok(Self { jar, key })
    }
}

#[cfg(feature = "cookies-private")]
impl IntoResponseParts for PrivateCookies {
    type Error = Infallible;

    fn into_response_parts(self, res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.jar.into_response_parts(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static(cookie));
        headers
    }

    fn set_cookies(jar: Cookies) -> Vec<String> {
        let response = jar.into_response();
        response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn reads_request_cookies_and_skips_malformed_pairs() {
        let jar = Cookies::from_headers(&headers("a=1; broken; b=two=2"));
        assert_eq!(jar.value("a"), Some("1"));
        assert_eq!(jar.value("b"), Some("two=2"));
        assert_eq!(jar.value("broken"), None);
        assert!(set_cookies(jar).is_empty(), "reading sets nothing");
    }

    #[test]
    fn added_cookies_get_the_secure_defaults_unless_they_set_their_own() {
        let mut jar = Cookies::from_headers(&HeaderMap::new());
        jar.add(Cookie::new("plain", "1"));
        let mut strict = Cookie::new("strict", "2");
        strict.set_same_site(SameSite::Strict);
        strict.set_http_only(false);
        jar.add(strict);
        let mut set = set_cookies(jar);
        set.sort();
        let plain = set.iter().find(|c| c.starts_with("plain=")).cloned();
        let plain = plain.unwrap_or_default();
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure"] {
            assert!(plain.contains(attribute), "{attribute} missing: {plain}");
        }
        let strict = set.iter().find(|c| c.starts_with("strict=")).cloned();
        let strict = strict.unwrap_or_default();
        assert!(
            strict.contains("SameSite=Strict") && !strict.contains("HttpOnly"),
            "{strict}"
        );
    }

    #[test]
    fn development_config_drops_secure_but_not_the_rest() {
        let config = CookieConfig::new().secure(false);
        let cookie = config.session_cookie("s", "v", Some(std::time::Duration::from_secs(60)));
        let text = cookie.to_string();
        assert!(!text.contains("Secure"), "{text}");
        assert!(
            text.contains("HttpOnly") && text.contains("Max-Age=60"),
            "{text}"
        );
        // SameSite=None cookies are refused by browsers without Secure, so they keep it.
        let mut none = Cookie::new("cross", "1");
        none.set_same_site(SameSite::None);
        assert_eq!(config.apply(none).secure(), Some(true));
    }

    #[test]
    fn removal_expires_the_cookie_on_the_same_path() {
        let mut jar = Cookies::from_headers(&headers("s=abc"));
        jar.remove("s");
        let set = set_cookies(jar);
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(
            set[0].starts_with("s=;") && set[0].contains("Max-Age=0") && set[0].contains("Path=/"),
            "{set:?}"
        );
    }

    #[cfg(feature = "cookies-private")]
    #[test]
    fn private_cookies_hide_their_value_and_read_back_only_with_the_key() {
        let key = Key::generate();
        let config = CookieConfig::new().key(key.clone());
        let mut jar = PrivateCookies {
            jar: Cookies::with_config(&HeaderMap::new(), config.clone()),
            key: key.clone(),
        };
        jar.add(Cookie::new("cart", "sku-42"));
        let set = set_cookies(jar.jar);
        assert_eq!(set.len(), 1, "{set:?}");
        assert!(
            !set[0].contains("sku-42") && set[0].contains("HttpOnly"),
            "{set:?}"
        );
        let pair = set[0].split(';').next().unwrap_or_default().to_owned();
        let sent = HeaderMap::from_iter([(
            header::COOKIE,
            HeaderValue::from_str(&pair).unwrap_or(HeaderValue::from_static("")),
        )]);
        let read = |key: Key| PrivateCookies {
            jar: Cookies::with_config(&sent, config.clone()),
            key,
        };
        assert_eq!(read(key).value("cart").as_deref(), Some("sku-42"));
        assert_eq!(
            read(Key::generate()).value("cart"),
            None,
            "another key reads nothing"
        );
    }

    #[cfg(feature = "cookies-signed")]
    #[test]
    fn signed_cookies_reject_tampering() {
        let key = Key::generate();
        let config = CookieConfig::new().key(key.clone());
        let mut jar = Cookies::with_config(&HeaderMap::new(), config.clone());
        jar.jar.signed_mut(&key).add(Cookie::new("user", "42"));
        let signed = jar
            .get("user")
            .map(|c| c.value().to_owned())
            .unwrap_or_default();
        assert_ne!(signed, "42", "the value carries its signature");

        let mut good = HeaderMap::new();
        good.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("user={signed}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        let jar = SignedCookies {
            jar: Cookies::with_config(&good, config.clone()),
            key: key.clone(),
        };
        assert_eq!(jar.value("user").as_deref(), Some("42"));
        let forged = signed.replacen("42", "43", 1);
        let mut bad = HeaderMap::new();
        bad.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("user={forged}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        let jar = SignedCookies {
            jar: Cookies::with_config(&bad, config),
            key,
        };
        assert_eq!(jar.value("user"), None);
    }
}
