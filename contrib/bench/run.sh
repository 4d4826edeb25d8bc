#!/usr/bin/env bash
# The volt-broker benchmark in one command: builds (Release) into
# build-bench/, starts the dev VOLT server (a real socket.io 4.8 server),
# and runs, in the same session against the same server, each scenario
# with three programs:
#   ours:  one fresh volt-broker and bench-broker clients (libvoltclient)
#   peer:  Node processes, each with its own socket.io-client connection
#   floor: bench-floor, a minimal relay in place of the broker
# a few times, alternating which goes first, then prints the one table of
# report.js. Scenarios: 16 B and 16 KiB at K=100, 1 and 4 services,
# sequential (K=1) unpinned and all on CPU 0, inbound dispatch at K=100,
# then memory (idle, per client, per pending request) and start to ready.
# Everything runs on loopback and is killed on exit.
#
#   contrib/bench/run.sh [-n N] [-r RUNS] [-s]
#     -n N     requests per 16 B K=100 run (default 20000; the slower
#              scenarios run N/4)
#     -r RUNS  runs of each scenario (default 3)
#     -s       smoke run: a few hundred requests, one run (what CI does, so
#              that the benchmark never rots); its figures mean little
set -euo pipefail

n=20000 runs=3 smoke=0
usage() {
  echo "usage: $0 [-n requests] [-r runs] [-s]"
}
while getopts "n:r:sh" opt; do
  case $opt in
  n) n=$OPTARG ;;
  r) runs=$OPTARG ;;
  s) smoke=1 ;;
  h) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
  esac
done
if [ $smoke = 1 ]; then
  n=800 runs=1
fi
n4=$((n / 4))
warmup=500 mem_clients=200 mem_pending=20000
if [ $smoke = 1 ]; then
  warmup=100 mem_clients=20 mem_pending=500
fi

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
build="${BENCH_BUILD:-$top/build-bench}"  # BENCH_BUILD: another build-* directory
server_dir="$top/contrib/volt-dev-server"
deadline_ms=60000

say() { printf '%s\n' "$*" >&2; }

say "building (Release) into $build"
build_log="$build/bench-build.log"
mkdir -p "$build"
if ! { cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
  cmake --build "$build" -j"$(nproc)" --target volt-broker bench-broker bench-floor; } >"$build_log" 2>&1; then
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
url="http://127.0.0.1:$port"
cpus="0-$(($(nproc) - 1))"
pin=""  # "taskset -c 0" while a pinned scenario runs

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
  broker_sock="$dir/broker.sock"
  broker_started_ns=$(date +%s%N)
  $pin "$build/broker/volt-broker" --config "$dir/broker.json" >"$dir/broker.log" 2>&1 &
  broker_pid=$!
}

wait_broker() {
  if ! wait_for test -S "$broker_sock"; then
    say "volt-broker did not start:"; cat "$run"/broker-*/broker.log >&2; exit 1
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
scenario=warmup
# Runs a client tool in the background, so that a signal to this script
# is handled at once (and the trap kills the tool) rather than after it;
# its RESULT lines get the scenario's name.
run_tool() {
  $pin "$@" >"$run/tool.out" &
  tool_pid=$!
  wait "$tool_pid"
  tool_pid=""
  sed "s/^RESULT /RESULT scenario=$scenario /" "$run/tool.out" >>"$results"
}
# ours|peer|floor  requests k services payload-bytes [inbound]
run_one() {
  local who=$1 count=$2 k=$3 c=$4 bytes=$5 mode=${6:-load}
  case $who in
  ours)
    start_broker "$scenario-$RANDOM"; wait_broker
    run_tool "$build/contrib/bench/bench-broker" -s "$broker_sock" -n "$count" -k "$k" -c "$c" \
      --payload-bytes "$bytes" --warmup "$warmup" --deadline-ms "$deadline_ms" --mode "$mode" \
      --server "$url" --sample "broker=$broker_pid" --sample "server=$server_pid"
    stop_broker ;;
  peer)
    run_tool node "$here/peer.js" --url "$url" -n "$count" -k "$k" -c "$c" \
      --payload-bytes "$bytes" --warmup "$warmup" --deadline-ms "$deadline_ms" --mode "$mode" \
      --clk-tck "$(getconf CLK_TCK)" --sample "server=$server_pid" ;;
  floor)
    run_tool "$build/contrib/bench/bench-floor" --port "$port" -n "$count" -k "$k" \
      --payload-bytes "$bytes" --warmup "$warmup" ;;
  esac
}
# A scenario: each program once, the order rotated from one run to the next.
# scenario name, programs, then run_one's arguments after `who`
run_scenario() {
  local name=$1 r=$2 who=$3; shift 3
  local -a order
  read -r -a order <<<"$who"
  local i len=${#order[@]}
  scenario=$name
  for ((i = 0; i < len; i++)); do
    run_one "${order[$(((i + r) % len))]}" "$@"
  done
}

# Memory and start-up: a fresh broker timed from its start to ready, then
# its idle RSS, per client, per pending; the same for one Node service.
run_memory() {
  scenario=startup
  start_broker "memory-$RANDOM"
  run_tool "$build/contrib/bench/bench-broker" -s "$broker_sock" --mode startup \
    --since-ns "$broker_started_ns" --deadline-ms "$deadline_ms"
  scenario=memory
  run_tool "$build/contrib/bench/bench-broker" -s "$broker_sock" --mode memory --server "$url" \
    --clients "$mem_clients" --pending "$mem_pending" --deadline-ms "$deadline_ms" \
    --sample "broker=$broker_pid"
  stop_broker
  scenario=startup
  run_tool node "$here/peer.js" --url "$url" --mode startup --since-ns "$(date +%s%N)"
  scenario=memory
  run_tool node --expose-gc "$here/peer.js" --url "$url" --mode memory --pending "$mem_pending"
}

if [ ! -e /sys/kernel/tracing/events/raw_syscalls/sys_enter/id ] &&
  [ ! -e /sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id ]; then
  say "no raw_syscalls tracepoint (tracefs not mounted?): the system-call counts stay empty;" \
    "as root, 'mount -t tracefs nodev /sys/kernel/tracing' first"
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "warming up the dev server"
# Both kinds of client: the dev server keeps its last 10000 events, two per
# request, so its event log is full (and its cost steady) and its JIT warm
# before the first measurement.
scenario=warmup
run_one ours $((n < 6000 ? n : 6000)) 100 1 16
run_one peer $((n < 6000 ? n : 6000)) 100 1 16
: >"$results"
for r in $(seq "$runs"); do
  say "run $r/$runs"
  run_scenario b16-k100-c1 "$r" "ours peer floor" "$n" 100 1 16
  run_scenario b16-k100-c4 "$r" "ours peer" "$n" 100 4 16
  run_scenario b16k-k100-c1 "$r" "ours peer floor" "$n4" 100 1 16384
  run_scenario b16-k1-c1 "$r" "ours peer floor" "$n4" 1 1 16
  # Everything on CPU 0, the dev server (all its threads) too.
  taskset -a -p -c 0 "$server_pid" >/dev/null
  pin="taskset -c 0"
  run_scenario b16-k1-c1-pinned "$r" "ours peer floor" "$n4" 1 1 16
  pin=""
  taskset -a -p -c "$cpus" "$server_pid" >/dev/null
  run_scenario inbound-k100 "$r" "ours peer" "$n4" 100 1 16 inbound
  run_memory
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
node "$here/report.js" "$results" \
  "machine: $(nproc) CPUs ($cpu_model), Linux $(uname -r), node $(node --version);" \
  "load average (1/5/15 min) before: $load_before, after: $load_after."
