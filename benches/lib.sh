# Shared by the shell benchmarks (sourced, not run): settings, a scratch folder cleaned up on
# exit with the processes started, installing what is missing, the release build of the
# reference app, and starting instances of it on fresh SQLite databases.
#
# Settings: ROUNDS (5), DUR (5s), CONN (32), SERVER_CPU (1), LOAD_CPU (0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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

# install COMMAND:PACKAGE ...: apt-installs the packages whose command is missing.
install() {
  for tool in "$@"; do
    if ! command -v "${tool%%:*}" >/dev/null; then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool##*:}" >/dev/null
    fi
  done
}

build_app() {
  echo "== build (release)"
  cargo build --release -q --bin arbor-app
  APP=target/release/arbor-app
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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

# register PORT: registers a user and prints its bearer token.
register() {
  curl -fs -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","name":"Bench","password":"Str0ngPassword"}' \
    "http://127.0.0.1:$1/api/v1/register" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

# seed_posts PORT TOKEN: ten posts for the list route.
seed_posts() {
  for i in $(seq 10); do
    curl -fs -o /dev/null -H "authorization: Bearer $2" -H 'content-type: application/json' \
      -d "{\"title\":\"post $i\",\"body\":\"b\"}" "http://127.0.0.1:$1/api/v1/posts"
  done
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
