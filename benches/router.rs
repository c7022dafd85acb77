//! Requests per second, in one run:
//!
//! 1. Arbor's generated router versus a hand-written axum router with the same routes and
//!    equivalent handlers (issue: the generated router costs nothing you would not write);
//! 2. one route inside Arbor's full production stack (request id, JSON logging, rate limit,
//!    errors, CORS, timeout, panic catcher) versus the same route bare, with the JSON log lines
//!    formatted and written to a sink, and again with no log subscriber (so the logging cost
//!    and the cost of everything else show separately). Twice: on a route that does nothing
//!    (`GET /api/hello`, the worst case) and on one that reads the database
//!    (`GET /api/v1/posts?limit=10`);
//! 3. for scale, the four naive middlewares of the guide written by hand in axum (request id
//!    counter, log line to nowhere, mutex-and-map rate limiter, error catcher) on the same
//!    empty route.
//!
//! ```text
//! cargo bench --bench router                      # defaults: 5 rounds of 3 s, 32 connections
//! BENCH_ROUNDS=9 BENCH_SECS=5 BENCH_CONNECTIONS=64 cargo bench --bench router
//! ```
//!
//! Each server runs on its own single-threaded runtime and OS thread; the load generator is a
//! minimal HTTP/1.1 keep-alive client on another thread, so on a 2-core machine the server and
//! the load each get a core. Rounds alternate which server goes first; the report gives the
//! median of the rounds and the ratio Arbor / axum (1.00 = no overhead).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The hand-written equivalent of the reference app's routes that the benchmark hits.
fn hand_written() -> Router {
    #[derive(serde::Deserialize)]
    struct Greeting {
        name: String,
    }
    async fn hello() -> Json<Value> {
        Json(json!({ "message": "hello" }))
    }
    async fn greet(Json(greeting): Json<Greeting>) -> Json<Value> {
        Json(json!({ "message": format!("hello, {}", greeting.name) }))
    }
    async fn item(axum::extract::Path(id): axum::extract::Path<u64>) -> Json<Value> {
        Json(json!({ "id": id, "name": format!("item {id}") }))
    }
    async fn delete_item(axum::extract::Path(id): axum::extract::Path<u64>) -> Json<Value> {
        Json(json!({ "deleted": id }))
    }
    Router::new()
        .route("/api/hello", get(hello).post(greet))
        .route(
            "/api/v1/items/{id}",
            // The reference app's /api/v1 folder middleware.
            get(item).delete(delete_item).layer(arbor::csrf()),
        )
}

/// The guide's four middlewares written by hand in axum, as a peer would (no span, no real
/// log output, a fixed-window limiter that grows forever), around the same empty route.
fn hand_written_stack() -> Router {
    use axum::extract::{Request, State};
    use axum::middleware::{from_fn, from_fn_with_state, Next};
    use axum::response::{IntoResponse, Response};
    use std::collections::HashMap;
    use std::sync::Mutex;

    static SEQUENCE: AtomicU64 = AtomicU64::new(1);
    type Windows = Arc<Mutex<HashMap<String, (u64, Instant)>>>;

    async fn hello() -> Json<Value> {
        Json(json!({ "message": "hello" }))
    }
    async fn request_id(mut request: Request, next: Next) -> Response {
        let id = format!("req-{}", SEQUENCE.fetch_add(1, Ordering::Relaxed));
        let value = arbor::http::HeaderValue::from_str(&id).unwrap();
        request.headers_mut().insert("x-request-id", value.clone());
        let mut response = next.run(request).await;
        response.headers_mut().insert("x-request-id", value);
        response
    }
    async fn log(request: Request, next: Next) -> Response {
        let started = Instant::now();
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let response = next.run(request).await;
        let line = format!(
            "{method} {path} {} {:?}",
            response.status(),
            started.elapsed()
        );
        std::hint::black_box(line);
        response
    }
    async fn rate_limit(State(windows): State<Windows>, request: Request, next: Next) -> Response {
        let key = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_owned();
        let over = {
            let mut windows = windows.lock().unwrap();
            let now = Instant::now();
            let entry = windows.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) > Duration::from_secs(60) {
                *entry = (0, now);
            }
            entry.0 += 1;
            entry.0 > u64::from(u32::MAX)
        };
        if over {
            return (arbor::http::StatusCode::TOO_MANY_REQUESTS, "rate limited").into_response();
        }
        next.run(request).await
    }
    async fn catch_errors(request: Request, next: Next) -> Response {
        let response = next.run(request).await;
        if response.status().is_server_error() {
            return (
                arbor::http::StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "internal" })),
            )
                .into_response();
        }
        response
    }
    Router::new()
        .route("/api/hello", get(hello))
        .layer(from_fn(catch_errors))
        .layer(from_fn_with_state(Windows::default(), rate_limit))
        .layer(from_fn(log))
        .layer(from_fn(request_id))
}

struct Endpoint {
    name: &'static str,
    request: &'static [u8],
    expect: Expect,
}

/// What a correct response body is.
enum Expect {
    Exactly(&'static str),
    /// A JSON array of this many items.
    Items(usize),
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        name: "GET /api/hello",
        request: b"GET /api/hello HTTP/1.1\r\nhost: bench\r\n\r\n",
        expect: Expect::Exactly(r#"{"message":"hello"}"#),
    },
    Endpoint {
        name: "GET /api/v1/items/[id]",
        request: b"GET /api/v1/items/42 HTTP/1.1\r\nhost: bench\r\n\r\n",
        expect: Expect::Exactly(r#"{"id":42,"name":"item 42"}"#),
    },
    Endpoint {
        name: "POST /api/hello (JSON)",
        request: b"POST /api/hello HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"name\":\"Ada\"}",
        expect: Expect::Exactly(r#"{"message":"hello, Ada"}"#),
    },
];

/// A route that does real work: a validated query and a database read of 10 posts.
const POSTS: Endpoint = Endpoint {
    name: "GET /api/v1/posts?limit=10",
    request: b"GET /api/v1/posts?limit=10 HTTP/1.1\r\nhost: bench\r\n\r\n",
    expect: Expect::Items(10),
};

fn serve_on_own_thread(router: Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    address
}

/// Sends `request` and reads one whole response; returns its body.
async fn round_trip(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request).await?;
    buffer.clear();
    loop {
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end])
            .unwrap_or_default()
            .to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        if buffer.len() >= head_end + 4 + length {
            return Ok(buffer[head_end + 4..head_end + 4 + length].to_vec());
        }
    }
}

/// Drives `connections` keep-alive connections for `duration`; returns requests per second.
fn load(
    address: SocketAddr,
    endpoint: &'static Endpoint,
    connections: usize,
    duration: Duration,
) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let done = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (done, count) = (done.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(address).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let mut buffer = Vec::with_capacity(8192);
                while !done.load(Ordering::Relaxed) {
                    round_trip(&mut stream, endpoint.request, &mut buffer)
                        .await
                        .unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        done.store(true, Ordering::Relaxed);
        let requests = count.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        for task in tasks {
            task.await.unwrap();
        }
        requests as f64 / elapsed.as_secs_f64()
    })
}

fn check(address: SocketAddr, endpoint: &'static Endpoint) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = runtime.block_on(async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        round_trip(&mut stream, endpoint.request, &mut Vec::new())
            .await
            .unwrap()
    });
    let body = String::from_utf8_lossy(&body);
    let correct = match endpoint.expect {
        Expect::Exactly(expected) => body == expected,
        Expect::Items(count) => {
            serde_json::from_str::<Vec<Value>>(&body).is_ok_and(|items| items.len() == count)
        }
    };
    assert!(correct, "{} on {address}: {body}", endpoint.name);
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh app state on a temporary SQLite file (only the posts route queries it).
fn state(dir: &std::path::Path) -> arbor_app::AppState {
    let config = arbor_app::Config {
        database_url: format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
        upload_dir: dir.join("uploads"),
        ..arbor_app::Config::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(arbor_app::AppState::new(config)).unwrap()
}

/// Ten posts for the database route to read.
fn seed_posts(state: &arbor_app::AppState) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let author = state
            .users
            .create(arbor_app::services::users::NewUser {
                email: "bench@example.com".into(),
                name: "Bench".into(),
                password: "correct horse battery".into(),
                role: arbor_app::services::users::Role::User,
            })
            .await
            .unwrap();
        for n in 0..10 {
            let body = "A post body of a realistic length, with a few sentences in it. ".repeat(4);
            state
                .posts
                .create(&author.id, &format!("Post number {n}"), &body)
                .await
                .unwrap();
        }
    });
}

/// The reference app's router inside the whole production stack.
fn full_stack(state: arbor_app::AppState) -> Router {
    use arbor::rate_limit::rate_limit;
    let routes = arbor_app::router(state).route_layer(rate_limit().limit(u32::MAX).window(60));
    arbor::App::new(routes)
        .cors(arbor::cors::Cors::new().allow_origins(["https://app.example.com"]))
        .unwrap()
        .into_router()
}

/// Installs, globally (the servers run on threads of their own), what
/// `arbor::logging::init(Format::Json)` installs, writing to a sink.
fn json_logs_to_sink() {
    let _ = tracing_subscriber::fmt()
        .fmt_fields(arbor::logging::JsonLines)
        .event_format(arbor::logging::JsonLines)
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}

/// Runs `endpoint` against `a` and `b` alternately and prints medians and the ratio a / b.
fn compare(
    label: &str,
    a: SocketAddr,
    b: SocketAddr,
    endpoint: &'static Endpoint,
    rounds: usize,
    connections: usize,
    duration: Duration,
) {
    load(a, endpoint, connections, duration / 4);
    load(b, endpoint, connections, duration / 4);
    let (mut a_rps, mut b_rps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = load(a, endpoint, connections, duration);
            (x, load(b, endpoint, connections, duration))
        } else {
            let y = load(b, endpoint, connections, duration);
            (load(a, endpoint, connections, duration), y)
        };
        a_rps.push(x);
        b_rps.push(y);
        ratios.push(x / y);
    }
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "{label:<34} {:>12.0} {:>12.0} {:>8.3}   [{}]",
        median(&mut a_rps),
        median(&mut b_rps),
        median(&mut ratios),
        shown.join(" ")
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with no load, as a check.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = if quick { 1 } else { env_or("BENCH_ROUNDS", 5) };
    let seconds: f64 = if quick {
        0.2
    } else {
        env_or("BENCH_SECS", 3.0)
    };
    let connections: usize = env_or("BENCH_CONNECTIONS", 32);
    let duration = Duration::from_secs_f64(seconds);

    let dir = tempfile::tempdir().unwrap();
    let seeded = state(dir.path());
    seed_posts(&seeded);
    // The generated router with its state, as any stateful axum app has (no app middleware).
    let generated = serve_on_own_thread(arbor_app::routes::router(seeded));
    let axum = serve_on_own_thread(hand_written());
    let bare = serve_on_own_thread(arbor_app::router(state(dir.path())));
    let stack = serve_on_own_thread(full_stack(state(dir.path())));
    let peer_stack = serve_on_own_thread(hand_written_stack());
    for endpoint in ENDPOINTS {
        check(generated, endpoint);
        check(axum, endpoint);
        check(stack, endpoint);
    }
    check(bare, &POSTS);
    check(stack, &POSTS);
    check(peer_stack, &ENDPOINTS[0]);

    println!("router benchmark: {rounds} rounds x {seconds} s, {connections} connections, single-threaded servers");
    println!(
        "{:<40} {:>12} {:>12} {:>8}   per-round ratios",
        "comparison", "A req/s", "B req/s", "A / B"
    );
    let run = |label: &str, a, b, endpoint: &'static Endpoint| {
        compare(
            &format!("{label}  {}", endpoint.name),
            a,
            b,
            endpoint,
            rounds,
            connections,
            duration,
        );
    };
    for endpoint in ENDPOINTS {
        run("arbor / axum", generated, axum, endpoint);
    }
    let hello = &ENDPOINTS[0];
    run("hand-written axum stack / bare", peer_stack, axum, hello);
    run("stack, no log output / bare", stack, bare, hello);
    run("stack, no log output / bare", stack, bare, &POSTS);
    json_logs_to_sink();
    run("stack, JSON logs / bare", stack, bare, hello);
    run("stack, JSON logs / bare", stack, bare, &POSTS);
}
