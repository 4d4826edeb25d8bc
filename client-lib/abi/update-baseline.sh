#!/bin/sh
# Writes the ABI baseline from a built libvoltclient.so: run at a release,
# on the build of the tagged commit (see README.md here). The source
# tree's own paths are cut to relative ones, so the dump does not depend on
# where it was built.
# Usage: update-baseline.sh BUILD_DIR [SOURCE_DIR]
set -eu
build=$1
src=${2:-$(cd "$(dirname "$0")/../.." && pwd)}
lib=$build/client-lib/libvoltclient.so
out=$src/client-lib/abi/libvoltclient.so.0.abi
abidw --headers-dir "$src/client-lib/include/volt" --drop-private-types --drop-undefined-syms \
      --no-corpus-path --no-comp-dir-path --no-elf-needed \
      --out-file "$out.tmp" "$lib"
# Locations stay (abidiff needs them to tell public types from private
# ones), relative to the source tree.
sed "s|path='$src/|path='|" "$out.tmp" > "$out"
rm -f "$out.tmp"
echo "wrote $out from $lib ($(grep -c '<elf-symbol ' "$out") symbols)"
