#!/bin/sh
# Compares the built libvoltclient.so with the committed ABI baseline of
# the last release (client-lib/abi/libvoltclient.so.0.abi, an abidw dump):
# any change to a public type or function, a removed symbol or a changed
# symbol version fails. Functions added later are compatible growth and
# pass (they go into a new version node, see libvoltclient.map). Changes
# to types the public header only declares (struct volt_client, ...) are
# private and ignored.
# Usage: check-abi.sh LIBRARY INCLUDE_DIR BASELINE
set -u
lib=$1 inc=$2 baseline=$3
if ! command -v abidiff >/dev/null; then
    echo "abidiff not found: apt-get install abigail-tools (contrib/ci/setup.sh does)" >&2
    exit 1
fi
out=$(abidiff --fail-no-debug-info --no-added-syms --drop-private-types \
      --headers-dir2 "$inc/volt" "$baseline" "$lib" 2>&1)
rc=$?
# abidiff's status is a bit field: 1 error, 2 usage, 4 ABI change, 8 incompatible change.
if [ $rc != 0 ]; then
    printf '%s\n' "$out" >&2
    echo "ABI of $lib differs from the baseline $baseline (abidiff status $rc)." >&2
    echo "An incompatible change needs a new soname; a compatible one is renewed at a" >&2
    echo "release with client-lib/abi/update-baseline.sh (see client-lib/abi/README.md)." >&2
    exit 1
fi
echo "ok: $lib has the ABI of $(basename "$baseline")"
