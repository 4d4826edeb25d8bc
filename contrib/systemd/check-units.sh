#!/bin/sh
# Checks what the package installs for systemd, the way systemd reads it:
#  - the units (systemd-analyze verify): every key known, the socket and
#    the service paired, ExecStart runnable. Any message is a failure:
#    systemd only warns about an unknown key, then ignores it, which would
#    silently drop a hardening line. ExecStart is pointed at the built
#    broker because the configured unit names the install prefix;
#  - the hardening (systemd-analyze security --offline): the exposure may
#    not rise above MAX_EXPOSURE (see README, "Installing the packages");
#  - the sysusers.d entry (systemd-sysusers into a scratch root): user
#    volt-broker, group volt, the user in it;
#  - the example configuration (volt-broker --check-config). Its group,
#    volt, exists only where the package is installed: here it is
#    replaced by the caller's own.
#   check-units.sh BUILT_SERVICE SOURCE_SOCKET BROKER_BINARY SYSUSERS CONFIG
set -eu
service=$1 socket=$2 broker=$3 sysusers=$4 config=$5
# systemd-analyze security prints 10 times the exposure it shows: 1.3 -> 13.
max_exposure=12
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "check-units: $*" >&2
  exit 1
}

sed "s|^ExecStart=[^ ]*|ExecStart=$broker|" "$service" >"$tmp/volt-broker.service"
cp "$socket" "$tmp/volt-broker.socket"
if ! out=$(systemd-analyze verify --man=no "$tmp/volt-broker.socket" "$tmp/volt-broker.service" 2>&1) ||
   [ -n "$out" ]; then
  fail "systemd-analyze verify:
$out"
fi
echo "ok: volt-broker.service and volt-broker.socket verify cleanly"

if ! out=$(cd "$tmp" && systemd-analyze security --offline=true --no-pager \
             --threshold=$max_exposure ./volt-broker.service 2>&1); then
  printf '%s\n' "$out" | grep -v '^✓' >&2
  fail "exposure above $max_exposure/10"
fi
printf '%s\n' "$out" | grep 'Overall exposure' | sed 's/^→ /ok: /'

mkdir -p "$tmp/root/etc"
: >"$tmp/root/etc/passwd"
: >"$tmp/root/etc/group"
systemd-sysusers --root="$tmp/root" "$sysusers" >"$tmp/sysusers.log" 2>&1 ||
  fail "systemd-sysusers: $(cat "$tmp/sysusers.log")"
user=$(grep '^volt-broker:' "$tmp/root/etc/passwd") || fail "sysusers made no user volt-broker"
volt=$(grep '^volt:' "$tmp/root/etc/group") || fail "sysusers made no group volt"
uid=$(echo "$user" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "volt-broker is not a system user (uid $uid)"
case ",$(echo "$volt" | cut -d: -f4)," in
  *,volt-broker,*) ;;
  *) fail "volt-broker is not in group volt: $volt" ;;
esac
echo "ok: sysusers: user volt-broker (uid $uid), group volt with it"

out=$("$broker" --config "$config" --group "$(id -gn)" --check-config 2>&1) ||
  fail "the example configuration does not validate:
$out"
echo "ok: the example configuration validates"
