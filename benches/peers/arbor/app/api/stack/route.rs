//! `GET /api/stack`: the route the other peers put behind the Route Handlers guide's four naive
//! middleware: a request id, a log line, a rate limit and an error catcher.
//!
//! In Arbor three of the four are the production stack that `arbor::App` puts around every
//! route (`app()` in `src/lib.rs`): request ids (`X-Request-ID`, kept or made, echoed on the
//! response), the request log (a span, and a `request` and a `response` JSON line on stdout),
//! and a panic catcher with JSON errors. The fourth is declared here, for this route only: a
//! GCRA rate limit per client address, so high (`u32::MAX` a minute) that it never refuses,
//! while still doing all of its work and sending its `X-RateLimit-*` headers.
//!
//! Served bare (`ARBOR_PEER_MODE=bare`), the route has the rate limit and nothing else, so the
//! benchmark measures it only behind the stack.

use arbor::Json;
use serde_json::{json, Value};

arbor::middleware!(arbor::rate_limit(limit = u32::MAX, window = 60));

pub async fn GET() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}
