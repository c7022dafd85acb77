#!/usr/bin/env bash
# The test command (README "Test", run by .ci/run): checks that the route files are formatted,
# starts a throwaway PostgreSQL server and a throwaway Redis server on loopback (installing them
# with apt if needed), so the database tests run on PostgreSQL as well as SQLite and the Redis
# stores and multi-instance tests have a real Redis, then runs every test of the workspace.
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh -p arbor        # extra arguments go to `cargo test`
#
# Set ARBOR_TEST_POSTGRES_URL / ARBOR_TEST_REDIS_URL to use servers of your own instead. Tests that
# stop and restart Redis start their own redis-server (ARBOR_TEST_REDIS_SERVER names the binary).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

start_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "== installing PostgreSQL (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  local port=${ARBOR_TEST_POSTGRES_PORT:-55432}
  PG_DIR=$(mktemp -d /tmp/arbor-pg.XXXXXX)
  # initdb refuses to run as root: run the server as the `postgres` user then.
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  PG_RUN=("${run[@]}")
  PG_BIN=$bin
  trap cleanup EXIT
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync >/dev/null
  # A port in use (another run, another server) is not a failure: take the next one.
  local tries=0
  until "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c max_connections=300" start >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then
      echo "could not start PostgreSQL; its log:" >&2
      cat "$PG_DIR/log" >&2
      exit 1
    fi
    port=$((port + 1))
  done
  export ARBOR_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "== PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}

start_redis() {
  local bin
  bin=$(command -v redis-server || true)
  if [ -z "$bin" ]; then
    echo "== installing Redis (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    bin=$(command -v redis-server)
  fi
  export ARBOR_TEST_REDIS_SERVER=$bin
  REDIS_DIR=$(mktemp -d /tmp/arbor-redis.XXXXXX)
  local port=${ARBOR_TEST_REDIS_PORT:-56379} tries=0
  until "$bin" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
      --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/log" >/dev/null \
      && redis_ready "$port"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 20 ]; then
      echo "could not start Redis; its log:" >&2
      cat "$REDIS_DIR/log" >&2
      exit 1
    fi
    port=$((port + 1))
  done
  export ARBOR_TEST_REDIS_URL="redis://127.0.0.1:$port"
  echo "== Redis $("$bin" --version | awk '{print $3}' | cut -d= -f2) on 127.0.0.1:$port"
}

# Waits (up to 5 s) until the server on `port` that we started answers PING.
redis_ready() {
  local i
  for i in $(seq 50); do
    [ -s "$REDIS_DIR/redis.pid" ] && redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  return 1
}

stop_redis() {
  [ -n "${REDIS_DIR:-}" ] || return 0
  [ -s "$REDIS_DIR/redis.pid" ] && kill "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null || true
  rm -rf "$REDIS_DIR"
}

cleanup() {
  stop_postgres
  stop_redis
}

# `cargo fmt` never reaches the route files: they are modules of generated code in OUT_DIR
# (`#[path = ".."] mod ..`), not of the crate's source tree. Check them directly.
check_route_files_formatted() {
  local files=()
  while IFS= read -r -d '' file; do files+=("$file"); done \
    < <(find app/api -name '*.rs' -type f -print0 | sort -z)
  if [ "${#files[@]}" -eq 0 ]; then
    return
  fi
  local unformatted
  if ! unformatted=$(rustfmt --check --edition 2021 -l "${files[@]}" 2>&1); then
    echo "error: route files under app/api are not rustfmt-clean (cargo fmt does not reach them):" >&2
    echo "$unformatted" | sed 's/^/  /' >&2
    echo "fix with: find app/api -name '*.rs' -print0 | xargs -0 rustfmt --edition 2021" >&2
    exit 1
  fi
  echo "== ${#files[@]} route files under app/api are rustfmt-clean"
}
check_route_files_formatted

# The OpenAPI document is checked against the OpenAPI 3.1 schema by a well-kept validator
# (openapi-spec-validator), and the running app against the document by schemathesis, both from
# PyPI, in a virtual environment of their own under target/.
install_python_tools() {
  local venv=target/python-tools
  if [ ! -x "$venv/bin/openapi-spec-validator" ] || [ ! -x "$venv/bin/st" ]; then
    echo "== installing openapi-spec-validator and schemathesis (pip, into $venv)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'openapi-spec-validator==0.9.0' 'schemathesis==4.32.5'
  fi
  export ARBOR_OPENAPI_VALIDATOR="$PWD/$venv/bin/openapi-spec-validator" ARBOR_REQUIRE_OPENAPI_VALIDATOR=1
  export ARBOR_SCHEMATHESIS="$PWD/$venv/bin/st" ARBOR_REQUIRE_SCHEMATHESIS=1
}
install_python_tools

# The generated TypeScript client is compiled with `tsc --strict` (TypeScript from npm, into
# target/node-tools) and run with Node.js against the reference app.
install_typescript() {
  local prefix=target/node-tools
  if [ ! -x "$prefix/node_modules/.bin/tsc" ]; then
    echo "== installing TypeScript (npm, into $prefix)"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --silent typescript@5.9.3
  fi
  export ARBOR_TSC="$PWD/$prefix/node_modules/.bin/tsc" ARBOR_REQUIRE_TSC=1
}
install_typescript

if [ -z "${ARBOR_TEST_POSTGRES_URL:-}" ]; then
  start_postgres
fi
if [ -z "${ARBOR_TEST_REDIS_URL:-}" ]; then
  start_redis
fi
trap cleanup EXIT
export ARBOR_REQUIRE_POSTGRES=1 ARBOR_REQUIRE_REDIS=1
# A test run from a clean checkout gains nothing from incremental caches, which would take
# gigabytes of disk next to the ~60 test executables; set CARGO_INCREMENTAL=1 to keep them.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Routing and errors alone must build: every heavy part of `arbor` is behind a cargo feature.
echo "== cargo check -p arbor --no-default-features"
cargo check -q -p arbor --no-default-features
cargo test --workspace "$@"
