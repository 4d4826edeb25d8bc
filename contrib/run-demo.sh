#!/usr/bin/env bash
# Sets up a Debian 12 machine, builds volt-broker, and runs the main job:
# the bundled dev VOLT server (a real socket.io 4.8 server), volt-broker
# connected to it, and the example services, then drives some traffic both
# ways and shows it. Stops on Ctrl-C (or after DEMO_SECONDS, default: wait
# for Ctrl-C when run from a terminal, 0 otherwise).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/contrib/ci/setup.sh"

build="$top/build-demo"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"

run=$(mktemp -d /tmp/volt-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting the dev VOLT server (socket.io 4.8)"
node contrib/volt-dev-server/server.js --port 0 --port-file "$run/port" --log \
  --cluster cluster-demo --password demo-password --token tok-demo \
  > >(sed -u 's/^/[server] /') 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$run/port" ] && break; sleep 0.1; done
port=$(cat "$run/port")

cat > "$run/broker.json" <<JSON
{
  "serverUrl": "http://127.0.0.1:$port",
  "controlSocketUrl": "ws://127.0.0.1:$port/control",
  "credentials": {"teamClusterId": "cluster-demo", "enrollmentToken": "tok-demo"},
  "heartbeat": {"interval": 5000},
  "broker": {"listen": "$run/broker.sock", "stateDir": "$run/state", "logLevel": "info"}
}
JSON
export VOLT_BROKER_SOCKET="$run/broker.sock"

say "starting volt-broker (enrolls with the token, then connects)"
"$build/broker/volt-broker" --config "$run/broker.json" > >(sed -u 's/^/[broker] /') 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$run/broker.sock" ] && break; sleep 0.1; done

say "starting the example services: a handler and a subscriber"
"$build/contrib/examples/volt-example-handler" > >(sed -u 's/^/[handler] /') 2>&1 &
pids+=($!)
"$build/contrib/examples/volt-example-subscribe" --prefix demo. > >(sed -u 's/^/[subscriber] /') 2>&1 &
pids+=($!)
sleep 2

say "broker status"
"$build/contrib/volt-inspect/volt-inspect" status || true

say "a local service sends a command to the server (echo)"
"$build/contrib/examples/volt-example-send" echo '{"hello":"from a local service"}' || true

say "the server sends a command to the daemon (list-files, handled by the example handler)"
curl -s -X POST "http://127.0.0.1:$port/_dev/server-request" \
  -H 'Content-Type: application/json' -d '{"command":"list-files","payload":{"path":"/"}}'; echo

say "the server sends messages (the subscriber gets the demo.* ones)"
curl -s -X POST "http://127.0.0.1:$port/_dev/message" -H 'Content-Type: application/json' \
  -d '{"type":"demo.hello","data":{"n":1}}'; echo
curl -s -X POST "http://127.0.0.1:$port/_dev/message" -H 'Content-Type: application/json' \
  -d '{"type":"other.ignored","data":{"n":2}}'; echo
sleep 1

seconds=${DEMO_SECONDS:-}
if [ -z "$seconds" ]; then
  if [ -t 0 ]; then seconds=-1; else seconds=0; fi
fi
if [ "$seconds" = -1 ]; then
  say "running; press Ctrl-C to stop (try: $build/contrib/volt-inspect/volt-inspect monitor)"
  wait
else
  sleep "$seconds"
  say "done"
fi
