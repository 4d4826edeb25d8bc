#!/usr/bin/env bash
# Runs @volt/broker-client's tests with Debian 12's own nodejs 18, the
# oldest Node the package supports, whatever `node` is on PATH (CI machines
# carry a newer one; ctest runs the tests with that).
#
#   client-lib/node/test/with-debian-node18.sh BUILD_DIR
#
# Debian's node is taken from its .deb files (apt-get download; nothing is
# installed): nodejs and libnode108, plus the packages whose files it loads
# from /usr/share/nodejs (cjs-module-lexer, undici, acorn). Those paths are
# fixed in the binary, so the tests run in a private mount namespace where
# /usr/share has the extracted files laid over it; the machine itself is
# not changed. Needs root (unshare, mount), as CI has.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR (with broker/volt-broker built)}
build=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
broker="$build/broker/volt-broker"
[ -x "$broker" ] || { echo "no volt-broker at $broker: build first" >&2; exit 2; }

if node --version 2>/dev/null | grep -q '^v18\.'; then
  echo "node on PATH is $(node --version): ctest ran these tests with Node 18 already"
  exit 0
fi

# Debian's 18.x, not a newer one another apt source may offer.
version() { apt-cache madison "$1" 2>/dev/null | awk -v p="$2" '$3 ~ p { print $3; exit }'; }
v=$(version nodejs '^18\.')
if [ -z "$v" ]; then
  apt-get update -q >/dev/null
  v=$(version nodejs '^18\.')
fi
[ -n "$v" ] || { echo "apt knows no nodejs 18.x (Debian 12's)" >&2; exit 1; }

work=$(mktemp -d /tmp/volt-node18.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download -q "nodejs=$v" "libnode108=$v" node-cjs-module-lexer node-undici node-acorn \
  2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
[ -x "$work/root/usr/bin/node" ] || { echo "the nodejs $v package did not unpack" >&2; exit 1; }

echo "running the Node client's tests with Debian's nodejs $v"
export VOLT_BROKER_BIN="$broker" N18="$work/root" PKG="$here"
unshare --mount sh -ec '
  mount -t overlay overlay -o "lowerdir=$N18/usr/share:/usr/share" /usr/share
  export LD_LIBRARY_PATH="$N18/usr/lib/x86_64-linux-gnu" PATH="$N18/usr/bin:$PATH"
  echo "node $(node --version)"
  cd "$PKG"
  exec node --test test/*.test.js
'
