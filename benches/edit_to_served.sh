#!/usr/bin/env bash
# Edit-to-served: the time from saving a one-line change to a handler until the server answers
# with it, in the dev loop a user has. Arbor: `cargo arbor dev` on a `cargo arbor new` project.
# Hand-written axum: the same endpoint in one `src/main.rs`, in the loop `cargo watch -x run`
# runs (stop the server, `cargo build`, start it), without cargo-watch's own debounce.
#
# Usage: bash benches/edit_to_served.sh   (env: ROUNDS=5)
# Both projects build in debug, each in a target directory of its own that a first build warms.
# Prints one line per round and the medians; the figures go to docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"

cargo build -q -p cargo-arbor
CLI=$PWD/target/debug/cargo-arbor
mkdir -p "$WORK/bin" && cp "$CLI" "$WORK/bin/cargo-arbor"
export PATH="$WORK/bin:$PATH"

# served PORT TEXT: waits until /api/hello answers with TEXT; prints nothing.
served() {
  until curl -fs "http://127.0.0.1:$1/api/hello" 2>/dev/null | grep -q "$2"; do sleep 0.02; done
}
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

echo "== Arbor: cargo arbor dev"
(cd "$WORK" && cargo arbor new edit-arbor >/dev/null)
ARBOR_PORT=$(free_port)
(cd "$WORK/edit-arbor" && CARGO_TARGET_DIR="$WORK/target-arbor" PORT=$ARBOR_PORT \
  cargo arbor dev >"$WORK/arbor-dev.log" 2>&1) &
PIDS+=($!)
served "$ARBOR_PORT" '"hello"'
ROUTE=$WORK/edit-arbor/app/api/hello/route.rs
ARBOR_TIMES=()
for round in $(seq "$ROUNDS"); do
  start=$(now)
  sed -i "s/\"message\": \"hello[^\"]*\"/\"message\": \"hello $round\"/" "$ROUTE"
  served "$ARBOR_PORT" "hello $round"
  t=$(echo "$(now) - $start" | bc); ARBOR_TIMES+=("$t")
  printf "  round %d: %.2f s\n" "$round" "$t"
done

echo "== hand-written axum: stop, cargo build, start"
AXUM=$WORK/edit-axum
mkdir -p "$AXUM/src"
cat >"$AXUM/Cargo.toml" <<TOML
[package]
name = "edit-axum"
version = "0.1.0"
edition = "2021"

[workspace]

[dependencies]
axum = "0.8"
serde_json = "1"
tokio = { version = "1", features = ["rt-multi-thread", "macros", "net", "signal", "sync", "time"] }
TOML
cp Cargo.lock "$AXUM/Cargo.lock"
cat >"$AXUM/src/main.rs" <<'RS'
use axum::{routing::get, Json, Router};
use serde_json::{json, Value};

async fn hello() -> Json<Value> {
    Json(json!({ "message": "hello" }))
}

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap();
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    axum::serve(listener, Router::new().route("/api/hello", get(hello))).await.unwrap();
}
RS
AXUM_PORT=$(free_port)
export CARGO_TARGET_DIR=$WORK/target-axum
(cd "$AXUM" && cargo build -q)
PORT=$AXUM_PORT "$CARGO_TARGET_DIR/debug/edit-axum" & AXUM_PID=$!
served "$AXUM_PORT" '"hello"'
AXUM_TIMES=()
for round in $(seq "$ROUNDS"); do
  start=$(now)
  sed -i "s/\"message\": \"hello[^\"]*\"/\"message\": \"hello $round\"/" "$AXUM/src/main.rs"
  kill "$AXUM_PID"; wait "$AXUM_PID" 2>/dev/null || true
  (cd "$AXUM" && cargo build -q)
  PORT=$AXUM_PORT "$CARGO_TARGET_DIR/debug/edit-axum" & AXUM_PID=$!
  served "$AXUM_PORT" "hello $round"
  t=$(echo "$(now) - $start" | bc); AXUM_TIMES+=("$t")
  printf "  round %d: %.2f s\n" "$round" "$t"
done
kill "$AXUM_PID"

a=$(printf '%s\n' "${ARBOR_TIMES[@]}" | median)
x=$(printf '%s\n' "${AXUM_TIMES[@]}" | median)
echo
echo "edit to served, median of $ROUNDS: Arbor (cargo arbor dev) $a s; hand-written axum (stop, build, start) $x s"
grep "from the change to served" "$WORK/arbor-dev.log" | tail -n "$ROUNDS" | sed 's/^/  /'
