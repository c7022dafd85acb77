//! OpenTelemetry traces from the reference app, as a real process, to a real OTLP/HTTP
//! receiver in the test that decodes what it gets: one server span per request, named and
//! attributed by the HTTP semantic conventions, continuing the caller's `traceparent`, with
//! the trace id in the request's JSON log lines.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::sync::mpsc;

use common::process::AppProcess;

/// An OTLP/HTTP receiver on a free loopback port: every span it is sent, decoded.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Span>) {
    let (sender, spans) = mpsc::unbounded_channel();
    let router = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sender = sender.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                for span in request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans)
                {
                    let _ = sender.send(span);
                }
                // An empty ExportTraceServiceResponse.
                ([("content-type", "application/x-protobuf")], Vec::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (endpoint, spans)
}

/// The next span whose trace id is `trace_id` (hex), within 30 seconds.
async fn span_of(spans: &mut mpsc::UnboundedReceiver<Span>, trace_id: &str) -> Span {
    let wait = async {
        loop {
            let span = spans.recv().await.unwrap();
            if hex(&span.trace_id) == trace_id {
                return span;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no span of trace {trace_id} was exported"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.clone())
        .and_then(|v| v.value)
}

fn string(value: &str) -> Option<AnyValue> {
    Some(AnyValue::StringValue(value.to_owned()))
}

#[tokio::test]
async fn request_spans_continue_traceparent_follow_the_conventions_and_reach_the_logs() {
    let (endpoint, mut spans) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppProcess::start(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            // Export within a tenth of a second instead of five, so the test waits less.
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("ARBOR_LOG_FORMAT", "json".into()),
            ("RUST_LOG", "info".into()),
            (
                "DATABASE_URL",
                format!("sqlite://{}/app.db?mode=rwc", dir.path().display()),
            ),
        ],
        dir.path(),
    )
    .await;
    let http = reqwest::Client::new();

    // A caller's trace: the server span is its child.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let response = http
        .get(format!("{}/api/v1/items/42", app.base))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let span = span_of(&mut spans, trace_id).await;
    assert_eq!(span.name, "GET /api/v1/items/{id}");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&span.parent_span_id), caller_span);
    assert_eq!(attribute(&span, "http.request.method"), string("GET"));
    assert_eq!(attribute(&span, "http.route"), string("/api/v1/items/{id}"));
    assert_eq!(attribute(&span, "url.path"), string("/api/v1/items/42"));
    assert_eq!(
        attribute(&span, "http.response.status_code"),
        Some(AnyValue::IntValue(i64::from(status)))
    );
    // The request's log lines carry the trace id.
    let logged = app
        .line_containing(&format!("\"trace_id\":\"{trace_id}\""))
        .await;
    assert!(logged.contains("/api/v1/items/42"), "{logged}");

    // No traceparent: a trace of its own, with no parent; an unmatched path is named by its
    // method alone (a raw path would make every URL a span name).
    let response = http
        .get(format!("{}/no/such/route", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let started = app.line_containing("/no/such/route").await;
    let own_trace = started
        .split("\"trace_id\":\"")
        .nth(1)
        .and_then(|rest| rest.get(..32))
        .unwrap_or_else(|| panic!("no trace id in {started}"))
        .to_owned();
    assert_ne!(own_trace, trace_id);
    let span = span_of(&mut spans, &own_trace).await;
    assert!(span.parent_span_id.is_empty(), "{span:?}");
    assert_eq!(span.name, "GET");
    assert_eq!(attribute(&span, "http.route"), None);
    assert_eq!(
        attribute(&span, "http.response.status_code"),
        Some(AnyValue::IntValue(404))
    );
}
