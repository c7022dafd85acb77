//! Streaming end to end over real TCP, reading the raw bytes: progress streams, SSE
//! subscriptions (heartbeat, resume, cleanup), graceful shutdown and uploads.

#![allow(clippy::unwrap_used)]

mod log_capture;

mod sse_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log_capture::{capture, log_lines_for};

use arbor::events::{Bus, BusOptions, InMemoryBus};
use arbor::sse::Sse;
use arbor::upload::{serve_file, LocalStorage, StoredFile, Upload, UploadLimits};
use arbor::{progress, ApiError, App, Extension, Request, Response, ServeOptions};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use http::StatusCode;
use serde_json::{json, Value};
use sse_support::{eventually, multipart, Conn, Frame, Server, BOUNDARY, PATIENCE};
use tokio::sync::oneshot;

fn app(router: Router) -> Router {
    capture();
    App::new(router).into_router()
}

fn assert_event_stream_headers(conn: &Conn) {
    assert_eq!(conn.status, 200);
    assert_eq!(conn.header("content-type"), Some("text/event-stream"));
    assert_eq!(conn.header("cache-control"), Some("no-cache"));
    assert_eq!(conn.header("x-accel-buffering"), Some("no"));
    assert_eq!(conn.header("transfer-encoding"), Some("chunked"));
}

// ---------------------------------------------------------------------------------------------
// Progress streams

#[derive(serde::Serialize)]
struct Report {
    rows: u32,
    format: String,
}

async fn report() -> Response {
    progress::stream(|progress| async move {
        progress.step(25, "fetching data").await;
        tokio::task::yield_now().await;
        progress.processing(50).await;
        progress.send("log", &json!({ "line": "rendering" })).await;
        Ok(Report {
            rows: 3,
            format: "csv".into(),
        })
    })
}

async fn failing_report() -> Response {
    progress::stream(|progress| async move {
        progress.processing(10).await;
        let cause = std::io::Error::other("connection refused: postgres://admin:hunter2@db");
        Err::<(), _>(ApiError::internal_with(cause))
    })
}

async fn not_found_report() -> Response {
    progress::stream(
        |_| async move { Err::<(), _>(ApiError::not_found("No data for that date range")) },
    )
}

async fn panicking_report() -> Response {
    progress::stream(|progress| async move {
        progress.processing(10).await;
        if progress.is_closed() {
            return Ok(());
        }
        panic!("report template missing at /srv/secret/templates");
    })
}

#[tokio::test]
async fn progress_streams_send_typed_events_in_order_with_the_right_headers() {
    let server = Server::start(app(Router::new().route("/report", post(report)))).await;
    let mut conn = Conn::open(
        server.addr,
        "POST /report HTTP/1.1\r\nX-Request-ID: progress-ok-1",
        b"",
    )
    .await;
    assert_event_stream_headers(&conn);
    assert_eq!(conn.header("x-request-id"), Some("progress-ok-1"));

    let mut frames = Vec::new();
    while let Some(frame) = conn.next_frame().await {
        frames.push(frame);
    }
    let names: Vec<_> = frames.iter().map(|f| f.name().unwrap()).collect();
    assert_eq!(
        names,
        ["started", "processing", "processing", "log", "complete"]
    );
    let ids: Vec<_> = frames.iter().map(|f| f.id().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let data: Vec<_> = frames.iter().map(Frame::json).collect();
    assert_eq!(data[0], json!({ "status": "started", "progress": 0 }));
    assert_eq!(
        data[1],
        json!({ "status": "processing", "progress": 25, "message": "fetching data" })
    );
    assert_eq!(data[2], json!({ "status": "processing", "progress": 50 }));
    assert_eq!(data[3], json!({ "line": "rendering" }));
    assert_eq!(
        data[4],
        json!({
            "status": "complete",
            "progress": 100,
            "result": { "rows": 3, "format": "csv" }
        })
    );
    assert!(conn.ended, "the stream ends after `complete`");
}

#[tokio::test]
async fn progress_errors_are_logged_in_full_and_sent_as_the_safe_message_only() {
    let router = Router::new()
        .route("/fail", post(failing_report))
        .route("/missing", post(not_found_report))
        .route("/panic", post(panicking_report));
    let server = Server::start(app(router)).await;

    let mut conn = Conn::open(
        server.addr,
        "POST /fail HTTP/1.1\r\nX-Request-ID: progress-err-1",
        b"",
    )
    .await;
    assert_eq!(conn.next_event().await.unwrap().name(), Some("started"));
    assert_eq!(conn.next_event().await.unwrap().name(), Some("processing"));
    let error = conn.next_event().await.unwrap();
    assert_eq!(error.name(), Some("error"));
    assert_eq!(error.id(), Some(3));
    assert_eq!(
        error.json(),
        json!({
            "status": "error",
            "error": "INTERNAL_ERROR",
            "message": "An unexpected error occurred"
        })
    );
    assert_eq!(conn.next_frame().await, None);
    let lines = log_lines_for("progress-err-1");
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["error"].as_str().unwrap_or_default().contains("hunter2")
            && l["span"]["request_id"] == "progress-err-1"),
        "the cause is logged in full inside the request span: {lines:#?}"
    );

    // A deliberate ApiError keeps its code and message (they are safe by construction).
    let mut conn = Conn::open(
        server.addr,
        "POST /missing HTTP/1.1\r\nX-Request-ID: progress-err-2",
        b"",
    )
    .await;
    assert_eq!(conn.next_event().await.unwrap().name(), Some("started"));
    let error = conn.next_event().await.unwrap();
    assert_eq!(
        error.json(),
        json!({ "status": "error", "error": "NOT_FOUND", "message": "No data for that date range" })
    );

    // A panic becomes the generic message; the panic is logged with the request id.
    let mut conn = Conn::open(
        server.addr,
        "POST /panic HTTP/1.1\r\nX-Request-ID: progress-err-3",
        b"",
    )
    .await;
    let mut last = None;
    while let Some(frame) = conn.next_event().await {
        last = Some(frame);
    }
    let last = last.unwrap();
    assert_eq!(last.name(), Some("error"));
    assert_eq!(last.json()["message"], "An unexpected error occurred");
    assert!(!last.json().to_string().contains("secret"));
    let lines = log_lines_for("progress-err-3");
    assert!(
        lines.iter().any(|l| l["level"] == "ERROR"
            && l["panic"]
                .as_str()
                .unwrap_or_default()
                .contains("/srv/secret")),
        "{lines:#?}"
    );
}

/// Sends on a channel when dropped: shows that a future (or a stream) was dropped.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test]
async fn progress_work_is_cancelled_when_the_client_disconnects() {
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
    let steps = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&steps);
    let router = Router::new().route(
        "/endless",
        post(move || {
            let signal = DropSignal(dropped_tx.lock().unwrap().take());
            let counter = Arc::clone(&counter);
            async move {
                progress::stream(move |progress| async move {
                    let _signal = signal;
                    for i in 0u8.. {
                        progress.processing(i % 100).await;
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(())
                })
            }
        }),
    );
    let server = Server::start(app(router)).await;
    let mut conn = Conn::open(server.addr, "POST /endless HTTP/1.1", b"").await;
    assert_eq!(conn.next_event().await.unwrap().name(), Some("started"));
    assert_eq!(conn.next_event().await.unwrap().name(), Some("processing"));
    drop(conn);
    tokio::time::timeout(PATIENCE, dropped_rx)
        .await
        .expect("the work was not cancelled")
        .unwrap();
    let after = steps.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        steps.load(Ordering::SeqCst),
        after,
        "no step after the cancel"
    );
}

// ---------------------------------------------------------------------------------------------
// SSE subscriptions

#[derive(Clone)]
struct Events {
    bus: Bus,
    closed: Arc<AtomicUsize>,
}

fn events_router(bus: Bus, closed: Arc<AtomicUsize>, heartbeat: Duration) -> Router {
    Router::new()
        .route(
            "/events/{user}",
            get(
                move |sse: Sse, Path(user): Path<u64>, Extension(events): Extension<Events>| async move {
                    let closed = Arc::clone(&events.closed);
                    sse.connected(&json!({ "userId": user }))
                        .heartbeat(heartbeat)
                        .on_close(move || {
                            closed.fetch_add(1, Ordering::SeqCst);
                        })
                        .subscribe(&events.bus, &format!("user:{user}"))
                        .await
                },
            ),
        )
        .layer(axum::Extension(Events { bus, closed }))
}

#[tokio::test]
async fn sse_sends_connected_bus_events_heartbeats_and_resumes_after_last_event_id() {
    let bus = Bus::in_memory();
    let closed = Arc::new(AtomicUsize::new(0));
    let router = events_router(bus.clone(), Arc::clone(&closed), Duration::from_millis(50));
    let server = Server::start(app(router)).await;

    let mut conn = Conn::open(server.addr, "GET /events/7 HTTP/1.1", b"").await;
    assert_event_stream_headers(&conn);
    let connected = conn.next_frame().await.unwrap();
    assert_eq!(
        connected,
        Frame::Event {
            id: None,
            event: Some("connected".into()),
            data: r#"{"userId":7}"#.into()
        }
    );
    eventually("the subscription", || {
        bus.topic_subscriber_count("user:7") == 1
    })
    .await;

    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(
            bus.publish("user:7", "post.updated", &json!({ "postId": n }))
                .await
                .unwrap(),
        );
    }
    bus.publish("user:8", "post.updated", &json!({ "postId": 99 }))
        .await
        .unwrap();
    for (n, id) in (1..=3).zip(&ids) {
        let event = conn.next_event().await.unwrap();
        assert_eq!(event.name(), Some("post.updated"));
        assert_eq!(event.id(), Some(*id));
        assert_eq!(event.json(), json!({ "postId": n }));
    }
    // Then silence: a heartbeat comment arrives (within the test's patience; 50 ms interval).
    assert_eq!(
        conn.next_frame().await,
        Some(Frame::Comment("heartbeat".into()))
    );
    drop(conn);
    eventually("the close hook", || closed.load(Ordering::SeqCst) == 1).await;

    // An event while disconnected, then a reconnect with the last id seen.
    let missed = bus
        .publish("user:7", "post.updated", &json!({ "postId": 4 }))
        .await
        .unwrap();
    let mut conn = Conn::open(
        server.addr,
        &format!("GET /events/7 HTTP/1.1\r\nLast-Event-ID: {}", ids[0]),
        b"",
    )
    .await;
    assert_eq!(conn.next_event().await.unwrap().name(), Some("connected"));
    let replayed: Vec<_> = [
        conn.next_event().await.unwrap(),
        conn.next_event().await.unwrap(),
        conn.next_event().await.unwrap(),
    ]
    .iter()
    .map(|e| (e.id().unwrap(), e.json()["postId"].as_u64().unwrap()))
    .collect();
    assert_eq!(replayed, [(ids[1], 2), (ids[2], 3), (missed, 4)]);
    let live = bus
        .publish("user:7", "post.updated", &json!({ "postId": 5 }))
        .await
        .unwrap();
    assert_eq!(conn.next_event().await.unwrap().id(), Some(live));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_dropped_connections_leave_no_subscriber_topic_or_task() {
    const CONNECTIONS: usize = 1000;
    let memory = InMemoryBus::new(BusOptions::default());
    let bus = Bus::new(memory.clone());
    let closed = Arc::new(AtomicUsize::new(0));
    // Default heartbeat (30 s): disconnects must be noticed without a write failing.
    let router = events_router(bus.clone(), Arc::clone(&closed), Duration::from_secs(30));
    let server = Server::start(app(router)).await;

    let mut conns = Vec::with_capacity(CONNECTIONS);
    for batch in 0..CONNECTIONS / 100 {
        let opened = (0..100).map(|i| {
            let addr = server.addr;
            tokio::spawn(async move {
                let user = batch * 100 + i;
                let mut conn =
                    Conn::open(addr, &format!("GET /events/{} HTTP/1.1", user % 10), b"").await;
                assert_eq!(conn.next_event().await.unwrap().name(), Some("connected"));
                conn
            })
        });
        for conn in futures_util::future::join_all(opened).await {
            conns.push(conn.unwrap());
        }
    }
    eventually("every subscription", || {
        bus.subscriber_count() == CONNECTIONS
    })
    .await;
    assert_eq!(memory.stats().topics, 10);
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();

    drop(conns);
    eventually("zero subscribers after the disconnects", || {
        bus.subscriber_count() == 0
    })
    .await;
    eventually("every close hook", || {
        closed.load(Ordering::SeqCst) == CONNECTIONS
    })
    .await;
    assert_eq!(
        memory.stats().topics,
        0,
        "topics without subscribers or events are freed"
    );
    let metrics = tokio::runtime::Handle::current().metrics();
    eventually("the connection tasks to end", || {
        metrics.num_alive_tasks() + CONNECTIONS <= alive
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown

#[tokio::test]
async fn shutdown_ends_sse_streams_with_a_final_event_and_lets_requests_finish() {
    let bus = Bus::in_memory();
    let closed = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let router = events_router(bus.clone(), Arc::clone(&closed), Duration::from_secs(30)).route(
        "/slow",
        get(move || {
            let started = started_tx.lock().unwrap().take();
            async move {
                if let Some(started) = started {
                    let _ = started.send(());
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                "finished"
            }
        }),
    );
    let server = Server::start_with(
        app(router),
        ServeOptions::default().shutdown_grace(Duration::from_secs(5)),
    )
    .await;

    let mut sse = Conn::open(server.addr, "GET /events/1 HTTP/1.1", b"").await;
    assert_eq!(sse.next_event().await.unwrap().name(), Some("connected"));
    let addr = server.addr;
    let slow = tokio::spawn(async move {
        let mut conn = Conn::open(addr, "GET /slow HTTP/1.1", b"").await;
        let body = conn.body().await;
        (
            conn.status,
            conn.header("connection").map(str::to_owned),
            body,
        )
    });
    tokio::time::timeout(PATIENCE, started_rx)
        .await
        .unwrap()
        .unwrap();

    server.shutdown.trigger();

    let last = sse.next_frame().await.unwrap();
    assert_eq!(last.name(), Some("shutdown"));
    assert_eq!(last.json(), json!({ "reason": "server shutting down" }));
    assert_eq!(
        sse.next_frame().await,
        None,
        "the stream ends after `shutdown`"
    );
    eventually("the SSE close hook", || closed.load(Ordering::SeqCst) == 1).await;

    // No new connections...
    eventually("the listener to close", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    // ...but the request in flight completes.
    let (status, connection, body) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, b"finished");
    assert_eq!(connection.as_deref(), Some("close"));
    tokio::time::timeout(PATIENCE, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(bus.subscriber_count(), 0);
}

#[tokio::test]
async fn shutdown_closes_what_is_still_open_at_the_deadline() {
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let (dropped_tx, dropped_rx) = oneshot::channel();
    let dropped_tx = Arc::new(Mutex::new(Some(dropped_tx)));
    let router = Router::new().route(
        "/hang",
        get(move || {
            let started = started_tx.lock().unwrap().take();
            let signal = DropSignal(dropped_tx.lock().unwrap().take());
            async move {
                let _signal = signal;
                if let Some(started) = started {
                    let _ = started.send(());
                }
                std::future::pending::<()>().await;
            }
        }),
    );
    // No App: its default 10 s request timeout would otherwise be the one to end the handler.
    let server = Server::start_with(
        router,
        ServeOptions::default().shutdown_grace(Duration::from_millis(200)),
    )
    .await;
    let addr = server.addr;
    let client = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            format!("GET /hang HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let read = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut buf).await;
        (read.is_ok(), buf)
    });
    tokio::time::timeout(PATIENCE, started_rx)
        .await
        .unwrap()
        .unwrap();
    let begun = tokio::time::Instant::now();
    server.shutdown.trigger();
    tokio::time::timeout(PATIENCE, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let took = begun.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    tokio::time::timeout(PATIENCE, dropped_rx)
        .await
        .expect("the handler was dropped")
        .unwrap();
    let (_, received) = tokio::time::timeout(PATIENCE, client)
        .await
        .unwrap()
        .unwrap();
    assert!(received.is_empty(), "no response, the connection is closed");
}

/// One HTTP/1.1 keep-alive connection, driven by hyper's client.
async fn keep_alive(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

async fn get_on(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
) -> (u16, Option<String>, Vec<u8>) {
    use http_body_util::BodyExt;
    sender.ready().await.unwrap();
    let request = http::Request::get(path)
        .header("host", "arbor.test")
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let connection = response
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, connection, body.to_vec())
}

#[tokio::test]
async fn the_drain_delay_keeps_serving_while_readiness_fails_then_stops_accepting() {
    let drain = Duration::from_millis(1000);
    let server = Server::start_with(
        app(Router::new().route("/hello", get(|| async { "hello" }))),
        ServeOptions::default().drain_delay(drain),
    )
    .await;
    let addr = server.addr;
    let mut before = keep_alive(addr).await;
    assert_eq!(
        get_on(&mut before, "/hello").await,
        (200, None, b"hello".to_vec())
    );
    let mut ready = Conn::open(addr, "GET /readyz HTTP/1.1", b"").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body().await, br#"{"status":"ready","checks":{}}"#);

    let begun = tokio::time::Instant::now();
    server.shutdown.trigger();

    // New connections are still accepted, and readiness tells the balancer to go away...
    let mut ready = Conn::open(addr, "GET /readyz HTTP/1.1", b"").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.header("connection"), Some("close"));
    let body: Value = serde_json::from_slice(&ready.body().await).unwrap();
    assert_eq!(body["error"], "SHUTTING_DOWN");
    let mut live = Conn::open(addr, "GET /livez HTTP/1.1", b"").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.body().await, br#"{"status":"alive"}"#);
    // ...and a keep-alive connection gets its answer with `Connection: close`, so its client
    // opens a new connection for the next request instead of racing the server's close.
    assert_eq!(
        get_on(&mut before, "/hello").await,
        (200, Some("close".to_owned()), b"hello".to_vec())
    );
    let mut fresh = keep_alive(addr).await;
    assert_eq!(
        get_on(&mut fresh, "/hello").await,
        (200, Some("close".to_owned()), b"hello".to_vec())
    );

    // Once the drain delay is over, the listener closes and the server returns.
    eventually("the listener to close", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    assert!(begun.elapsed() >= drain, "{:?}", begun.elapsed());
    tokio::time::timeout(PATIENCE, server.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Uploads

fn upload_limits() -> UploadLimits {
    UploadLimits::new()
        .max_size(64 * 1024)
        .allow(["text/plain", "image/*"])
}

fn upload_router(storage: LocalStorage) -> Router {
    async fn upload_with_progress(
        Extension(storage): Extension<LocalStorage>,
        request: Request,
    ) -> Result<Response, ApiError> {
        let upload = Upload::accept(request, &upload_limits()).await?;
        let description = upload.text_field("description").map(str::to_owned);
        Ok(progress::stream(move |progress| async move {
            let stored = upload
                .save(&storage, |p| {
                    if let Some(percent) = p.percent {
                        progress.try_processing(percent);
                    }
                })
                .await?;
            Ok(json!({
                "url": format!("/files/{}", stored.id),
                "file": stored,
                "description": description,
            }))
        }))
    }

    async fn upload_plain(
        Extension(storage): Extension<LocalStorage>,
        request: Request,
    ) -> Result<(StatusCode, axum::Json<StoredFile>), ApiError> {
        let upload = Upload::accept(request, &upload_limits()).await?;
        let stored = upload.save(&storage, |_| {}).await?;
        Ok((StatusCode::CREATED, axum::Json(stored)))
    }

    async fn download(
        Extension(storage): Extension<LocalStorage>,
        Path(id): Path<String>,
    ) -> Result<Response, ApiError> {
        serve_file(&storage, &id).await
    }

    Router::new()
        .route("/upload", post(upload_with_progress))
        .route("/upload/plain", post(upload_plain))
        .route("/files/{id}", get(download))
        .layer(axum::Extension(storage))
}

async fn expect_error(conn: &mut Conn, status: u16, code: &str) -> Value {
    assert_eq!(conn.status, status);
    assert_eq!(conn.header("content-type"), Some("application/json"));
    let body = conn.json().await;
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].is_string());
    body
}

fn multipart_head(path: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}")
}

fn stored_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn uploads_stream_with_progress_and_are_served_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(app(upload_router(LocalStorage::new(dir.path())))).await;
    let content: Vec<u8> = (0..50_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let body = multipart(&[
        ("description", None, None, b"holiday notes"),
        (
            "file",
            Some("../../etc/notes.txt"),
            Some("text/plain"),
            &content,
        ),
    ]);
    let mut conn = Conn::open(server.addr, &multipart_head("/upload"), &body).await;
    assert_event_stream_headers(&conn);
    let mut frames = Vec::new();
    while let Some(frame) = conn.next_event().await {
        frames.push(frame);
    }
    assert_eq!(frames.first().unwrap().name(), Some("started"));
    let complete = frames.last().unwrap();
    assert_eq!(complete.name(), Some("complete"));
    let percents: Vec<u64> = frames[1..frames.len() - 1]
        .iter()
        .map(|f| {
            assert_eq!(f.name(), Some("processing"));
            f.json()["progress"].as_u64().unwrap()
        })
        .collect();
    assert!(!percents.is_empty());
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    assert!(percents.iter().all(|p| *p <= 100), "{percents:?}");
    let result = complete.json()["result"].clone();
    assert_eq!(result["description"], "holiday notes");
    assert_eq!(
        result["file"]["fileName"], "notes.txt",
        "no directories kept"
    );
    assert_eq!(result["file"]["contentType"], "text/plain");
    assert_eq!(result["file"]["size"], 50_000);
    let id = result["file"]["id"].as_str().unwrap();
    assert_eq!(result["url"], format!("/files/{id}"));
    assert!(stored_files(dir.path())
        .iter()
        .all(|name| name.starts_with(id)));

    let mut conn = Conn::open(
        server.addr,
        &format!("GET {} HTTP/1.1", result["url"].as_str().unwrap()),
        b"",
    )
    .await;
    assert_eq!(conn.status, 200);
    assert_eq!(conn.header("content-type"), Some("text/plain"));
    assert_eq!(conn.header("content-length"), Some("50000"));
    assert_eq!(conn.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        conn.header("content-disposition"),
        Some("inline; filename=\"notes.txt\"; filename*=UTF-8''notes%2Etxt")
    );
    assert_eq!(conn.body().await, content);

    // Unknown and path-like ids are a plain 404.
    for path in [
        "/files/0123456789abcdef0123456789abcdef",
        "/files/..%2F..%2Fetc%2Fpasswd",
    ] {
        let mut conn = Conn::open(server.addr, &format!("GET {path} HTTP/1.1"), b"").await;
        assert_eq!(conn.status, 404);
        assert_eq!(conn.json().await["error"], "NOT_FOUND");
    }
}

#[tokio::test]
async fn uploads_are_refused_with_400_413_and_415_in_the_standard_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(app(upload_router(LocalStorage::new(dir.path())))).await;
    let addr = server.addr;

    // 400: not multipart, no file field, an empty file input, a text `file` field.
    for path in ["/upload", "/upload/plain"] {
        let mut conn = Conn::open(
            addr,
            &format!("POST {path} HTTP/1.1\r\nContent-Type: application/json"),
            b"{}",
        )
        .await;
        expect_error(&mut conn, 400, "FILE_REQUIRED").await;
        for parts in [
            multipart(&[("description", None, None, b"no file")]),
            multipart(&[("file", Some(""), Some("application/octet-stream"), b"")]),
            multipart(&[("file", None, None, b"just text")]),
        ] {
            let mut conn = Conn::open(addr, &multipart_head(path), &parts).await;
            expect_error(&mut conn, 400, "FILE_REQUIRED").await;
        }
    }

    // 415: a type that isn't allowed.
    let body = multipart(&[("file", Some("page.html"), Some("text/html"), b"<script>")]);
    let mut conn = Conn::open(addr, &multipart_head("/upload"), &body).await;
    let error = expect_error(&mut conn, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    assert_eq!(
        error["details"]["allowed"],
        json!(["text/plain", "image/*"])
    );

    // 413 before reading anything: the Content-Length alone is too large.
    let big = vec![b'x'; 200 * 1024];
    let body = multipart(&[("file", Some("big.png"), Some("image/png"), &big)]);
    let mut conn = Conn::open(addr, &multipart_head("/upload"), &body).await;
    expect_error(&mut conn, 413, "PAYLOAD_TOO_LARGE").await;

    // 413 mid-stream (chunked, no Content-Length): writing stops and the partial file goes.
    let big = vec![b'x'; 100 * 1024];
    let body = multipart(&[("file", Some("big.png"), Some("image/png"), &big)]);
    let mut chunked = Vec::new();
    for piece in body.chunks(8 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut conn = Conn::open(
        addr,
        &format!(
            "{}\r\nTransfer-Encoding: chunked",
            multipart_head("/upload/plain")
        ),
        &chunked,
    )
    .await;
    let error = expect_error(&mut conn, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(error["details"]["maxSize"], 64 * 1024);
    assert_eq!(
        stored_files(dir.path()),
        Vec::<String>::new(),
        "nothing kept"
    );

    // The same through the progress stream: the status is already 200, so the 413 is the
    // `error` event, and nothing is kept either.
    let mut conn = Conn::open(
        addr,
        &format!(
            "{}\r\nTransfer-Encoding: chunked",
            multipart_head("/upload")
        ),
        &chunked,
    )
    .await;
    assert_eq!(conn.status, 200);
    let mut last = None;
    while let Some(frame) = conn.next_event().await {
        last = Some(frame);
    }
    let last = last.unwrap();
    assert_eq!(last.name(), Some("error"));
    assert_eq!(last.json()["error"], "PAYLOAD_TOO_LARGE");
    assert_eq!(
        stored_files(dir.path()),
        Vec::<String>::new(),
        "nothing kept"
    );
}
