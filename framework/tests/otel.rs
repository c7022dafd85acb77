//! The server span of `App::trace_requests`, exported through the OpenTelemetry SDK into a
//! collecting exporter: a `tracing` span that a handler opens is its child, in its trace, and
//! the span carries the route's pattern.

#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use arbor::test::TestClient;
use arbor::{App, Path};
use axum::routing::get;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Keeps every span it is given.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

async fn item(Path(id): Path<u32>) -> String {
    async { id.to_string() }
        .instrument(tracing::info_span!("load_item", id))
        .await
}

#[tokio::test]
async fn a_handlers_tracing_span_is_a_child_of_the_server_span() {
    let spans = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    // The request-log layer too, whose span sits between the server span and the handler's.
    let subscriber = tracing_subscriber::registry()
        .with(arbor::otel::tracing_layer(provider.tracer("test")))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    let _default = tracing::subscriber::set_default(subscriber);

    let routes = arbor::Router::new().route("/items/{id}", get(item));
    let client = TestClient::new(App::new(routes).trace_requests(true).into_router());
    let response = client.get("/items/7").send().await;
    assert_eq!(response.text(), "7");
    provider.force_flush().unwrap();

    let spans = spans.0.lock().unwrap().clone();
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap_or_else(|| panic!("no server span in {spans:#?}"));
    assert_eq!(server.name, "GET /items/{id}");
    let route = server
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "http.route")
        .map(|kv| kv.value.to_string());
    assert_eq!(route.as_deref(), Some("/items/{id}"));
    let child = spans
        .iter()
        .find(|s| s.name == "load_item")
        .unwrap_or_else(|| panic!("the handler's span was not exported: {spans:#?}"));
    assert_eq!(
        child.span_context.trace_id(),
        server.span_context.trace_id()
    );
    assert_eq!(child.parent_span_id, server.span_context.span_id());
}
