#!/bin/sh
# The installed tree follows the prefix given at install time, DESTDIR
# apart: the unit's ExecStart and configuration path, the example
# configuration (in /etc for the prefix /usr, PREFIX/etc otherwise, never
# over an existing one), and voltclient.pc, which still finds the headers
# and the library after the tree is moved elsewhere. Directories the build
# set as absolute paths (as Debian's does: /etc, /lib/systemd/system) stay
# where they are.
#   check-prefix.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "check-prefix: $*" >&2
  exit 1
}
cached() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
# full PREFIX DIR [sysconf]: where DIR lands for PREFIX, the way
# unit-paths.cmake and GNUInstallDirs place it.
full() {
  case $2 in
    /*) echo "$2" ;;
    *) if [ -n "${3:-}" ] && { [ "$1" = /usr ] || [ "$1" = / ]; }; then echo "/$2"; else echo "$1/$2"; fi ;;
  esac
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
bindir=$(cached CMAKE_INSTALL_BINDIR)
sysconfdir=$(cached CMAKE_INSTALL_SYSCONFDIR)
unitdir=$(cached VOLT_SYSTEMD_UNITDIR)
sysusersdir=$(cached VOLT_SYSUSERSDIR)
docdir=$(cached CMAKE_INSTALL_DOCDIR)
# GNUInstallDirs leaves DOCDIR empty in the cache when it is the default.
[ -n "$docdir" ] || docdir=$(cached CMAKE_INSTALL_DATAROOTDIR)/doc/volt-broker

for prefix in /opt/volt-test /usr; do
  dest=$tmp/dest$(echo "$prefix" | tr / -)
  install_to "$dest" "$prefix"
  unit=$dest$(full "$prefix" "$unitdir")/volt-broker.service
  confdir=$(full "$prefix" "$sysconfdir" sysconf)/volt
  [ -f "$unit" ] || fail "--prefix $prefix: no unit at $unit"
  expect_line "$unit" "ExecStart=$(full "$prefix" "$bindir")/volt-broker --config $confdir/broker.json"
  expect_line "$unit" "LoadCredential=daemon-password:$confdir/daemon-password"
  for f in "$(full "$prefix" "$bindir")/volt-broker" "$confdir/broker.json" \
           "$(full "$prefix" "$unitdir")/volt-broker.socket" \
           "$(full "$prefix" "$sysusersdir")/volt-broker.conf" \
           "$(full "$prefix" "$docdir")/PROTOCOL.md"; do
    [ -e "$dest$f" ] || fail "--prefix $prefix: not installed: $dest$f"
  done
  echo "ok: --prefix $prefix: ExecStart $(full "$prefix" "$bindir")/volt-broker, configuration in $confdir"
done

# An edited configuration survives another install.
echo '{"broker": {"logLevel": "debug"}}' >"$dest$confdir/broker.json"
install_to "$dest" /usr
grep -q debug "$dest$confdir/broker.json" || fail "a second install replaced an edited broker.json"
echo "ok: an edited $confdir/broker.json is kept"

dest=$tmp/dest-opt-volt-test
pc=$(find "$dest" -name voltclient.pc)
[ -n "$pc" ] || fail "voltclient.pc not installed"
mv "$dest" "$tmp/moved"
pc=$(find "$tmp/moved" -name voltclient.pc)
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
