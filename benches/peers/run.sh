#!/usr/bin/env bash
# The peer benchmark: Arbor against a hand-written axum service, Next.js Route Handlers and
# Fastify, on the same endpoints, over loopback with wrk. See README.md beside this file.
#
#   bash benches/peers/run.sh
#
# Settings, from the environment (defaults in brackets):
#   ROUNDS      measured rounds [5]; each runs every server once on every endpoint
#   DUR         one measured run [5s]; WARM: the warm-up run before the first [5s], 0 for none
#   CONN        wrk connections [64], with one wrk thread
#   SERVERS     [arbor-stack arbor-bare axum-bare axum-4mw next fastify arbor-app]
#   ENDPOINTS   [hello user post stack list]
#   BUILD       [1] builds everything first; 0 uses what an earlier run built
#   SERVER_CPU  [0] the CPU every server is pinned to; LOAD_CPU [1]: wrk's, and this script's
#   SEED_USERS  [1000] users in the database of the `list` endpoint
#
# Every server is started once, checked for correct answers, and kept running. Then, after a
# warm-up run of each server on each endpoint, every round measures each endpoint on each
# server that has it, one server at a time, in an order that rotates from round to round so
# that no server always runs first or right after the same one. results/latest.md gets the
# medians over the rounds and the medians of the per-round ratios; results/chart.svg a chart.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$HERE"

ROUNDS=${ROUNDS:-5}; DUR=${DUR:-5s}; WARM=${WARM:-5s}; CONN=${CONN:-64}
SERVER_CPU=${SERVER_CPU:-0}; LOAD_CPU=${LOAD_CPU:-1}
BUILD=${BUILD:-1}; SEED_USERS=${SEED_USERS:-1000}
ALL_SERVERS="arbor-stack arbor-bare axum-bare axum-4mw next fastify arbor-app"
ALL_ENDPOINTS="hello user post stack list"
# Lists normalized to single spaces, for the messages and the command below.
SERVERS=$(xargs <<<"${SERVERS:-$ALL_SERVERS}"); ENDPOINTS=$(xargs <<<"${ENDPOINTS:-$ALL_ENDPOINTS}")
# As written in results/latest.md: the command that repeats this run.
COMMAND="ROUNDS=$ROUNDS DUR=$DUR WARM=$WARM CONN=$CONN SERVERS=\"$SERVERS\" ENDPOINTS=\"$ENDPOINTS\""
COMMAND+=" SERVER_CPU=$SERVER_CPU LOAD_CPU=$LOAD_CPU SEED_USERS=$SEED_USERS bash benches/peers/run.sh"

# What each server answers, and which process serves it: `axum-bare` and `axum-4mw` are the
# same axum process, its bare routes and its `/api/stack` behind the four middleware. The
# Arbor peer serves `/api/stack` too when bare, but with only the route's own rate limit: the
# other three middleware are the stack's, so it is measured behind the stack only.
declare -A SERVES=(
  [arbor-stack]="hello user post stack" [arbor-bare]="hello user post"
  [axum-bare]="hello user post list" [axum-4mw]="stack"
  [next]="hello user post stack" [fastify]="hello user post stack" [arbor-app]="list"
)
declare -A PROCESS=(
  [arbor-stack]=arbor-stack [arbor-bare]=arbor-bare [axum-bare]=axum [axum-4mw]=axum
  [next]=next [fastify]=fastify [arbor-app]=arbor-app
)
# The list's query, the same on both servers: page 5 of 20, so the query has an offset.
LIST_PAGE=5; LIST_LIMIT=20
ADMIN_EMAIL=bench-admin@example.com; ADMIN_PASSWORD=Bench-Admin-Passw0rd

fail() { echo "error: $*" >&2; exit 1; }
has() { [[ " $1 " == *" $2 "* ]]; } # has LIST WORD

for server in $SERVERS; do has "$ALL_SERVERS" "$server" || fail "unknown server \`$server\` (servers: $ALL_SERVERS)"; done
for endpoint in $ENDPOINTS; do has "$ALL_ENDPOINTS" "$endpoint" || fail "unknown endpoint \`$endpoint\` (endpoints: $ALL_ENDPOINTS)"; done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || fail "ROUNDS=$ROUNDS: expected a positive number"
[[ $CONN =~ ^[1-9][0-9]*$ ]] || fail "CONN=$CONN: expected a positive number"
[[ $BUILD == 0 || $BUILD == 1 ]] || fail "BUILD=$BUILD: expected 0 or 1"

# measured SERVER ENDPOINT: whether this run measures that pair.
measured() { has "$SERVERS" "$1" && has "$ENDPOINTS" "$2" && has "${SERVES[$1]}" "$2"; }
# The pairs, and the processes to start (those of the servers with at least one pair).
PAIRS=0; PROCESSES=""
for server in $ALL_SERVERS; do
  for endpoint in $ENDPOINTS; do
    if measured "$server" "$endpoint"; then
      PAIRS=$((PAIRS + 1))
      has "$PROCESSES" "${PROCESS[$server]}" || PROCESSES+=" ${PROCESS[$server]}"
    fi
  done
done
(( PAIRS > 0 )) || fail "no server of SERVERS=\"$SERVERS\" serves any of ENDPOINTS=\"$ENDPOINTS\""
starts() { has "$PROCESSES" "$1"; }
# The list needs the reference app even when only axum measures it: the app creates, migrates
# and signs in to the database that both read.
LIST=0; { measured arbor-app list || measured axum-bare list; } && LIST=1
NEEDS_APP=0; { starts arbor-app || (( LIST )); } && NEEDS_APP=1

need() { command -v "$1" >/dev/null || fail "\`$1\` is missing: $2"; }
need wrk "apt-get install wrk"
need taskset "apt-get install util-linux"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need pgrep "apt-get install procps"
if starts next || starts fastify; then need node "Node.js 20 or newer"; need npm "comes with Node.js"; fi
(( BUILD == 0 )) || need cargo "install Rust: https://rustup.rs"
CPUS=$(nproc) # before this script pins itself to one CPU, after which nproc says 1
(( CPUS >= 2 )) || echo "warning: one CPU only: the servers and wrk share it" >&2

PEER_TARGET=$ROOT/target/peers
PEER_BIN=$PEER_TARGET/release
APP_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/arbor-app
RES=$HERE/results
rm -rf "$RES/raw" "$RES/logs" "$RES/runs.tsv" "$RES/rss.tsv" "$RES/meta.tsv"
mkdir -p "$RES/raw" "$RES/logs"
WORK=$(mktemp -d /tmp/arbor-peers.XXXXXX)

# ---------------------------------------------------------------------------------------------
# Processes: every server started here is stopped on exit, with its children (if any).
# ---------------------------------------------------------------------------------------------
PIDS=()
tree_pids() { # PID: the process and its descendants
  local child
  echo "$1"
  for child in $(pgrep -P "$1" || true); do tree_pids "$child"; done
}
stop_tree() { # PID: SIGTERM to the process and its descendants; SIGKILL after 10 s
  local pids pid _
  pids=$(tree_pids "$1")
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
  wait "$1" 2>/dev/null || true
  local kept=() p
  for p in ${PIDS[@]+"${PIDS[@]}"}; do [[ $p == "$1" ]] || kept+=("$p"); done
  PIDS=(${kept[@]+"${kept[@]}"})
}
cleanup() {
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do stop_tree "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rss_kib() { # PID: resident memory of the process and its descendants, KiB
  local total=0 pid kib
  for pid in $(tree_pids "$1"); do
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # NAME PORT PID LOG: polls /api/hello (every server has it) for up to 60 s
  local _
  for _ in $(seq 600); do
    curl -fs -o /dev/null "http://127.0.0.1:$2/api/hello" && return 0
    kill -0 "$3" 2>/dev/null || { cat "$4" >&2; fail "$1 exited while starting (log above: $4)"; }
    sleep 0.1
  done
  cat "$4" >&2
  fail "$1 did not answer on port $2 within 60 s (log above: $4)"
}

# ---------------------------------------------------------------------------------------------
# Build.
# ---------------------------------------------------------------------------------------------
# A peer crate builds on a copy of the workspace's Cargo.lock, so that axum, hyper, tokio and
# the rest are the versions Arbor is tested with (and nothing new is fetched). Copied again
# whenever the workspace's is newer; cargo then drops the entries the crate does not use.
copy_lock() {
  if [[ ! -f $1/Cargo.lock || $ROOT/Cargo.lock -nt $1/Cargo.lock ]]; then
    cp "$ROOT/Cargo.lock" "$1/Cargo.lock"
  fi
}
build() {
  if starts arbor-stack || starts arbor-bare; then
    echo "== build: Arbor peer (release)"
    copy_lock arbor
    CARGO_TARGET_DIR=$PEER_TARGET cargo build --release -q --manifest-path arbor/Cargo.toml
  fi
  if starts axum; then
    echo "== build: axum peer (release)"
    copy_lock axum
    CARGO_TARGET_DIR=$PEER_TARGET cargo build --release -q --manifest-path axum/Cargo.toml
  fi
  if (( NEEDS_APP )); then
    echo "== build: the reference app (release)"
    (cd "$ROOT" && cargo build --release -q --bin arbor-app)
  fi
  if starts next; then
    echo "== build: Next.js peer (npm ci, next build)"
    (cd next && npm ci --no-audit --no-fund --loglevel=error && rm -rf .next \
      && NEXT_TELEMETRY_DISABLED=1 node node_modules/next/dist/bin/next build) \
      >"$RES/logs/next-build.log" 2>&1 || { cat "$RES/logs/next-build.log" >&2; fail "the Next.js build failed"; }
  fi
  if starts fastify; then
    echo "== build: Fastify peer (npm ci)"
    (cd fastify && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
(( BUILD == 0 )) || build
missing() { fail "$1 is missing: run once with BUILD=1"; }
if starts arbor-stack || starts arbor-bare; then [[ -x $PEER_BIN/arbor-peer ]] || missing "$PEER_BIN/arbor-peer"; fi
if starts axum; then [[ -x $PEER_BIN/axum-peer ]] || missing "$PEER_BIN/axum-peer"; fi
if (( NEEDS_APP )); then [[ -x $APP_BIN ]] || missing "$APP_BIN"; fi
if starts next; then [[ -f next/.next/BUILD_ID ]] || missing "next/.next (the Next.js build)"; fi
if starts fastify; then [[ -d fastify/node_modules/fastify ]] || missing "fastify/node_modules"; fi

# From here on this script, wrk, curl and the memory sampling stay on LOAD_CPU (children
# inherit the affinity), off the servers' CPU; each server is started on SERVER_CPU.
taskset -pc "$LOAD_CPU" $$ >/dev/null

# ---------------------------------------------------------------------------------------------
# The list's database: the reference app creates and migrates it and makes the administrator,
# who signs in for a bearer token (its session is a row of the file); seed.py adds the users.
# Each server then reads its own copy of the file.
# ---------------------------------------------------------------------------------------------
TOKEN=""
seed_database() {
  echo "== database for the list: $SEED_USERS users"
  local db=$WORK/seed.db port pid log=$RES/logs/seed.log
  port=$(free_port)
  env HOST=127.0.0.1 PORT="$port" RUST_LOG=warn DATABASE_URL="sqlite://$db?mode=rwc" \
    ARBOR_UPLOAD_DIR="$WORK/uploads" ARBOR_ADMIN_EMAIL="$ADMIN_EMAIL" ARBOR_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    "$APP_BIN" >"$log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_ready "the reference app (seeding)" "$port" "$pid" "$log"
  TOKEN=$(curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" "http://127.0.0.1:$port/api/v1/login" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') \
    || fail "signing in to the reference app failed (log: $log)"
  stop_tree "$pid"
  python3 seed.py "$db" "$SEED_USERS"
  cp "$db" "$WORK/arbor-app.db"
  cp "$db" "$WORK/axum.db"
  python3 seed.py --page "$db" "$LIST_PAGE" "$LIST_LIMIT" >"$WORK/list.json"
}
(( LIST )) && seed_database

# ---------------------------------------------------------------------------------------------
# Servers.
# ---------------------------------------------------------------------------------------------
declare -A PORT_OF PID_OF IDLE PEAK
start() { # PROCESS
  local name=$1 port log=$RES/logs/$1.log
  port=$(free_port)
  # Arbor's request logs (JSON lines on stdout) go to /dev/null: writing them is part of the
  # cost measured. The peers' own log lines are formatted and dropped in-process.
  case $name in
    arbor-stack)
      # One access line per request, as the naive log middleware of the other peers writes
      # one; `ARBOR_REQUEST_LOG=pair` measures the request/response pair instead.
      env ARBOR_PEER_MODE=stack ARBOR_LOG_FORMAT=json RUST_LOG=info \
        ARBOR_REQUEST_LOG="${ARBOR_REQUEST_LOG:-access}" HOST=127.0.0.1 PORT="$port" \
        taskset -c "$SERVER_CPU" "$PEER_BIN/arbor-peer" >/dev/null 2>"$log" & ;;
    arbor-bare)
      env ARBOR_PEER_MODE=bare HOST=127.0.0.1 PORT="$port" \
        taskset -c "$SERVER_CPU" "$PEER_BIN/arbor-peer" >"$log" 2>&1 & ;;
    axum)
      local database=(); (( LIST )) && database=("DATABASE_URL=sqlite://$WORK/axum.db")
      env PORT="$port" ${database[@]+"${database[@]}"} \
        taskset -c "$SERVER_CPU" "$PEER_BIN/axum-peer" >"$log" 2>&1 & ;;
    next)
      env NODE_ENV=production NEXT_TELEMETRY_DISABLED=1 taskset -c "$SERVER_CPU" \
        node "$HERE/next/node_modules/next/dist/bin/next" start "$HERE/next" -H 127.0.0.1 -p "$port" \
        >"$log" 2>&1 & ;;
    fastify)
      env NODE_ENV=production PORT="$port" \
        taskset -c "$SERVER_CPU" node "$HERE/fastify/server.mjs" >"$log" 2>&1 & ;;
    arbor-app)
      # Its own defaults otherwise (metrics on, in-memory stores), as `cargo run` serves it.
      env HOST=127.0.0.1 PORT="$port" ARBOR_LOG_FORMAT=json RUST_LOG=info DATABASE_URL="sqlite://$WORK/arbor-app.db" \
        ARBOR_UPLOAD_DIR="$WORK/uploads" taskset -c "$SERVER_CPU" "$APP_BIN" >/dev/null 2>"$log" & ;;
  esac
  PID_OF[$name]=$!; PORT_OF[$name]=$port; PIDS+=("$!")
  wait_ready "$name" "$port" "$!" "$log"
}

path_of() { # SERVER ENDPOINT
  case $2 in
    hello) echo /api/hello ;;
    user) echo /api/users/42 ;;
    post) echo /api/users ;;
    stack) echo /api/stack ;;
    list) [[ $1 == arbor-app ]] && echo "/api/v1/users?page=$LIST_PAGE&limit=$LIST_LIMIT" \
            || echo "/api/users?page=$LIST_PAGE&limit=$LIST_LIMIT" ;;
  esac
}
url_of() { echo "http://127.0.0.1:${PORT_OF[${PROCESS[$1]}]}$(path_of "$1" "$2")"; }

# ---------------------------------------------------------------------------------------------
# Correctness: before anything is measured, every server must answer every endpoint it is
# measured on as the others do: the same status and, for successes, the same JSON.
# ---------------------------------------------------------------------------------------------
request() { # CURL-ARGUMENTS...: prints the status; the body goes to $WORK/body, the head to $WORK/head
  curl -s -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' "$@" || true
}
bad_answer() { fail "correctness check: $1: expected $2, got $3 with $(<"$WORK/body")"; }
expect() { # WHAT STATUS ACTUAL-STATUS [BODY]: the status, and the exact body if given
  [[ $3 == "$2" ]] || bad_answer "$1" "status $2" "status $3"
  [[ $# -lt 4 || $(<"$WORK/body") == "$4" ]] || bad_answer "$1" "$4" "status $3"
}
check() { # SERVER
  local server=$1 endpoint url bad
  for endpoint in ${SERVES[$server]}; do
    measured "$server" "$endpoint" || continue
    url=$(url_of "$server" "$endpoint")
    case $endpoint in
      hello) expect "$server GET $url" 200 "$(request "$url")" '{"message":"hello"}' ;;
      user) expect "$server GET $url" 200 "$(request "$url")" '{"id":"42","name":"user 42"}' ;;
      post)
        # The id is each server's own counter; the rest is the same everywhere.
        expect "$server POST $url" 201 "$(request -H 'content-type: application/json' \
          -d '{"email":"a@b.co","name":"Alice","password":"Secret123"}' "$url")"
        [[ $(<"$WORK/body") =~ ^\{\"id\":[0-9]+,\"email\":\"a@b\.co\",\"name\":\"Alice\"\}$ ]] \
          || bad_answer "$server POST $url" '{"id":<number>,"email":"a@b.co","name":"Alice"}' "status 201"
        # Error bodies differ from framework to framework; the status may not.
        for bad in '{"email":"nope","name":"Alice","password":"Secret123"}' \
                   '{"email":"a@b","name":"Alice","password":"Secret123"}' \
                   '{"email":"a@b.co","name":"A","password":"Secret123"}' \
                   '{"email":"a@b.co","name":"Alice","password":"short"}' \
                   '{"email":"a@b.co"}' 'not json'; do
          expect "$server POST $url with $bad" 400 "$(request -H 'content-type: application/json' -d "$bad" "$url")"
        done ;;
      stack)
        expect "$server GET $url" 200 "$(request "$url")" '{"message":"hello"}'
        grep -qiE '^x-request-id: *[^[:space:]]' "$WORK/head" \
          || fail "correctness check: $server GET $url: no x-request-id header in: $(<"$WORK/head")" ;;
      list)
        expect "$server GET $url" 200 "$(request -H "authorization: Bearer $TOKEN" "$url")" "$(<"$WORK/list.json")"
        expect "$server GET $url without a token" 401 "$(request "$url")" ;;
    esac
  done
}

# ---------------------------------------------------------------------------------------------
# Measuring.
# ---------------------------------------------------------------------------------------------
# parse_wrk FILE: "req/s p50-ms p99-ms non-2xx/3xx socket-errors" from `wrk --latency`.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { requests = $1 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    END { printf "%.1f %.3f %.3f %d %d %d\n", rps, p50, p99, bad, errors, requests }' "$1"
}

cpu_ticks() { # PID: user and system CPU time of the process and its descendants, in clock ticks
  local user=0 system=0 pid times
  for pid in $(tree_pids "$1"); do
    # Fields 14 and 15 of /proc/PID/stat, counted after the command name's closing parenthesis
    # (the name may hold spaces).
    times=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12, $13}' || true)
    [[ -n $times ]] || continue
    user=$((user + ${times% *})); system=$((system + ${times#* }))
  done
  echo "$user $system"
}
per_request() { # MICROSECONDS REQUESTS: microseconds per request, two decimals
  awk -v us="$1" -v n="$2" 'BEGIN { printf "%.2f", (n > 0 ? us / n : 0) }'
}
TICK_US=$(( 1000000 / $(getconf CLK_TCK) ))

# run_wrk SERVER ENDPOINT DURATION OUT: one wrk run, the server's RSS sampled meanwhile; sets
# USER_US and SYSTEM_US to the server's CPU time in user space and in the kernel during the
# run, in microseconds.
run_wrk() {
  local server=$1 endpoint=$2 process=${PROCESS[$1]} args wrk_pid rss bad user system
  args=(-t1 -c"$CONN" -d"$3" --latency)
  case $endpoint in
    post) args+=(-s "$HERE/post_user.lua") ;;
    list) args+=(-H "authorization: Bearer $TOKEN") ;;
  esac
  read -r user system < <(cpu_ticks "${PID_OF[$process]}")
  taskset -c "$LOAD_CPU" wrk "${args[@]}" "$(url_of "$server" "$endpoint")" >"$4" &
  wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    rss=$(rss_kib "${PID_OF[$process]}")
    (( rss <= ${PEAK[$process]} )) || PEAK[$process]=$rss
    sleep 0.5
  done
  wait "$wrk_pid" || fail "wrk failed on $server $endpoint (output: $4)"
  kill -0 "${PID_OF[$process]}" 2>/dev/null || fail "$process exited under load (log: $RES/logs/$process.log)"
  read -r USER_US SYSTEM_US < <(cpu_ticks "${PID_OF[$process]}")
  USER_US=$(( (USER_US - user) * TICK_US )); SYSTEM_US=$(( (SYSTEM_US - system) * TICK_US ))
  read -r _ _ _ bad _ < <(parse_wrk "$4")
  (( bad == 0 )) || fail "$server $endpoint: $bad answers were not 2xx or 3xx (output: $4)"
}

# ---------------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------------
echo "== servers:$PROCESSES (CPU $SERVER_CPU; wrk on CPU $LOAD_CPU)"
for process in $PROCESSES; do start "$process"; done
for server in $SERVERS; do check "$server"; done
echo "   every server answers correctly"
for process in $PROCESSES; do
  IDLE[$process]=$(rss_kib "${PID_OF[$process]}")
  PEAK[$process]=${IDLE[$process]}
done

seconds() { [[ $1 =~ ^([0-9]+)s?$ ]] && echo "${BASH_REMATCH[1]}" || echo 0; }
minutes=$(( (PAIRS * (ROUNDS * $(seconds "$DUR") + $(seconds "$WARM")) + 59) / 60 ))
echo "== $PAIRS server/endpoint pairs, $ROUNDS x $DUR each, wrk -t1 -c$CONN: about $minutes min"

# SERVERS_FOR ENDPOINT: the measured servers that have it, in the order of $SERVERS.
servers_for() {
  local server
  for server in $SERVERS; do measured "$server" "$1" && echo "$server"; done
  return 0
}

if [[ $(seconds "$WARM") != 0 ]]; then
  echo "== warm-up: $WARM per server and endpoint"
  for endpoint in $ENDPOINTS; do
    for server in $(servers_for "$endpoint"); do
      run_wrk "$server" "$endpoint" "$WARM" "$RES/raw/warm-$endpoint-$server.txt"
    done
  done
fi

printf 'round\tendpoint\tserver\trps\tp50_ms\tp99_ms\tsocket_errors\tuser_us_per_request\tsystem_us_per_request\n' >"$RES/runs.tsv"
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS"
  for endpoint in $ENDPOINTS; do
    mapfile -t order < <(servers_for "$endpoint")
    (( ${#order[@]} )) || continue
    # Rotated by one place each round.
    shift_by=$(( (round - 1) % ${#order[@]} ))
    order=("${order[@]:shift_by}" "${order[@]:0:shift_by}")
    for server in "${order[@]}"; do
      out=$RES/raw/$round-$endpoint-$server.txt
      run_wrk "$server" "$endpoint" "$DUR" "$out"
      read -r rps p50 p99 _ errors requests < <(parse_wrk "$out")
      user=$(per_request "$USER_US" "$requests"); system=$(per_request "$SYSTEM_US" "$requests")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$endpoint" "$server" "$rps" "$p50" "$p99" \
        "$errors" "$user" "$system" >>"$RES/runs.tsv"
      printf '   %-6s %-12s %10.0f req/s   p50 %7.3f ms   p99 %7.3f ms   CPU us/req: user %5.2f, system %5.2f%s\n' \
        "$endpoint" "$server" "$rps" "$p50" "$p99" "$user" "$system" \
        "$( (( errors == 0 )) || echo "   socket errors: $errors")"
    done
  done
done

printf 'process\tserves\tidle_kib\tpeak_kib\n' >"$RES/rss.tsv"
for process in $PROCESSES; do
  serves=""
  for server in $SERVERS; do
    [[ ${PROCESS[$server]} == "$process" ]] && serves+="${serves:+, }$server"
  done
  printf '%s\t%s\t%s\t%s\n' "$process" "$serves" "${IDLE[$process]}" "${PEAK[$process]}" >>"$RES/rss.tsv"
done

version_of() { # PACKAGE-DIRECTORY: its package.json version, or "-" when not installed
  [[ -f $1/package.json ]] && node -p "require('$1/package.json').version" || echo "-"
}
{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'commit\t%s%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  printf 'command\t%s\n' "$COMMAND"
  printf 'cpus\t%s\n' "$CPUS"
  printf 'cpu\t%s\n' "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)"
  printf 'server_cpu\t%s\n' "$SERVER_CPU"
  printf 'load_cpu\t%s\n' "$LOAD_CPU"
  printf 'rounds\t%s\n' "$ROUNDS"
  printf 'duration\t%s\n' "$DUR"
  printf 'warm_up\t%s\n' "$WARM"
  printf 'connections\t%s\n' "$CONN"
  printf 'seed_users\t%s\n' "$SEED_USERS"
  printf 'arbor_request_log\t%s\n' "${ARBOR_REQUEST_LOG:-access}"
  printf 'list_query\t?page=%s&limit=%s\n' "$LIST_PAGE" "$LIST_LIMIT"
  printf 'rustc\t%s\n' "$(cd "$ROOT" && rustc --version 2>/dev/null || echo -)"
  printf 'node\t%s\n' "$(node --version 2>/dev/null || echo -)"
  printf 'wrk\t%s\n' "$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')"
  if command -v node >/dev/null; then
    printf 'next\t%s\n' "$(version_of "$HERE/next/node_modules/next")"
    printf 'fastify\t%s\n' "$(version_of "$HERE/fastify/node_modules/fastify")"
  fi
} >"$RES/meta.tsv"

echo
python3 report.py "$RES"
python3 chart.py "$RES"
echo
echo "== written: $RES/latest.md, $RES/chart.svg (raw wrk output in $RES/raw)"
