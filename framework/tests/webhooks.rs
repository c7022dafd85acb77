//! `arbor::webhooks::verify` over real TCP: the raw body reaches the verifier and the handler
//! intact, every refusal is one `400`, stale timestamps are refused by the layer's clock,
//! replays are acknowledged without running the handler (and forgotten when it fails), and
//! registered verifiers answer `404` when a provider is not configured.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use arbor::clock::{Clock, ManualClock};
use arbor::webhooks::{
    verify, verify_registered, GitHub, StandardWebhooks, Stripe, Verifiers, WebhookEvent,
};
use arbor::{App, Json};
use axum::routing::{post, MethodRouter};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::Sha256;

const GITHUB_SECRET: &str = "github secret";
const STRIPE_SECRET: &str = "whsec_stripe";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn github_signature(body: &str) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac(GITHUB_SECRET.as_bytes(), &[body.as_bytes()]))
    )
}

fn stripe_signature(t: u64, body: &str) -> String {
    let t = t.to_string();
    let v1 = hmac(
        STRIPE_SECRET.as_bytes(),
        &[t.as_bytes(), b".", body.as_bytes()],
    );
    format!("t={t},v1={}", hex::encode(v1))
}

fn unix_secs(clock: &ManualClock) -> u64 {
    clock
        .system_time()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What every handler answers: the event as the layer handed it over.
async fn echo(event: WebhookEvent) -> Json<Value> {
    Json(json!({
        "provider": event.provider,
        "id": event.id,
        "type": event.event_type,
        "body": event.text(),
    }))
}

struct Server {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    clock: ManualClock,
    stripe_runs: Arc<AtomicUsize>,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    fn error(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["error"], code, "{}", self.body);
        &self.body
    }

    /// `400 INVALID_SIGNATURE`, with nothing but `error` and `message`; returns the message.
    fn refused(&self, case: &str) -> String {
        assert_eq!(
            self.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            self.body
        );
        assert_eq!(self.body["error"], "INVALID_SIGNATURE", "{case}");
        let keys: BTreeSet<&str> = self
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, BTreeSet::from(["error", "message"]), "{case}");
        self.body["message"].as_str().unwrap().to_owned()
    }
}

impl Server {
    async fn start() -> Self {
        let clock = ManualClock::new();
        let stripe_runs = Arc::new(AtomicUsize::new(0));
        let runs = stripe_runs.clone();
        let stripe = post(move |event: WebhookEvent| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if event.text().is_some_and(|body| body.contains("fail")) {
                    return Err(arbor::ApiError::internal());
                }
                Ok(echo(event).await)
            }
        })
        .layer(
            verify(Stripe::new(STRIPE_SECRET))
                .clock(clock.clone())
                .replay_ttl(3600),
        );
        let standard = StandardWebhooks::new(STANDARD_SECRET)
            .unwrap()
            .named("resend");
        let github: MethodRouter = post(echo).layer(verify(GitHub::new(GITHUB_SECRET)));
        let router = Router::new()
            .route("/github", github.layer(arbor::body_limit(256)))
            .route("/stripe", stripe)
            .route(
                "/resend",
                post(echo).layer(verify_registered("resend").clock(clock.clone())),
            )
            .route("/clerk", post(echo).layer(verify_registered("clerk")))
            .route("/unguarded", post(echo))
            .layer(Verifiers::new().register(standard));
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(arbor::serve(listener, App::new(router).into_router()));
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            clock,
            stripe_runs,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(
                request
                    .body(Full::new(Bytes::from(body.to_owned())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }
}

#[tokio::test]
async fn github_deliveries_are_verified_on_the_raw_body() {
    let server = Server::start().await;
    // Whitespace and key order as sent: re-serialised JSON would not match the signature.
    let body = "{ \"zen\":  \"Design for failure.\",\n \"hook_id\": 1 }";
    let ok = server
        .post(
            "/github",
            &[
                ("x-hub-signature-256", &github_signature(body)),
                ("x-github-delivery", "d-1"),
                ("x-github-event", "ping"),
            ],
            body,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        ok.body,
        json!({ "provider": "github", "id": "d-1", "type": "ping", "body": body })
    );

    let delivery = [("x-github-delivery", "d-2"), ("x-github-event", "ping")];
    let mut messages = BTreeSet::new();
    let wrong_secret = format!("sha256={}", hex::encode(hmac(b"wrong", &[body.as_bytes()])));
    let tampered = body.replace("failure", "success");
    for (case, signature, sent) in [
        ("wrong secret", Some(wrong_secret.as_str()), body),
        ("tampered body", Some(&*github_signature(body)), &*tampered),
        ("not hex", Some("sha256=xyz"), body),
        ("missing header", None, body),
    ] {
        let mut headers = delivery.to_vec();
        if let Some(signature) = signature {
            headers.push(("x-hub-signature-256", signature));
        }
        messages.insert(server.post("/github", &headers, sent).await.refused(case));
    }
    assert_eq!(messages.len(), 1, "one message whatever failed");

    // Signed, but no delivery id: the signature was fine, the event is not usable.
    server
        .post(
            "/github",
            &[
                ("x-hub-signature-256", &github_signature(body)),
                ("x-github-event", "ping"),
            ],
            body,
        )
        .await
        .error(400, "INVALID_PAYLOAD");

    // The route's body limit holds before anything is verified.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(300));
    server
        .post(
            "/github",
            &[("x-hub-signature-256", &github_signature(&big))],
            &big,
        )
        .await
        .error(413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn stripe_timestamps_are_checked_against_the_layers_clock() {
    let server = Server::start().await;
    let body = json!({ "id": "evt_clock", "type": "charge.succeeded" }).to_string();
    let signed_at = unix_secs(&server.clock);
    let signature = stripe_signature(signed_at, &body);
    // Five minutes pass: still within the tolerance (but a replay now).
    server.clock.advance(Duration::from_secs(300));
    let reply = server
        .post("/stripe", &[("stripe-signature", &signature)], &body)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["type"], "charge.succeeded");
    // One more second: the same signature is stale, and refused like any bad signature.
    server.clock.advance(Duration::from_secs(1));
    let other = json!({ "id": "evt_stale", "type": "charge.succeeded" }).to_string();
    server
        .post(
            "/stripe",
            &[("stripe-signature", &stripe_signature(signed_at, &other))],
            &other,
        )
        .await
        .refused("stale timestamp");
}

#[tokio::test]
async fn replayed_event_ids_are_acknowledged_without_running_the_handler() {
    let server = Server::start().await;
    let body = json!({ "id": "evt_replayed", "type": "invoice.paid" }).to_string();
    let first = server
        .post(
            "/stripe",
            &[(
                "stripe-signature",
                &stripe_signature(unix_secs(&server.clock), &body),
            )],
            &body,
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["id"], "evt_replayed");
    // Stripe re-signs a retry with a new timestamp: the id is what gives it away.
    server.clock.advance(Duration::from_secs(60));
    let again = server
        .post(
            "/stripe",
            &[(
                "stripe-signature",
                &stripe_signature(unix_secs(&server.clock), &body),
            )],
            &body,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, json!({ "received": true, "duplicate": true }));
    assert_eq!(server.stripe_runs.load(Ordering::SeqCst), 1);

    // A handler that fails does not use up the id: the provider's retry runs it again.
    let failing = json!({ "id": "evt_fail", "type": "fail" }).to_string();
    for attempt in 1..=2 {
        server
            .post(
                "/stripe",
                &[(
                    "stripe-signature",
                    &stripe_signature(unix_secs(&server.clock), &failing),
                )],
                &failing,
            )
            .await
            .error(500, "INTERNAL_ERROR");
        assert_eq!(server.stripe_runs.load(Ordering::SeqCst), 1 + attempt);
    }
}

#[tokio::test]
async fn registered_verifiers_are_found_by_name_and_missing_ones_are_404() {
    let server = Server::start().await;
    let body = r#"{"type":"email.delivered","data":{}}"#;
    let timestamp = unix_secs(&server.clock).to_string();
    let key = BASE64.decode(&STANDARD_SECRET["whsec_".len()..]).unwrap();
    let signature = BASE64.encode(hmac(
        &key,
        &[b"msg_1", b".", timestamp.as_bytes(), b".", body.as_bytes()],
    ));
    let headers = [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", &*format!("v1,{signature}")),
    ];
    let reply = server.post("/resend", &headers, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "provider": "resend", "id": "msg_1", "type": "email.delivered", "body": body })
    );
    server
        .post("/resend", &headers[..2], body)
        .await
        .refused("no signature");

    // No verifier is registered as `clerk`: the route is not there.
    let missing = server.post("/clerk", &headers, body).await;
    assert_eq!(
        missing.error(404, "NOT_FOUND")["message"],
        "no route for /clerk"
    );

    // A handler asking for a WebhookEvent without the layer is a server bug, not a 2xx.
    server
        .post("/unguarded", &headers, body)
        .await
        .error(500, "INTERNAL_ERROR");
}
