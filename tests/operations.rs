//! Operations, on the reference app as a real process: SIGTERM under load drains without
//! dropping a request the server accepted, and the readiness probe follows Redis and the
//! database going down and coming back while liveness stays up.
//!
//! The Redis test starts a redis-server of its own (`ARBOR_TEST_REDIS_SERVER`, else the PATH);
//! the database test needs the test command's PostgreSQL (`ARBOR_TEST_POSTGRES_URL`) and cuts
//! the app off from it with a TCP proxy it owns, so the shared server keeps running. (SQLite is a
//! file the process already holds open: there is nothing to take away.)

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::{AppProcess, PATIENCE};
use common::OwnRedis;
use common::{Reply, ADMIN_EMAIL, ADMIN_PASSWORD};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn sqlite(dir: &std::path::Path) -> String {
    format!("sqlite://{}/app.db?mode=rwc", dir.display())
}

// ---------------------------------------------------------------------------------------------
// SIGTERM under load

/// Where the shutdown is, as the test has seen it.
#[derive(Default)]
struct Phase {
    /// Set just before SIGTERM is sent.
    sigterm_sent: AtomicBool,
    /// Set once the app has said that its shutdown started (readiness failing, still accepting).
    draining: AtomicBool,
}

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    answered_while_draining: AtomicUsize,
    /// Connections opened once the drain had started, that then got an answer.
    connections_served_while_draining: AtomicUsize,
    /// First requests on new connections that failed after SIGTERM: connections the server
    /// never took a request from (the listener was closing).
    not_accepted_after_sigterm: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

impl Tally {
    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }
}

/// One client of the load: sequential requests on a keep-alive connection, a new connection
/// whenever the server answers `Connection: close`, until connections are refused. Every
/// answer is checked against its request; a failure on a connection the server has answered
/// on is a violation (it accepted the connection, so it must either answer or say `close`).
async fn load(
    worker: usize,
    addr: SocketAddr,
    phase: Arc<Phase>,
    tally: Arc<Tally>,
    progress: Arc<watch::Sender<usize>>,
) {
    let mut sent = 0usize;
    loop {
        let sigterm_sent = phase.sigterm_sent.load(Ordering::SeqCst);
        let draining_at_connect = phase.draining.load(Ordering::SeqCst);
        let connected = match TcpStream::connect(addr).await {
            Ok(stream) => hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        let (mut sender, connection) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                if !sigterm_sent {
                    tally.violation(format!(
                        "worker {worker}: connect failed before SIGTERM: {error}"
                    ));
                }
                return;
            }
        };
        tokio::spawn(connection);
        let mut answered_here = 0usize;
        loop {
            sent += 1;
            let (request, expected) = if sent.is_multiple_of(2) {
                (
                    arbor::http::Request::get("/api/hello")
                        .header("host", "arbor.test")
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                    json!({ "message": "hello" }),
                )
            } else {
                let name = format!("w{worker}-{sent}");
                (
                    arbor::http::Request::post("/api/hello")
                        .header("host", "arbor.test")
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(json!({ "name": name }).to_string())))
                        .unwrap(),
                    json!({ "message": format!("hello, {name}") }),
                )
            };
            let sent_on_fresh_connection = answered_here == 0;
            let response = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(error) => Err(error),
            };
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    if sent_on_fresh_connection && phase.sigterm_sent.load(Ordering::SeqCst) {
                        tally
                            .not_accepted_after_sigterm
                            .fetch_add(1, Ordering::SeqCst);
                    } else {
                        tally.violation(format!(
                            "worker {worker}: request {sent} failed on a connection that had \
                             answered {answered_here} requests without `Connection: close`: {error}"
                        ));
                    }
                    return;
                }
            };
            let status = response.status();
            let close = response
                .headers()
                .get("connection")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let body = match response.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) => {
                    tally.violation(format!(
                        "worker {worker}: request {sent}: the response body was cut: {error}"
                    ));
                    return;
                }
            };
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status != 200 || body != expected {
                tally.violation(format!(
                    "worker {worker}: request {sent}: expected 200 {expected}, got {status} {body}"
                ));
                return;
            }
            answered_here += 1;
            tally.answered.fetch_add(1, Ordering::SeqCst);
            progress.send_modify(|answered| *answered += 1);
            if phase.draining.load(Ordering::SeqCst) {
                tally.answered_while_draining.fetch_add(1, Ordering::SeqCst);
                if draining_at_connect && answered_here == 1 {
                    tally
                        .connections_served_while_draining
                        .fetch_add(1, Ordering::SeqCst);
                }
            }
            if close {
                break;
            }
        }
    }
}

#[tokio::test]
async fn sigterm_under_load_drains_without_dropping_an_accepted_request_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = AppProcess::start(
        &[
            ("DATABASE_URL", sqlite(dir.path())),
            ("ARBOR_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("ARBOR_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("ARBOR_DRAIN_DELAY_MS", "1500".into()),
            ("ARBOR_SHUTDOWN_GRACE_MS", "10000".into()),
        ],
        dir.path(),
    )
    .await;
    let client = app.client();
    client.get("/readyz", None).await.expect_status(200);
    let token = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut events = client
        .events(
            client
                .request(reqwest::Method::GET, "/api/v1/events")
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(events.next().await.name, "connected");

    let phase = Arc::new(Phase::default());
    let tally = Arc::new(Tally::default());
    let (progress, mut answered) = watch::channel(0usize);
    let progress = Arc::new(progress);
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            tokio::spawn(load(
                worker,
                app.addr(),
                Arc::clone(&phase),
                Arc::clone(&tally),
                Arc::clone(&progress),
            ))
        })
        .collect();
    // Under way on every connection before the signal.
    tokio::time::timeout(PATIENCE, answered.wait_for(|n| *n >= 200))
        .await
        .unwrap()
        .unwrap();

    phase.sigterm_sent.store(true, Ordering::SeqCst);
    app.terminate();
    app.line_containing("shutdown started").await;
    phase.draining.store(true, Ordering::SeqCst);

    // Readiness has flipped while the server still accepts; liveness has not.
    let ready: Reply = client.get("/readyz", None).await;
    ready.error(503, "SHUTTING_DOWN");
    ready.expect_header("connection", "close");
    client.get("/livez", None).await.expect_status(200);
    // The open event stream got its final event.
    assert_eq!(events.next().await.name, "shutdown");

    app.line_containing("no longer accepting").await;
    for worker in workers {
        tokio::time::timeout(PATIENCE, worker)
            .await
            .unwrap()
            .unwrap();
    }
    let status = app.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status}");

    let violations = tally.violations.lock().unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    let while_draining = tally.answered_while_draining.load(Ordering::SeqCst);
    assert!(
        while_draining > 0,
        "no request was served during the drain delay"
    );
    assert!(
        tally
            .connections_served_while_draining
            .load(Ordering::SeqCst)
            > 0,
        "no connection opened during the drain delay was served"
    );
    eprintln!(
        "{} answered, {while_draining} during the drain delay, {} connections not accepted after SIGTERM",
        tally.answered.load(Ordering::SeqCst),
        tally.not_accepted_after_sigterm.load(Ordering::SeqCst)
    );
}

// ---------------------------------------------------------------------------------------------
// Readiness with dependencies down and back

/// Polls `path` until `wanted(status)`, failing after `deadline`; the last reply.
async fn poll_until(
    client: &common::Client,
    path: &str,
    deadline: Duration,
    wanted: impl Fn(u16) -> bool,
) -> Reply {
    let until = Instant::now() + deadline;
    loop {
        let reply = client.get(path, None).await;
        if wanted(reply.status) {
            return reply;
        }
        if Instant::now() > until {
            reply.fail("still not the wanted status at the deadline");
        }
        // Nothing to wait for but the dependency itself: poll.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The probe is down for `check` alone (the `others` pass), says so within the check timeout,
/// and liveness is up.
async fn assert_not_ready_because_of(client: &common::Client, check: &str, others: &[&str]) {
    let reply = poll_until(client, "/readyz", Duration::from_secs(15), |s| s == 503).await;
    let body = reply.error(503, "NOT_READY");
    assert_eq!(body["message"], format!("not ready: {check} failed"));
    assert_eq!(
        body["details"]["checks"][check]["status"], "failed",
        "{body}"
    );
    for other in others {
        assert_eq!(body["details"]["checks"][other]["status"], "ok", "{body}");
    }
    // One more, timed: the check's 1 s timeout bounds the probe.
    let started = Instant::now();
    client.get("/readyz", None).await.error(503, "NOT_READY");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    client.get("/livez", None).await.expect_status(200);
}

#[tokio::test]
async fn readiness_follows_redis_stopped_and_restarted_and_liveness_stays_up() {
    let Some(mut redis) = OwnRedis::start_if_installed() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let app = AppProcess::start(
        &[
            ("DATABASE_URL", sqlite(dir.path())),
            ("REDIS_URL", redis.url()),
            ("ARBOR_READINESS_TIMEOUT_MS", "1000".into()),
        ],
        dir.path(),
    )
    .await;
    let client = app.client();
    let ready = poll_until(&client, "/readyz", Duration::from_secs(15), |s| s == 200).await;
    ready.expect_json(
        200,
        &json!({ "status": "ready", "checks": {
            "database": { "status": "ok" },
            "redis": { "status": "ok" },
        } }),
    );

    redis.stop();
    assert_not_ready_because_of(&client, "redis", &["database"]).await;

    redis.restart();
    poll_until(&client, "/readyz", Duration::from_secs(15), |s| s == 200).await;
    client.get("/livez", None).await.expect_status(200);
    app.terminate();
    assert_eq!(app.exit_status().await.code(), Some(0));
}

/// A TCP proxy the test owns between the app and PostgreSQL: stopping it is the database going
/// away (connections cut, new ones refused) without touching the shared server.
struct Proxy {
    port: u16,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            target,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropped with the task: aborting it cuts every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test]
async fn readiness_follows_the_database_cut_off_and_back_and_liveness_stays_up() {
    if common::postgres_url().is_none() {
        eprintln!("note: ARBOR_TEST_POSTGRES_URL not set; database probe test skipped");
        return;
    }
    let database_url = common::fresh_postgres_database().await;
    // postgres://user@host:port/name
    let (scheme_user, rest) = database_url.split_once('@').unwrap();
    let (server, name) = rest.split_once('/').unwrap();
    let server: SocketAddr = tokio::net::lookup_host(server)
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = Proxy::start(server).await;
    let dir = tempfile::tempdir().unwrap();
    let app = AppProcess::start(
        &[
            (
                "DATABASE_URL",
                format!("{scheme_user}@127.0.0.1:{}/{name}", proxy.port),
            ),
            // Requests that need the database give up on a connection after a second.
            ("ARBOR_DB_ACQUIRE_TIMEOUT_MS", "1000".to_owned()),
        ],
        dir.path(),
    )
    .await;
    let client = app.client();
    poll_until(&client, "/readyz", Duration::from_secs(15), |s| s == 200).await;
    client
        .get("/api/v1/posts?limit=1", None)
        .await
        .expect_status(200);

    proxy.stop().await;
    assert_not_ready_because_of(&client, "database", &[]).await;
    // A route that needs the database fails fast, in the standard shape, while liveness holds.
    let started = Instant::now();
    let down = client.get("/api/v1/posts?limit=1", None).await;
    down.error(503, "DATABASE_UNAVAILABLE");
    down.expect_header("retry-after", "1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    client.get("/livez", None).await.expect_status(200);

    proxy.restart().await;
    let ready = poll_until(&client, "/readyz", Duration::from_secs(15), |s| s == 200).await;
    assert_eq!(ready.json()["checks"]["database"]["status"], "ok");
    // And the same route recovers without a restart.
    client
        .get("/api/v1/posts?limit=1", None)
        .await
        .expect_status(200);
    app.terminate();
    assert_eq!(app.exit_status().await.code(), Some(0));
}
