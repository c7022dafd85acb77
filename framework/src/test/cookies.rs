//! The cookie jar of a [`TestClient`](super::TestClient): what a browser would keep between
//! requests to one site.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use cookie::time::OffsetDateTime;
use cookie::Cookie;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};

/// Cookies by name, shared by a client and its clones. Domains are not checked (every request
/// goes to the one router); paths are, as a browser would.
#[derive(Debug, Clone, Default)]
pub(super) struct Jar {
    cookies: Arc<Mutex<BTreeMap<String, Cookie<'static>>>>,
}

impl Jar {
    /// Keeps what `Set-Cookie` says: a new value, or a removal (`Max-Age=0`, or an `Expires`
    /// in the past).
    pub(super) fn store(&self, headers: &HeaderMap) {
        let mut cookies = self.lock();
        for value in headers.get_all(SET_COOKIE) {
            let Some(cookie) = value
                .to_str()
                .ok()
                .and_then(|v| Cookie::parse(v.to_owned()).ok())
            else {
                continue;
            };
            let expired = cookie
                .max_age()
                .is_some_and(|age| age.is_zero() || age.is_negative())
                || cookie
                    .expires_datetime()
                    .is_some_and(|at| at <= OffsetDateTime::now_utc());
            if expired {
                cookies.remove(cookie.name());
            } else {
                cookies.insert(cookie.name().to_owned(), cookie);
            }
        }
    }

    /// The `Cookie` header for a request to `path`, if any cookie applies.
    pub(super) fn header_for(&self, path: &str) -> Option<HeaderValue> {
        let cookies = self.lock();
        let pairs: Vec<String> = cookies
            .values()
            .filter(|cookie| path_matches(cookie.path().unwrap_or("/"), path))
            .map(|cookie| format!("{}={}", cookie.name(), cookie.value()))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        HeaderValue::from_str(&pairs.join("; ")).ok()
    }

    pub(super) fn get(&self, name: &str) -> Option<Cookie<'static>> {
        self.lock().get(name).cloned()
    }

    pub(super) fn set(&self, name: &str, value: &str) {
        self.lock().insert(
            name.to_owned(),
            Cookie::new(name.to_owned(), value.to_owned()),
        );
    }

    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Cookie<'static>>> {
        self.cookies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// RFC 6265 §5.1.4 path matching.
fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

#[cfg(test)]
mod tests {
    use http::header::SET_COOKIE;
    use http::{HeaderMap, HeaderValue};

    use super::{path_matches, Jar};

    fn set(jar: &Jar, value: &'static str) {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static(value));
        jar.store(&headers);
    }

    #[test]
    fn keeps_replaces_and_removes_cookies() {
        let jar = Jar::default();
        set(&jar, "session=abc; HttpOnly; Path=/; SameSite=Lax");
        set(&jar, "theme=dark; Path=/settings");
        assert_eq!(jar.header_for("/api").unwrap(), "session=abc");
        assert_eq!(
            jar.header_for("/settings/x").unwrap(),
            "session=abc; theme=dark"
        );
        set(&jar, "session=def; Path=/");
        assert_eq!(jar.get("session").unwrap().value(), "def");
        set(&jar, "session=; Path=/; Max-Age=0");
        assert!(jar.get("session").is_none());
        set(
            &jar,
            "theme=; Path=/settings; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        );
        assert!(jar.header_for("/settings").is_none());
    }

    #[test]
    fn paths_match_as_rfc_6265_says() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/v1"));
        assert!(!path_matches("/api", "/apiary"));
        assert!(path_matches("/api/", "/api/v1"));
    }
}
