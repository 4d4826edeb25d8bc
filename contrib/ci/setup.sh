#!/usr/bin/env bash
# Installs what volt-broker needs to build, test and run on Debian 12, and
# the dev server's Node packages. Idempotent: installs only what is missing.
# Usage: contrib/ci/setup.sh        (as root, or with sudo available)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)

packages=(
  build-essential gcc clang cmake pkg-config git ca-certificates openssl
  libuv1-dev libcurl4-openssl-dev libmsgpack-dev libcjson-dev libcmocka-dev
  libssl-dev libclang-rt-14-dev valgrind clang-format curl
  libevent-dev libsystemd-dev  # libvoltclient loop adapters (libevent, sd-event) and their tests
  abigail-tools  # abidw/abidiff: the libvoltclient ABI check (client-lib/abi)
  libedit-dev  # volt-inspect: line editing, history and completion in the interactive mode
  zsh  # to test the zsh completion scripts (contrib/completions)
  systemd  # systemd-analyze, to verify the units as systemd reads them
  python3 python3-msgpack python3-pytest python3-mypy  # client-lib/python: runtime, tests, types
  # The package test (contrib/ci/test-package.sh): build the .debs, lint
  # them, make a clean Debian root and boot it with systemd.
  debhelper dpkg-dev lintian mmdebstrap systemd-container
  dh-python pybuild-plugin-pyproject python3-all python3-setuptools  # python3-voltclient
)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from Debian (nodejs 18 + npm) or from elsewhere (nodejs with
# npm bundled); only install Debian's when the command is missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The dev server's packages and the Node client's (@msgpack/msgpack, and
# typescript for its type check), each from its lockfile; redone only when
# the lockfile changed.
for dir in contrib/volt-dev-server client-lib/node; do
  stamp="$top/$dir/node_modules/.volt-lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$top/$dir/package-lock.json" "$stamp"; then
    echo "setup: npm ci in $dir (node $(node --version))"
    (cd "$top/$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$top/$dir/package-lock.json" "$stamp"
  fi
done
echo "setup: ok (gcc $(gcc -dumpversion), clang $(clang -dumpversion), cmake $(cmake --version | head -1 | awk '{print $3}'), node $(node --version))"
