#!/bin/sh
# Reads the units the way systemd does (systemd-analyze verify): every key
# known, the socket and the service paired, ExecStart runnable. Any
# message is a failure: systemd only warns about unknown keys, then ignores
# them, which would silently drop a hardening line. ExecStart is pointed at
# the built broker because the configured unit names the install prefix.
#   check-units.sh BUILT_SERVICE SOURCE_SOCKET BROKER_BINARY
set -eu
service=$1 socket=$2 broker=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=[^ ]*|ExecStart=$broker|" "$service" >"$tmp/volt-broker.service"
cp "$socket" "$tmp/volt-broker.socket"
if ! out=$(systemd-analyze verify --man=no "$tmp/volt-broker.socket" "$tmp/volt-broker.service" 2>&1) ||
   [ -n "$out" ]; then
  echo "systemd-analyze verify:" >&2
  echo "$out" >&2
  exit 1
fi
echo "ok: volt-broker.service and volt-broker.socket verify cleanly"
