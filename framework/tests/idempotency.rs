//! Idempotency keys, through real routers.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arbor::idempotency::{
    idempotency, BoxFuture, Claim, IdempotencyStore, ManualClock, MemoryStore, Record, Scope,
    StoreError, StoredResponse,
};
use arbor::test::{TestClient, TestResponse};
use arbor::{ApiError, Json, Next, Request, Response};
use axum::routing::{post, MethodRouter};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `POST`: counts its runs and answers `201 {"order": n, "received": <body>}`.
fn orders(counter: &Counter) -> MethodRouter {
    let counter = counter.clone();
    post(move |body: Bytes| {
        let counter = counter.clone();
        async move {
            let n = counter.bump();
            (
                StatusCode::CREATED,
                Json(json!({ "order": n, "received": String::from_utf8_lossy(&body) })),
            )
        }
    })
}

fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([203, 0, 113, last], 50000))
}

fn replayed(response: &TestResponse) -> bool {
    response.header("idempotent-replayed") == Some("true")
}

fn error_code(response: &TestResponse) -> String {
    response.json::<Value>()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn send(client: &TestClient, key: &str, body: &'static str) -> TestResponse {
    client
        .post("/orders")
        .header("idempotency-key", key)
        .body(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_requests_with_one_key_run_the_handler_once() {
    let counter = Counter::default();
    let entered = Arc::new(Semaphore::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (handler_counter, handler_entered, handler_gate) =
        (counter.clone(), entered.clone(), gate.clone());
    let route = post(move |body: Bytes| {
        let (counter, entered, gate) = (
            handler_counter.clone(),
            handler_entered.clone(),
            handler_gate.clone(),
        );
        async move {
            let n = counter.bump();
            entered.add_permits(1);
            // Held here until the test has seen every other request answered.
            let _permit = gate.acquire().await.unwrap();
            (
                StatusCode::CREATED,
                Json(json!({ "order": n, "received": String::from_utf8_lossy(&body) })),
            )
        }
    });
    let client = TestClient::new(Router::new().route("/orders", route.route_layer(idempotency())));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..20 {
        let (client, tx) = (client.clone(), tx.clone());
        tokio::spawn(async move {
            let _ = tx.send(send(&client, "pay-1", r#"{"amount":5}"#).await);
        });
    }
    // While the first is held in the handler, every other one is refused as in flight.
    for _ in 0..19 {
        let response = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("a second request reached the handler")
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(error_code(&response), "IDEMPOTENCY_IN_FLIGHT");
        assert_eq!(response.header("retry-after"), Some("1"));
    }
    entered.acquire().await.unwrap().forget();
    assert_eq!(counter.get(), 1);
    gate.add_permits(1);
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!replayed(&first));

    let retry = send(&client, "pay-1", r#"{"amount":5}"#).await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert!(replayed(&retry));
    assert_eq!(retry.bytes(), first.bytes());
    assert_eq!(retry.header("content-type"), Some("application/json"));
    assert_eq!(counter.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_free_running_race_yields_one_run_and_otherwise_409_or_the_replay() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let route = post(move |body: Bytes| {
        let counter = handler_counter.clone();
        async move {
            let n = counter.bump();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            (StatusCode::CREATED, format!("order {n}: {}", body.len()))
        }
    });
    let client = TestClient::new(Router::new().route("/orders", route.route_layer(idempotency())));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { send(&client, "race", "same body").await })
        })
        .collect();
    let mut originals = 0;
    for task in tasks {
        let response = task.await.unwrap();
        match response.status() {
            StatusCode::CREATED => {
                assert_eq!(response.text(), "order 1: 9");
                if !replayed(&response) {
                    originals += 1;
                }
            }
            StatusCode::CONFLICT => assert_eq!(error_code(&response), "IDEMPOTENCY_IN_FLIGHT"),
            other => panic!("unexpected {other}: {}", response.text()),
        }
    }
    assert_eq!((counter.get(), originals), (1, 1));
    let later = send(&client, "race", "same body").await;
    assert!(replayed(&later));
    assert_eq!(later.text(), "order 1: 9");
    assert_eq!(counter.get(), 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_422() {
    let counter = Counter::default();
    let client = TestClient::new(
        Router::new().route("/orders", orders(&counter).route_layer(idempotency())),
    );
    assert_eq!(send(&client, "k1", "a").await.status(), StatusCode::CREATED);

    let reused = send(&client, "k1", "b").await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = reused.json();
    assert_eq!(body["error"], "IDEMPOTENCY_KEY_REUSED");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("different request"));
    assert_eq!(reused.header("content-type"), Some("application/json"));

    // The query is part of the request too.
    let other_query = client
        .post("/orders?coupon=1")
        .header("idempotency-key", "k1")
        .body("a")
        .send()
        .await;
    assert_eq!(other_query.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The original is still replayed.
    let retry = send(&client, "k1", "a").await;
    assert!(replayed(&retry));
    assert_eq!(retry.json::<Value>()["received"], "a");
    assert_eq!(counter.get(), 1);
}

#[tokio::test]
async fn keys_are_scoped_per_client_ip_method_and_path() {
    let counter = Counter::default();
    let route = orders(&counter).put(|| async { "put" });
    let router = Router::new()
        .route("/orders", route.route_layer(idempotency()))
        .route("/refunds", orders(&counter).route_layer(idempotency()));
    let alice = TestClient::new(router.clone()).with_peer(peer(1));
    let bob = TestClient::new(router).with_peer(peer(2));

    let a = send(&alice, "shared", "x").await;
    let b = send(&bob, "shared", "x").await;
    assert!(!replayed(&a) && !replayed(&b));
    assert_eq!(a.json::<Value>()["order"], 1);
    assert_eq!(b.json::<Value>()["order"], 2);
    // Another path or method with the same key is another operation.
    let refund = alice
        .post("/refunds")
        .header("idempotency-key", "shared")
        .body("x")
        .send()
        .await;
    assert!(!replayed(&refund));
    let put = alice
        .put("/orders")
        .header("idempotency-key", "shared")
        .body("x")
        .send()
        .await;
    assert_eq!((put.text().as_str(), replayed(&put)), ("put", false));
    assert_eq!(counter.get(), 3);

    let a_again = send(&alice, "shared", "x").await;
    let b_again = send(&bob, "shared", "x").await;
    assert!(replayed(&a_again) && replayed(&b_again));
    assert_eq!(a_again.json::<Value>()["order"], 1);
    assert_eq!(b_again.json::<Value>()["order"], 2);
    assert_eq!(counter.get(), 3);
}

async fn scope_from_user(mut request: Request, next: Next) -> Response {
    if let Some(user) = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
    {
        let scope = Scope(format!("user:{user}"));
        request.extensions_mut().insert(scope);
    }
    next.run(request).await
}

#[tokio::test]
async fn a_scope_extension_replaces_the_client_ip() {
    let counter = Counter::default();
    let route = orders(&counter)
        .route_layer(idempotency())
        .route_layer(axum::middleware::from_fn(scope_from_user));
    let router = Router::new().route("/orders", route);
    let office = TestClient::new(router.clone()).with_peer(peer(1));
    let phone = TestClient::new(router).with_peer(peer(2));
    let as_user = |client: &TestClient, user: &str| {
        client
            .post("/orders")
            .header("idempotency-key", "k")
            .header("x-user", user)
            .body("x")
    };

    let first = as_user(&office, "ann").send().await;
    // The same user from another address: the same operation.
    let from_phone = as_user(&phone, "ann").send().await;
    assert!(!replayed(&first) && replayed(&from_phone));
    assert_eq!(from_phone.bytes(), first.bytes());
    // Another user behind the same address: a separate operation.
    let other_user = as_user(&office, "ben").send().await;
    assert!(!replayed(&other_user));
    assert_eq!(counter.get(), 2);
}

#[tokio::test]
async fn server_errors_are_not_stored_but_client_errors_are() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let route = post(move |body: String| {
        let counter = handler_counter.clone();
        async move {
            let n = counter.bump();
            match body.as_str() {
                "flaky" if n == 1 => Err(ApiError::internal()),
                "invalid" => Err(ApiError::bad_request(format!("invalid, run {n}"))),
                _ => Ok((StatusCode::CREATED, format!("created, run {n}"))),
            }
        }
    });
    let client = TestClient::new(Router::new().route("/orders", route.route_layer(idempotency())));

    let failed = send(&client, "retry-me", "flaky").await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!replayed(&failed));
    // Released: the retry runs the handler again.
    let retried = send(&client, "retry-me", "flaky").await;
    assert_eq!(
        (retried.status(), retried.text().as_str()),
        (StatusCode::CREATED, "created, run 2")
    );
    assert!(!replayed(&retried));
    let replay = send(&client, "retry-me", "flaky").await;
    assert_eq!(
        (replay.text().as_str(), replayed(&replay)),
        ("created, run 2", true)
    );

    let invalid = send(&client, "bad", "invalid").await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    let again = send(&client, "bad", "invalid").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(replayed(&again));
    assert_eq!(again.bytes(), invalid.bytes());
    assert_eq!(counter.get(), 3);
}

#[tokio::test]
async fn invalid_keys_are_400_and_never_reach_the_handler() {
    let counter = Counter::default();
    let client = TestClient::new(
        Router::new().route("/orders", orders(&counter).route_layer(idempotency())),
    );
    let long = "k".repeat(256);
    for key in ["", long.as_str(), "has space", "cl\u{e9}"] {
        let response = send(&client, key, "x").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key:?}");
        assert_eq!(error_code(&response), "INVALID_IDEMPOTENCY_KEY");
    }
    let two_keys = client
        .post("/orders")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .send()
        .await;
    assert_eq!(two_keys.status(), StatusCode::BAD_REQUEST);
    assert_eq!(counter.get(), 0);
    let longest = "k".repeat(255);
    assert_eq!(
        send(&client, &longest, "x").await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn requests_without_a_key_and_other_methods_pass_through() {
    let counter = Counter::default();
    let get_counter = counter.clone();
    let route = orders(&counter).get(move || {
        let counter = get_counter.clone();
        async move { format!("get {}", counter.bump()) }
    });
    let client = TestClient::new(Router::new().route("/orders", route.route_layer(idempotency())));
    for n in [1, 2] {
        let response = client.post("/orders").body("x").send().await;
        assert_eq!(response.json::<Value>()["order"], n);
        assert!(!replayed(&response));
    }
    for n in [3, 4] {
        let response = client
            .get("/orders")
            .header("idempotency-key", "k")
            .send()
            .await;
        assert_eq!(response.text(), format!("get {n}"));
    }
    assert_eq!(counter.get(), 4);
}

#[tokio::test]
async fn the_handler_gets_the_body_and_oversized_bodies_are_413() {
    let counter = Counter::default();
    let client = TestClient::new(Router::new().route(
        "/orders",
        orders(&counter).route_layer(idempotency().max_body_bytes(16)),
    ));
    let ok = send(&client, "k", "0123456789abcdef").await;
    assert_eq!(ok.json::<Value>()["received"], "0123456789abcdef");
    let too_big = send(&client, "k2", "0123456789abcdefX").await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&too_big), "PAYLOAD_TOO_LARGE");
    assert_eq!(counter.get(), 1);
    // Without a key the cap does not apply (the app's body limit does).
    let no_key = client
        .post("/orders")
        .body("0123456789abcdefX")
        .send()
        .await;
    assert_eq!(no_key.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn records_expire_after_the_ttl_on_the_injected_clock() {
    let clock = ManualClock::new();
    let counter = Counter::default();
    let store = MemoryStore::new(100).with_clock(clock.clone());
    let client = TestClient::new(Router::new().route(
        "/orders",
        orders(&counter).route_layer(idempotency().ttl(60).store(store.clone())),
    ));
    send(&client, "k", "a").await;
    assert_eq!(store.len(), 1);
    clock.advance(Duration::from_secs(59));
    assert!(replayed(&send(&client, "k", "a").await));
    assert_eq!(
        send(&client, "k", "b").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    clock.advance(Duration::from_secs(1));
    assert!(store.is_empty());
    let fresh = send(&client, "k", "b").await;
    assert_eq!(
        (fresh.status(), replayed(&fresh)),
        (StatusCode::CREATED, false)
    );
    assert_eq!(counter.get(), 2);
}

#[tokio::test]
async fn the_handler_finishes_and_is_recorded_when_the_client_goes_away() {
    let counter = Counter::default();
    let entered = Arc::new(Semaphore::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (handler_counter, handler_entered, handler_gate) =
        (counter.clone(), entered.clone(), gate.clone());
    let route = post(move || {
        let (counter, entered, gate) = (
            handler_counter.clone(),
            handler_entered.clone(),
            handler_gate.clone(),
        );
        async move {
            let n = counter.bump();
            entered.add_permits(1);
            let _permit = gate.acquire().await.unwrap();
            (StatusCode::CREATED, format!("order {n}"))
        }
    });
    let client = TestClient::new(Router::new().route("/orders", route.route_layer(idempotency())));
    let abandoned = {
        let client = client.clone();
        tokio::spawn(async move { send(&client, "k", "x").await })
    };
    entered.acquire().await.unwrap().forget();
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    gate.add_permits(1);

    let mut attempts = 0;
    let replay = loop {
        let response = send(&client, "k", "x").await;
        if response.status() != StatusCode::CONFLICT {
            break response;
        }
        attempts += 1;
        assert!(attempts < 10_000, "the abandoned request never completed");
        tokio::task::yield_now().await;
    };
    assert_eq!(
        (replay.text().as_str(), replayed(&replay)),
        ("order 1", true)
    );
    assert_eq!(counter.get(), 1);
}

#[tokio::test]
async fn a_panicking_handler_is_500_and_releases_the_key() {
    let counter = Counter::default();
    let handler_counter = counter.clone();
    let route = post(move || {
        let counter = handler_counter.clone();
        async move {
            if counter.bump() == 1 {
                panic!("handler bug (expected by this test)");
            }
            (StatusCode::CREATED, "ok")
        }
    });
    let client = TestClient::new(Router::new().route("/orders", route.route_layer(idempotency())));
    let panicked = send(&client, "k", "x").await;
    assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&panicked), "INTERNAL_ERROR");

    let mut attempts = 0;
    let retried = loop {
        let response = send(&client, "k", "x").await;
        if response.status() != StatusCode::CONFLICT {
            break response;
        }
        attempts += 1;
        assert!(attempts < 10_000, "the key was never released");
        tokio::task::yield_now().await;
    };
    assert_eq!(
        (retried.status(), replayed(&retried)),
        (StatusCode::CREATED, false)
    );
    assert_eq!(counter.get(), 2);
}

/// A store that is down.
struct Unreachable;

impl IdempotencyStore for Unreachable {
    fn claim(&self, _: String, _: String, _: Duration) -> BoxFuture<'_, Result<Claim, StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }

    fn complete(
        &self,
        _: String,
        _: String,
        _: StoredResponse,
        _: Duration,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }

    fn release(&self, _: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }

    fn get(&self, _: String) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
}

#[tokio::test]
async fn a_failing_store_is_503_and_the_handler_does_not_run() {
    let counter = Counter::default();
    let client = TestClient::new(Router::new().route(
        "/orders",
        orders(&counter).route_layer(idempotency().store(Unreachable)),
    ));
    let response = send(&client, "k", "x").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&response), "IDEMPOTENCY_UNAVAILABLE");
    assert_eq!(counter.get(), 0);
}

#[allow(non_snake_case, unreachable_pub)]
mod route_file {
    //! What a route file looks like: `idempotency()` with empty parentheses is a constructor.
    use arbor::http::StatusCode;
    use arbor::idempotency::idempotency;

    #[arbor::handler(idempotency())]
    pub async fn POST(body: String) -> (StatusCode, String) {
        (StatusCode::CREATED, format!("created {body}"))
    }

    #[arbor::handler(idempotency(ttl = 3600, max_body_bytes = 4))]
    pub async fn PUT(body: String) -> String {
        format!("put {body}")
    }
}

#[tokio::test]
async fn the_middleware_list_syntax_works_with_idempotency() {
    let route = route_file::__arbor_handler_middleware_POST(post(route_file::POST), &());
    let route = route.merge(route_file::__arbor_handler_middleware_PUT(
        axum::routing::put(route_file::PUT),
        &(),
    ));
    let client = TestClient::new(Router::new().route("/orders", route));
    let first = send(&client, "k", "x").await;
    let second = send(&client, "k", "x").await;
    assert_eq!(
        (first.text().as_str(), replayed(&first)),
        ("created x", false)
    );
    assert_eq!(
        (second.text().as_str(), replayed(&second)),
        ("created x", true)
    );
    let too_big = client
        .put("/orders")
        .header("idempotency-key", "k")
        .body("12345")
        .send()
        .await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_response_too_large_to_store_still_counts_as_done() {
    let counter = Counter::default();
    let client = TestClient::new(Router::new().route(
        "/orders",
        orders(&counter).route_layer(idempotency().max_body_bytes(8)),
    ));
    let first = send(&client, "k", "x").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.json::<Value>()["received"], "x");
    // The handler ran: a retry must not run it again, even though only the status and the
    // headers could be kept.
    let retry = send(&client, "k", "x").await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert!(replayed(&retry));
    assert!(retry.bytes().is_empty());
    assert_eq!(retry.header("content-type"), None);
    assert_eq!(counter.get(), 1);
}
