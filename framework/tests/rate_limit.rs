//! The rate limit layer through axum routers: headers, the `429`, keying, stores, concurrency,
//! and the `#[arbor::handler(rate_limit(..))]` syntax.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arbor::rate_limit;
use arbor::rate_limit::{
    BoxFuture, Decision, ManualClock, MemoryStore, Quota, RateLimitLayer, RateLimitStore,
    StoreError,
};
use arbor::test::TestClient;
use arbor::{ApiError, App, Request, TrustedProxies};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde_json::json;
use tower::ServiceExt;

/// A route at `path` whose handler counts its runs, wrapped in `layer`.
fn counted(path: &str, layer: RateLimitLayer) -> (Router, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let handler = {
        let hits = Arc::clone(&hits);
        move || {
            let hits = Arc::clone(&hits);
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }
    };
    let router = Router::new().route(path, get(handler).route_layer(layer));
    (router, hits)
}

fn manual_store() -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    (MemoryStore::new(1_000).with_clock(clock.clone()), clock)
}

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 50_000)
}

fn limit_headers(response: &arbor::test::TestResponse) -> (String, String, String) {
    let get = |name| response.header(name).unwrap_or("<missing>").to_owned();
    (
        get("x-ratelimit-limit"),
        get("x-ratelimit-remaining"),
        get("x-ratelimit-reset"),
    )
}

#[tokio::test]
async fn every_response_has_headers_and_the_refusal_is_the_standard_429() {
    let (store, _clock) = manual_store();
    let (router, hits) = counted("/api/login", rate_limit().limit(3).window(60).store(store));
    let client = TestClient::new(router);

    for (remaining, reset) in [("2", "20"), ("1", "40"), ("0", "60")] {
        let response = client.get("/api/login").send().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            limit_headers(&response),
            ("3".into(), remaining.into(), reset.into())
        );
        assert_eq!(response.header("retry-after"), None);
    }

    let refused = client.get("/api/login").send().await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.header("retry-after"), Some("20"));
    assert_eq!(
        limit_headers(&refused),
        ("3".into(), "0".into(), "60".into())
    );
    let body: serde_json::Value = refused.json();
    assert_eq!(body["error"], "RATE_LIMITED");
    assert!(body["message"].as_str().unwrap().contains("retry in 20 s"));
    assert_eq!(
        body["details"],
        json!({"limit": 3, "window_secs": 60, "retry_after_secs": 20})
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        3,
        "the handler never ran for the 429"
    );
}

#[tokio::test]
async fn handler_errors_carry_the_headers_too() {
    let router = Router::new().route(
        "/api/things/{id}",
        get(|| async { ApiError::not_found("no such thing") }).route_layer(rate_limit().limit(10)),
    );
    let response = TestClient::new(router).get("/api/things/7").send().await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.header("x-ratelimit-limit"), Some("10"));
    assert_eq!(response.header("x-ratelimit-remaining"), Some("9"));
    assert_eq!(response.header("x-ratelimit-reset"), Some("6"));
}

#[tokio::test]
async fn the_allowance_refills_with_time() {
    let (store, clock) = manual_store();
    let (router, hits) = counted("/", rate_limit().limit(2).window(10).store(store));
    let client = TestClient::new(router);
    assert_eq!(client.get("/").send().await.status(), StatusCode::OK);
    assert_eq!(client.get("/").send().await.status(), StatusCode::OK);
    clock.advance(Duration::from_millis(4_200));
    let refused = client.get("/").send().await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // 0.8 s until the next request fits: rounded up to a whole second.
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(
        refused.json::<serde_json::Value>()["details"]["retry_after_secs"],
        1
    );
    clock.advance(Duration::from_millis(800));
    let allowed = client.get("/").send().await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(allowed.header("x-ratelimit-remaining"), Some("0"));
    clock.advance(Duration::from_secs(10));
    let full = client.get("/").send().await;
    assert_eq!(full.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn clients_are_counted_separately() {
    let (router, _) = counted("/", rate_limit().limit(1));
    let alice = TestClient::new(router.clone()).with_peer(peer("198.51.100.1"));
    let bob = TestClient::new(router.clone()).with_peer(peer("198.51.100.2"));
    assert_eq!(alice.get("/").send().await.status(), StatusCode::OK);
    assert_eq!(alice.get("/").send().await.status(), 429);
    assert_eq!(bob.get("/").send().await.status(), StatusCode::OK);
    assert_eq!(bob.get("/").send().await.status(), 429);

    // An IPv6 client is its /64: rotating addresses inside it does not buy a new allowance.
    let v6 = TestClient::new(router.clone()).with_peer(peer("2001:db8:1:2::1"));
    let same_64 = TestClient::new(router.clone()).with_peer(peer("2001:db8:1:2:ffff::9"));
    let other_64 = TestClient::new(router.clone()).with_peer(peer("2001:db8:1:3::1"));
    assert_eq!(v6.get("/").send().await.status(), StatusCode::OK);
    assert_eq!(same_64.get("/").send().await.status(), 429);
    assert_eq!(other_64.get("/").send().await.status(), StatusCode::OK);

    // An IPv4-mapped IPv6 peer is the IPv4 client.
    let mapped = TestClient::new(router).with_peer(peer("::ffff:198.51.100.1"));
    assert_eq!(mapped.get("/").send().await.status(), 429);
}

#[tokio::test]
async fn routes_are_counted_separately_but_not_their_urls() {
    // One layer (so one store) over two routes.
    let router = Router::new()
        .route("/api/a", get(|| async { "a" }))
        .route("/api/users/{id}", get(|| async { "user" }))
        .route_layer(rate_limit().limit(1));
    let client = TestClient::new(router);
    assert_eq!(client.get("/api/a").send().await.status(), StatusCode::OK);
    assert_eq!(client.get("/api/a").send().await.status(), 429);
    assert_eq!(
        client.get("/api/users/1").send().await.status(),
        StatusCode::OK
    );
    // Same route, other URL: `/api/users/{id}` is one allowance.
    assert_eq!(client.get("/api/users/2").send().await.status(), 429);
}

#[tokio::test]
async fn a_custom_key_counts_per_api_key_and_falls_back_to_the_client() {
    let limit = rate_limit().limit(1).key(|parts| {
        parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|key| format!("api-key:{key}"))
    });
    let (router, _) = counted("/", limit);
    let here = TestClient::new(router.clone()).with_peer(peer("198.51.100.1"));
    let there = TestClient::new(router).with_peer(peer("198.51.100.2"));

    let first = here.get("/").header("x-api-key", "k1").send().await;
    assert_eq!(first.status(), StatusCode::OK);
    // The same key from another address shares the allowance.
    let same_key = there.get("/").header("x-api-key", "k1").send().await;
    assert_eq!(same_key.status(), 429);
    let other_key = here.get("/").header("x-api-key", "k2").send().await;
    assert_eq!(other_key.status(), StatusCode::OK);
    // Without a key: the default key, the client address and route.
    assert_eq!(here.get("/").send().await.status(), StatusCode::OK);
    assert_eq!(here.get("/").send().await.status(), 429);
    assert_eq!(there.get("/").send().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_key() {
    let (router, _) = counted("/", rate_limit().limit(1));
    let app = App::new(router)
        .trusted_proxies(TrustedProxies::new(["10.0.0.0/8"]).unwrap())
        .into_router();
    let proxy = TestClient::new(app.clone()).with_peer(peer("10.0.0.1"));
    let a = proxy.get("/").header("x-forwarded-for", "203.0.113.1");
    assert_eq!(a.send().await.status(), StatusCode::OK);
    let b = proxy.get("/").header("x-forwarded-for", "203.0.113.2");
    assert_eq!(b.send().await.status(), StatusCode::OK);
    let a_again = proxy.get("/").header("x-forwarded-for", "203.0.113.1");
    assert_eq!(a_again.send().await.status(), 429);

    // A client that is not a trusted proxy cannot buy allowances by claiming addresses.
    let direct = TestClient::new(app).with_peer(peer("198.51.100.9"));
    let first = direct.get("/").header("x-forwarded-for", "203.0.113.3");
    assert_eq!(first.send().await.status(), StatusCode::OK);
    let spoofed = direct.get("/").header("x-forwarded-for", "203.0.113.4");
    assert_eq!(spoofed.send().await.status(), 429);
}

/// A store whose backend is down.
struct Unavailable;

impl RateLimitStore for Unavailable {
    fn check<'a>(&'a self, _: &'a str, _: Quota) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
}

#[tokio::test]
async fn a_failing_store_lets_requests_through() {
    let (router, hits) = counted("/", rate_limit().limit(1).store(Unavailable));
    let client = TestClient::new(router);
    for _ in 0..3 {
        let response = client.get("/").send().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.header("x-ratelimit-limit"), None);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

/// A store that answers asynchronously, like a remote one, backed by a memory store.
struct Remote {
    inner: MemoryStore,
    calls: AtomicUsize,
}

impl RateLimitStore for Remote {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.inner.check_now(key, quota))
        })
    }
}

#[tokio::test]
async fn a_custom_store_decides_and_is_shared_between_routes() {
    let (memory, _clock) = manual_store();
    let remote = Arc::new(Remote {
        inner: memory,
        calls: AtomicUsize::new(0),
    });
    let (a, hits_a) = counted("/a", rate_limit().limit(2).store(Arc::clone(&remote)));
    let (b, hits_b) = counted("/b", rate_limit().limit(2).store(Arc::clone(&remote)));
    let client = TestClient::new(a.merge(b));
    for path in ["/a", "/b"] {
        let first = client.get(path).send().await;
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
        assert_eq!(client.get(path).send().await.status(), StatusCode::OK);
        let refused = client.get(path).send().await;
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.header("retry-after"), Some("30"));
    }
    assert_eq!(remote.calls.load(Ordering::SeqCst), 6);
    assert_eq!(
        hits_a.load(Ordering::SeqCst) + hits_b.load(Ordering::SeqCst),
        4
    );
}

#[tokio::test]
async fn nested_limits_report_the_tighter_one() {
    let (router, _) = counted("/", rate_limit().limit(2));
    let router = router.layer(rate_limit().limit(100));
    let response = TestClient::new(router).get("/").send().await;
    assert_eq!(response.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(response.header("x-ratelimit-remaining"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_the_limit_gets_through_under_concurrency() {
    let (router, hits) = counted("/", rate_limit().limit(50).window(60));
    let start = Arc::new(tokio::sync::Barrier::new(200));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let router = router.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                let mut request = Request::get("/").body(Body::empty()).unwrap();
                request
                    .extensions_mut()
                    .insert(ConnectInfo(peer("192.0.2.10")));
                start.wait().await;
                router.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    let mut ok = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((ok, refused), (50, 150));
    assert_eq!(hits.load(Ordering::SeqCst), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_the_limit_gets_through_a_test_client_too() {
    let (router, hits) = counted("/", rate_limit().limit(10));
    let client = TestClient::new(router);
    let responses = futures_util::future::join_all((0..100).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get("/").send().await.status() })
    }))
    .await;
    let ok = responses
        .into_iter()
        .filter(|status| *status.as_ref().unwrap() == StatusCode::OK)
        .count();
    assert_eq!(ok, 10);
    assert_eq!(hits.load(Ordering::SeqCst), 10);
}

#[allow(non_snake_case)]
pub mod login {
    use arbor::rate_limit;

    #[arbor::handler(rate_limit(limit = 5, window = 60))]
    pub async fn GET() -> &'static str {
        "welcome"
    }

    pub fn by_user(parts: &http::request::Parts) -> Option<String> {
        let user = parts.headers.get("x-user")?.to_str().ok()?;
        Some(format!("user:{user}"))
    }

    pub fn store() -> arbor::rate_limit::MemoryStore {
        arbor::rate_limit::MemoryStore::new(100)
    }

    #[arbor::handler(rate_limit(limit = 1, window = 3600, key = by_user, store = store()))]
    pub async fn POST() -> &'static str {
        "posted"
    }
}

#[tokio::test]
async fn composes_with_the_handler_attribute() {
    let router = Router::new().route(
        "/api/login",
        login::__arbor_handler_middleware_GET(get(login::GET), &()),
    );
    let client = TestClient::new(router);
    for remaining in (0..5).rev() {
        let response = client.get("/api/login").send().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text(), "welcome");
        assert_eq!(
            response.header("x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
    }
    let refused = client.get("/api/login").send().await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("retry-after"), Some("12"));
    // HEAD is answered by GET, through GET's middleware: same allowance.
    assert_eq!(client.head("/api/login").send().await.status(), 429);
}

#[tokio::test]
async fn the_attribute_takes_key_and_store_too() {
    let router = Router::new().route(
        "/api/posts",
        login::__arbor_handler_middleware_POST(axum::routing::post(login::POST), &()),
    );
    let here = TestClient::new(router.clone()).with_peer(peer("198.51.100.1"));
    let there = TestClient::new(router).with_peer(peer("198.51.100.2"));
    let first = here.post("/api/posts").header("x-user", "ada").send().await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-reset"), Some("3600"));
    let elsewhere = there
        .post("/api/posts")
        .header("x-user", "ada")
        .send()
        .await;
    assert_eq!(elsewhere.status(), 429);
    assert_eq!(elsewhere.header("retry-after"), Some("3600"));
    let other_user = here.post("/api/posts").header("x-user", "bob").send().await;
    assert_eq!(other_user.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_without_a_known_address_share_one_allowance() {
    let (router, hits) = counted("/", rate_limit().limit(1));
    // No `ConnectInfo`, no `ClientIp`: a router not served by `arbor::serve`.
    let send = || {
        let router = router.clone();
        async move {
            let request = Request::get("/").body(Body::empty()).unwrap();
            router.oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(send().await, StatusCode::OK);
    assert_eq!(send().await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
