//! SSE fan-out: hold 10,000 concurrent event streams, then measure the server's memory per
//! connection and the time to fan one event out to all of them.
//!
//! ```sh
//! cargo bench -p arbor --bench sse_fanout
//! ARBOR_SSE_BENCH_CONNECTIONS=2000 ARBOR_SSE_BENCH_ROUNDS=9 cargo bench -p arbor --bench sse_fanout
//! ```
//!
//! The server (`arbor::serve_with`, the `App` stack, an in-memory `Bus`, `Sse::subscribe`) runs
//! in this process; the clients run in a child process (this same binary, re-executed), so the
//! server's RSS counts only the server, and each process needs one file descriptor per
//! connection (the soft `RLIMIT_NOFILE` is raised to the hard limit; with a hard limit below
//! ~10,100, run `ulimit -n 20000` first or lower the connection count).
//!
//! One fan-out = the time from `bus.publish` in the server to the moment the client process
//! has read the event on every one of its connections (it reports over a pipe). The median of
//! several rounds is reported.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor::events::Bus;
use arbor::sse::Sse;
use arbor::{App, Extension, Response, ServeOptions};
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_ENV: &str = "ARBOR_SSE_BENCH_CLIENT";
const TOPIC: &str = "bench";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

fn main() {
    if let Ok(addr) = std::env::var(CLIENT_ENV) {
        client(&addr);
    } else {
        server();
    }
}

async fn events(sse: Sse, Extension(bus): Extension<Bus>) -> Result<Response, arbor::ApiError> {
    sse.heartbeat(Duration::from_secs(60))
        .subscribe(&bus, TOPIC)
        .await
}

fn server() {
    let requested = env_number("ARBOR_SSE_BENCH_CONNECTIONS", 10_000);
    let rounds = env_number("ARBOR_SSE_BENCH_ROUNDS", 7).max(1);
    let limit = raise_fd_limit();
    let connections = requested.min(
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(64),
    );
    if connections < requested {
        eprintln!(
            "RLIMIT_NOFILE is {limit}: holding {connections} connections instead of {requested} \
             (raise it with `ulimit -n`)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bus = Bus::in_memory();
    let router = Router::new()
        .route("/events", get(events))
        .layer(axum::Extension(bus.clone()));
    let app = App::new(router).into_router();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServeOptions::default().signals(false);
    let shutdown = options.shutdown.clone();
    let server = runtime.spawn(arbor::serve_with(listener, app, options));

    // Warm up the stack (allocator, lazily initialized statics) with a few connections.
    warm_up(&runtime, addr);
    wait_for(
        || bus.subscriber_count() == 0,
        "the warm-up connections to go",
    );
    let baseline = rss_bytes();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CLIENT_ENV, addr.to_string())
        .env("ARBOR_SSE_BENCH_CONNECTIONS", connections.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap()).lines();

    let connecting = Instant::now();
    let ready = from_child.next().unwrap().unwrap();
    assert_eq!(ready, format!("ready {connections}"));
    let connect_time = connecting.elapsed();
    wait_for(
        || bus.subscriber_count() == connections,
        "every subscription",
    );
    std::thread::sleep(Duration::from_millis(500));
    let held = rss_bytes();
    let per_connection = (held.saturating_sub(baseline)) as f64 / connections as f64;

    let mut fanouts = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let started = Instant::now();
        runtime
            .block_on(bus.publish(TOPIC, "tick", &serde_json::json!({ "round": round })))
            .unwrap();
        let line = from_child.next().unwrap().unwrap();
        let elapsed = started.elapsed();
        assert_eq!(line, format!("got {round}"));
        fanouts.push(elapsed);
        std::thread::sleep(Duration::from_millis(200));
    }

    // The clients leave all at once: every subscription must go.
    let leaving = Instant::now();
    writeln!(to_child, "quit").unwrap();
    let _ = child.wait();
    wait_for(|| bus.subscriber_count() == 0, "zero subscribers");
    let cleanup = leaving.elapsed();
    shutdown.trigger();
    runtime.block_on(server).unwrap().unwrap();

    let mut sorted = fanouts.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!();
    println!(
        "SSE fan-out ({connections} concurrent connections, {rounds} rounds, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| metric | value |");
    println!("|---|---|");
    println!("| connections held | {connections} |");
    println!(
        "| time to open all (client process) | {} |",
        ms(connect_time)
    );
    println!(
        "| server RSS before / with connections | {:.1} MiB / {:.1} MiB |",
        mib(baseline),
        mib(held)
    );
    println!(
        "| server memory per connection | {:.1} KiB |",
        per_connection / 1024.0
    );
    println!("| fan-out to all, median | {} |", ms(median));
    println!(
        "| fan-out min / max | {} / {} |",
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    );
    println!(
        "| per-round fan-out | {} |",
        fanouts
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| all clients gone -> 0 subscribers | {} |", ms(cleanup));
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn warm_up(runtime: &tokio::runtime::Runtime, addr: std::net::SocketAddr) {
    runtime.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..16 {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request(addr).as_bytes()).await.unwrap();
            read_until(&mut stream, b"event: connected").await;
            streams.push(stream);
        }
    });
}

fn request(addr: std::net::SocketAddr) -> String {
    format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
}

async fn read_until(stream: &mut tokio::net::TcpStream, marker: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed");
        seen.extend_from_slice(&buf[..n]);
        if seen.windows(marker.len()).any(|w| w == marker) {
            return seen;
        }
    }
}

/// The client process: opens the connections, then reports each round once every connection
/// has read it.
fn client(addr: &str) {
    raise_fd_limit();
    let connections = env_number("ARBOR_SSE_BENCH_CONNECTIONS", 10_000);
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (round_tx, round_rx) = std::sync::mpsc::channel::<usize>();
    // counts[r] = connections that have read round r.
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..1024).map(|_| AtomicUsize::new(0)).collect());
    let connected = Arc::new(AtomicUsize::new(0));
    let limiter = Arc::new(tokio::sync::Semaphore::new(256));
    for _ in 0..connections {
        let (counts, connected, limiter, round_tx) = (
            Arc::clone(&counts),
            Arc::clone(&connected),
            Arc::clone(&limiter),
            round_tx.clone(),
        );
        runtime.spawn(async move {
            let permit = limiter.acquire_owned().await.unwrap();
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            stream.write_all(request(addr).as_bytes()).await.unwrap();
            let mut pending = read_until(&mut stream, b"event: connected").await;
            drop(permit);
            connected.fetch_add(1, Ordering::SeqCst);
            let mut last_round = 0;
            let mut buf = [0u8; 4096];
            loop {
                // Find `"round":N` markers in what has been read so far.
                while let Some(at) = find(&pending, b"\"round\":") {
                    let digits: Vec<u8> = pending[at + 8..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .copied()
                        .collect();
                    if at + 8 + digits.len() >= pending.len() {
                        break; // the number may continue in the next read
                    }
                    let round: usize = std::str::from_utf8(&digits).unwrap().parse().unwrap();
                    pending.drain(..at + 8 + digits.len());
                    if round > last_round {
                        last_round = round;
                        if counts[round].fetch_add(1, Ordering::SeqCst) + 1 == connections {
                            let _ = round_tx.send(round);
                        }
                    }
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
        });
    }
    drop(round_tx);
    while connected.load(Ordering::SeqCst) < connections {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready {connections}").unwrap();
    stdout.flush().unwrap();
    // Quit when the server says so (or its pipe closes).
    std::thread::spawn(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        std::process::exit(0);
    });
    for round in round_rx {
        writeln!(stdout, "got {round}").unwrap();
        stdout.flush().unwrap();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
