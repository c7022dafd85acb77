//! A client that stops reading its event stream while 100,000 events (100 MB) are published:
//! publishers are never held up, the server's memory stays flat, the subscriber's queue stays
//! within the topic's capacity, and when the client reads again it is told how many events it
//! skipped.
//!
//! Alone in its own test binary so no other test's allocations blur the measurement.

#![allow(clippy::unwrap_used)]

mod sse_support;

use std::time::{Duration, Instant};

use arbor::events::{Bus, BusOptions, InMemoryBus};
use arbor::sse::Sse;
use arbor::{App, Extension, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sse_support::{eventually, rss_bytes, Conn, Server};

const EVENTS: u64 = 100_000;
const CAPACITY: usize = 256;
const MAX_GROWTH: u64 = 30 * 1024 * 1024;

#[derive(serde::Serialize)]
struct Tick<'a> {
    n: u64,
    pad: &'a str,
}

async fn firehose(sse: Sse, Extension(bus): Extension<Bus>) -> Result<Response, arbor::ApiError> {
    sse.subscribe(&bus, "firehose").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_costs_bounded_memory_and_learns_what_it_missed() {
    let memory = InMemoryBus::new(BusOptions::default().capacity(CAPACITY).replay(16));
    let bus = Bus::new(memory.clone());
    let router = Router::new()
        .route("/firehose", get(firehose))
        .layer(axum::Extension(bus.clone()));
    let server = Server::start(App::new(router).into_router()).await;

    let mut conn = Conn::open(server.addr, "GET /firehose HTTP/1.1", b"").await;
    assert_eq!(conn.next_event().await.unwrap().name(), Some("connected"));
    eventually("the subscription", || bus.subscriber_count() == 1).await;

    // From here on the client reads nothing.
    let payload = "x".repeat(1000);
    let baseline = rss_bytes();
    let mut peak = baseline;
    let mut max_queued = 0;
    let started = Instant::now();
    for n in 0..EVENTS {
        bus.publish("firehose", "tick", &Tick { n, pad: &payload })
            .await
            .unwrap();
        if n % 1000 == 0 {
            max_queued = max_queued.max(memory.queued("firehose"));
            peak = peak.max(rss_bytes());
            // Let the connection task write what the socket takes.
            tokio::task::yield_now().await;
        }
    }
    let publishing = started.elapsed();
    peak = peak.max(rss_bytes());
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "published {EVENTS} x 1 KB in {publishing:?} to a stalled client: RSS growth {:.1} MiB, \
         max queued {max_queued}",
        growth as f64 / f64::from(1 << 20)
    );
    assert!(max_queued <= CAPACITY, "queue bounded: {max_queued}");
    assert!(growth < MAX_GROWTH, "RSS grew by {growth} bytes");
    assert!(
        publishing < Duration::from_secs(30),
        "publishers are never held up by the stalled client"
    );

    // The client reads again: what the socket held, then `lagged`, then the rest.
    let last = bus.publish("firehose", "done", &json!({})).await.unwrap();
    let (mut received, mut missed, mut lagged_events) = (0u64, 0u64, 0);
    let mut previous_id = 0;
    loop {
        let event = conn.next_event().await.unwrap();
        match event.name() {
            Some("tick") => {
                let id = event.id().unwrap();
                assert!(id > previous_id, "in order");
                previous_id = id;
                received += 1;
            }
            Some("lagged") => {
                lagged_events += 1;
                missed += event.json()["missed"].as_u64().unwrap();
            }
            Some("done") => {
                assert_eq!(event.id(), Some(last));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("client then read {received} events and was told it missed {missed}");
    assert!(lagged_events >= 1);
    assert!(
        received < EVENTS / 2,
        "most events were skipped, not buffered"
    );
    assert_eq!(
        received + missed,
        EVENTS,
        "every event is either received or counted missed"
    );
    assert_eq!(memory.stats().lagged, missed);
}
