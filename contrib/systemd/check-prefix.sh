#!/bin/sh
# The installed tree follows the prefix given at install time, DESTDIR
# apart: the unit's ExecStart and configuration path, the example
# configuration (in /etc for the prefix /usr, PREFIX/etc otherwise, never
# over an existing one), and voltclient.pc, which still finds the headers
# and the library after the tree is moved elsewhere.
#   check-prefix.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "check-prefix: $*" >&2
  exit 1
}
# expect_line FILE LINE: FILE has exactly that line.
expect_line() {
  grep -qxF "$2" "$1" || fail "$1: expected the line '$2', found:
$(grep -E "^${2%%=*}=" "$1" || echo '(none)')"
}
install_to() { # DESTDIR PREFIX
  DESTDIR=$1 cmake --install "$build" --prefix "$2" >"$tmp/install.log" 2>&1 ||
    fail "cmake --install --prefix $2: $(cat "$tmp/install.log")"
}

install_to "$tmp/a" /opt/volt-test
root=$tmp/a/opt/volt-test
unit=$root/lib/systemd/system/volt-broker.service
[ -f "$unit" ] || fail "no unit at $unit"
expect_line "$unit" "ExecStart=/opt/volt-test/bin/volt-broker --config /opt/volt-test/etc/volt/broker.json"
expect_line "$unit" "LoadCredential=daemon-password:/opt/volt-test/etc/volt/daemon-password"
for f in bin/volt-broker etc/volt/broker.json lib/systemd/system/volt-broker.socket \
         lib/sysusers.d/volt-broker.conf share/doc/volt-broker/PROTOCOL.md; do
  [ -e "$root/$f" ] || fail "not installed: $root/$f"
done
echo "ok: --prefix /opt/volt-test: ExecStart and the configuration follow it"

install_to "$tmp/b" /usr
expect_line "$tmp/b/usr/lib/systemd/system/volt-broker.service" \
  "ExecStart=/usr/bin/volt-broker --config /etc/volt/broker.json"
[ -f "$tmp/b/etc/volt/broker.json" ] || fail "--prefix /usr: no $tmp/b/etc/volt/broker.json"
echo '{"broker": {"logLevel": "debug"}}' >"$tmp/b/etc/volt/broker.json"
install_to "$tmp/b" /usr
grep -q debug "$tmp/b/etc/volt/broker.json" || fail "a second install replaced an edited broker.json"
echo "ok: --prefix /usr: configuration in /etc, an edited one kept"

mv "$root" "$tmp/moved"
pc=$(find "$tmp/moved" -name voltclient.pc)
[ -n "$pc" ] || fail "voltclient.pc not installed"
for v in includedir libdir; do
  dir=$(PKG_CONFIG_PATH= pkg-config --with-path="$(dirname "$pc")" --variable=$v voltclient)
  [ -d "$dir" ] || fail "voltclient.pc: $v $dir is not a directory after the move"
  case $(cd "$dir" && pwd -P) in
    "$(cd "$tmp/moved" && pwd -P)"/*) ;;
    *) fail "voltclient.pc: $v $dir is outside the moved tree $tmp/moved" ;;
  esac
done
[ -f "$(PKG_CONFIG_PATH= pkg-config --with-path="$(dirname "$pc")" --variable=includedir voltclient)/volt/client.h" ] ||
  fail "voltclient.pc: no volt/client.h under includedir after the move"
echo "ok: voltclient.pc still right after the tree moved"
