#!/usr/bin/env bash
# Redis stores vs in-memory stores, on the reference app (release build), with wrk.
# Redis is not pinned: on a 2-core machine it shares the cores with the server and wrk.
#
#   bash benches/redis_stores.sh            # ROUNDS=5 DUR=5s CONN=32
#
# Starts a throwaway redis-server on loopback (apt-installs redis-server and wrk if missing),
# then two instances of the app on fresh SQLite databases: one with in-memory stores, one with
# REDIS_URL. The servers run on CPU $SERVER_CPU, wrk on CPU $LOAD_CPU. For each endpoint, the
# two servers are measured alternately, round by round; the table gives the median requests/s
# of each and the median of the per-round ratios (Redis / memory). It also counts the Redis
# commands one rate-limit decision costs (INFO commandstats around a burst of logins).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}; DUR=${DUR:-5s}; CONN=${CONN:-32}
SERVER_CPU=${SERVER_CPU:-1}; LOAD_CPU=${LOAD_CPU:-0}
WORK=$(mktemp -d /tmp/arbor-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
for tool in redis-server:redis-server wrk:wrk; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool##*:}" >/dev/null
  fi
done

echo "== build (release)"
cargo build --release -q --bin arbor-app
APP=target/release/arbor-app

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done

start_app() { # $1 = name, $2 = port, rest = env
  local name=$1 port=$2; shift 2
  mkdir -p "$WORK/$name"
  env "$@" HOST=127.0.0.1 PORT="$port" RUST_LOG=warn \
    DATABASE_URL="sqlite://$WORK/$name/app.db?mode=rwc" ARBOR_UPLOAD_DIR="$WORK/$name/uploads" \
    taskset -c "$SERVER_CPU" "$APP" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$port/api/hello" && return 0; sleep 0.05; done
  echo "$name did not start"; cat "$WORK/$name.log"; exit 1
}
MEM_PORT=$(free_port); start_app memory "$MEM_PORT"
RED_PORT=$(free_port); start_app redis "$RED_PORT" REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

token() { # $1 = port: registers a user and prints its bearer token
  curl -fs -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","name":"Bench","password":"Str0ngPassword"}' \
    "http://127.0.0.1:$1/api/v1/register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
declare -A TOKEN=([memory]=$(token "$MEM_PORT") [redis]=$(token "$RED_PORT"))
declare -A PORT=([memory]=$MEM_PORT [redis]=$RED_PORT)
for name in memory redis; do # seed posts for the list route
  for i in $(seq 10); do
    curl -fs -o /dev/null -H "authorization: Bearer ${TOKEN[$name]}" -H 'content-type: application/json' \
      -d "{\"title\":\"post $i\",\"body\":\"b\"}" "http://127.0.0.1:${PORT[$name]}/api/v1/posts"
  done
done

cat >"$WORK/idempotent_post.lua" <<'LUA'
-- POST /api/v1/posts with a new Idempotency-Key each time: a database insert, a claim and a
-- record in the idempotency store.
local counter = 0
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. run .. "-" .. counter
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  return wrk.format("POST", "/api/v1/posts", nil, '{"title":"bench","body":"b"}')
end
LUA

measure() { # $1 = server, $2 = endpoint: prints requests/s
  local name=$1 endpoint=$2 url="http://127.0.0.1:${PORT[$1]}" args=()
  case $endpoint in
    posts_list) args=("$url/api/v1/posts?limit=10") ;;
    cache_hit) args=("$url/api/v1/docs/guide/intro") ;;
    idempotent_post) args=(-s "$WORK/idempotent_post.lua" "$url") ;;
  esac
  BENCH_TOKEN=${TOKEN[$name]} taskset -c "$LOAD_CPU" wrk -t1 -c"$CONN" -d"$DUR" "${args[@]}" \
    >"$WORK/wrk.out"
  # Every answer must be a success: a store answering 503 would make a fast, wrong figure.
  if grep -q 'Non-2xx' "$WORK/wrk.out"; then
    echo "$name $endpoint: $(grep 'Non-2xx' "$WORK/wrk.out")" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "== $ROUNDS rounds of $DUR per server and endpoint, $CONN connections, alternating"
printf '%-16s %12s %12s %8s\n' endpoint memory redis ratio
for endpoint in posts_list cache_hit; do
  : >"$WORK/mem" ; : >"$WORK/red" ; : >"$WORK/ratio"
  for round in $(seq "$ROUNDS"); do
    if (( round % 2 )); then m=$(measure memory "$endpoint"); r=$(measure redis "$endpoint")
    else r=$(measure redis "$endpoint"); m=$(measure memory "$endpoint"); fi
    echo "$m" >>"$WORK/mem"; echo "$r" >>"$WORK/red"
    python3 -c "print($r / $m)" >>"$WORK/ratio"
  done
  printf '%-16s %12.0f %12.0f %8.3f\n' "$endpoint" "$(median <"$WORK/mem")" "$(median <"$WORK/red")" \
    "$(median <"$WORK/ratio")"
done

# The in-memory idempotency store is bounded (10,000 live keys by default) and refuses new keys
# with 503 once full, which a run of unique keys reaches in seconds: only Redis is measured.
echo "== POST /api/v1/posts with a new Idempotency-Key each time (Redis only), $DUR"
echo "redis idempotent_post: $(measure redis idempotent_post) requests/s"

echo "== Redis commands per rate-limit decision (POST /api/v1/login, 5 per minute)"
redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
DECISIONS=20
for _ in $(seq "$DECISIONS"); do
  curl -s -o /dev/null -H 'content-type: application/json' \
    -d '{"email":"nobody@example.com","password":"wrong-password"}' "http://127.0.0.1:$RED_PORT/api/v1/login"
done
STATS=$(redis-cli -p "$REDIS_PORT" info commandstats)
# Round trips are the commands the app sends: EVALSHA (EVAL the first time). The TIME, GET and
# SET in the list run inside the script, on the server, in the same round trip.
TRIPS=$(grep -E 'cmdstat_(evalsha|eval):' <<<"$STATS" | grep -o 'calls=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
echo "$DECISIONS decisions: $TRIPS round trips ($(python3 -c "print($TRIPS / $DECISIONS)") per decision)"
grep 'cmdstat_' <<<"$STATS" | grep -v -E 'cmdstat_(info|config)' | sed 's/^/  /'
