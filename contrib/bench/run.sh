#!/usr/bin/env bash
# The volt-broker benchmark in one command: builds (Release) into
# build-bench/, starts the dev VOLT server (a real socket.io 4.8 server),
# and for each number of services C runs, in the same session and with the
# same N and K:
#   ours: one fresh volt-broker and C bench-broker clients (libvoltclient)
#   peer: C Node processes, each with its own socket.io-client connection
# a few times, alternating which goes first, then prints the table of
# report.js. Everything runs on loopback and is killed on exit.
#
#   contrib/bench/run.sh [-n N] [-k K] [-c "1 4"] [-r RUNS] [-b PAYLOAD_BYTES]
set -euo pipefail

n=20000 k=100 configs="1 4" runs=3 payload_bytes=16
usage() {
  echo "usage: $0 [-n requests] [-k in-flight per service] [-c \"services ...\"] [-r runs] [-b payload bytes]"
}
while getopts "n:k:c:r:b:h" opt; do
  case $opt in
  n) n=$OPTARG ;;
  k) k=$OPTARG ;;
  c) configs=$OPTARG ;;
  r) runs=$OPTARG ;;
  b) payload_bytes=$OPTARG ;;
  h) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
done

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
build="$top/build-bench"
server_dir="$top/contrib/volt-dev-server"
deadline_ms=60000

say() { printf '%s\n' "$*" >&2; }

say "building (Release) into $build"
build_log="$build/bench-build.log"
mkdir -p "$build"
if ! { cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
  cmake --build "$build" -j"$(nproc)" --target volt-broker bench-broker; } >"$build_log" 2>&1; then
  cat "$build_log" >&2; exit 1
fi

# npm ci from the lockfile, unless node_modules already matches it.
npm_ci() {
  if [ ! -f "$1/node_modules/.package-lock.json" ] ||
    [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    say "npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund >/dev/null)
  fi
}
npm_ci "$here"
npm_ci "$server_dir"

run=$(mktemp -d /tmp/volt-bench.XXXXXX)
server_pid="" broker_pid="" tool_pid=""
cleanup() {
  for pid in $tool_pid $broker_pid $server_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $tool_pid $broker_pid $server_pid; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (up to 15 s) for a condition given as a command.
wait_for() {
  for _ in $(seq 150); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

node "$server_dir/server.js" --port 0 --quiet >"$run/server.out" 2>"$run/server.err" &
server_pid=$!
if ! wait_for grep -q '"event":"listening"' "$run/server.out"; then
  say "the dev server did not start:"; cat "$run/server.err" >&2; exit 1
fi
port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$run/server.out")

start_broker() {
  local dir="$run/broker-$1"
  mkdir -p "$dir"
  cat >"$dir/broker.json" <<JSON
{
  "controlSocketUrl": "ws://127.0.0.1:$port/control",
  "credentials": {"teamClusterId": "cluster-dev", "daemonPassword": "dev-password"},
  "broker": {"listen": "$dir/broker.sock", "stateDir": "$dir/state", "logLevel": "warn"}
}
JSON
  "$build/broker/volt-broker" --config "$dir/broker.json" >"$dir/broker.log" 2>&1 &
  broker_pid=$!
  broker_sock="$dir/broker.sock"
  if ! wait_for test -S "$broker_sock"; then
    say "volt-broker did not start:"; cat "$dir/broker.log" >&2; exit 1
  fi
}

stop_broker() {
  kill "$broker_pid"
  for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$broker_pid" 2>/dev/null || true
  wait "$broker_pid" 2>/dev/null || true
  broker_pid=""
}

results="$run/results"
: >"$results"
# Runs a client tool in the background, so that a signal to this script
# is handled at once (and the trap kills the tool) rather than after it.
run_tool() {
  "$@" >>"$results" &
  tool_pid=$!
  wait "$tool_pid"
  tool_pid=""
}
run_ours() { # services run-name [requests]
  start_broker "$2-$1"
  run_tool "$build/contrib/bench/bench-broker" -s "$broker_sock" -n "${3:-$n}" -k "$k" -c "$1" \
    --payload-bytes "$payload_bytes" --deadline-ms "$deadline_ms" \
    --sample "broker=$broker_pid" --sample "server=$server_pid"
  stop_broker
}
run_peer() { # services [requests]
  run_tool node "$here/peer.js" --url "http://127.0.0.1:$port" -n "${2:-$n}" -k "$k" -c "$1" \
    --payload-bytes "$payload_bytes" --deadline-ms "$deadline_ms" \
    --clk-tck "$(getconf CLK_TCK)" --sample "server=$server_pid"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "warming up the dev server"
# Both kinds of client, 6000 requests each: the dev server keeps its last
# 10000 events, two per request, so its event log is full (and its cost
# steady) and its JIT warm before the first measurement.
run_ours 1 warmup 6000
run_peer 1 6000
: >"$results"
for r in $(seq "$runs"); do
  for c in $configs; do
    say "run $r/$runs, $c service(s)"
    # Alternate who goes first, so drift in the machine's load hits both.
    if [ $((r % 2)) = 1 ]; then
      run_ours "$c" "$r"; run_peer "$c"
    else
      run_peer "$c"; run_ours "$c" "$r"
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
node "$here/report.js" "$results" \
  "machine: $(nproc) CPUs ($cpu_model), Linux $(uname -r), node $(node --version);" \
  "load average (1/5/15 min) before: $load_before, after: $load_after."
