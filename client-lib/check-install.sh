#!/bin/sh
# Installs client-lib into a temporary prefix, moves the installed tree
# somewhere else (both the .pc and the CMake package config must be
# relocatable), and builds a program against it as an outside project
# would: with pkg-config and with find_package(VoltClient), each with the
# shared and the static library; every program must run. Checks the
# install rules, that the public headers stand alone, and that the
# version file refuses another major version.
# Usage: check-install.sh BUILD_DIR SOURCE_DIR [CC] [CFLAGS]
set -eu
build=$1 src=$2 cc=${3:-cc} cflags=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake -DCMAKE_INSTALL_PREFIX="$tmp/first" -P "$build/cmake_install.cmake" >/dev/null
mv "$tmp/first" "$tmp/moved"
root=$tmp/moved
export PKG_CONFIG_PATH=
pc=$(find "$root" -name voltclient.pc)
[ -n "$pc" ] || { echo "voltclient.pc not installed" >&2; exit 1; }
pcdir=$(dirname "$pc")
pkg() { pkg-config --with-path="$pcdir" "$@"; }
libdir=$(pkg --variable=libdir voltclient)
includedir=$(pkg --variable=includedir voltclient)
# Relocatable: the paths follow the moved tree, with nothing defined by hand.
case "$libdir" in "$root"/*) ;; *) echo "libdir '$libdir' is not under $root" >&2; exit 1 ;; esac
[ "$(cd "$includedir" && pwd)" = "$(cd "$root/include" && pwd)" ] ||
    { echo "includedir '$includedir' is not $root/include" >&2; exit 1; }
for f in "$libdir/libvoltclient.so.0" "$libdir/libvoltclient.a" \
         "$root/include/volt/client.h" "$root/include/volt/adapters/libuv.h" \
         "$root/include/volt/adapters/libevent.h" "$root/include/volt/adapters/sd-event.h"; do
    [ -e "$f" ] || { echo "missing $f" >&2; exit 1; }
done
cmakedir=$(find "$root" -type d -path '*/cmake/VoltClient')
[ -f "$cmakedir/VoltClientConfig.cmake" ] && [ -f "$cmakedir/VoltClientConfigVersion.cmake" ] ||
    { echo "CMake package config not installed" >&2; exit 1; }
uv=$(pkg-config --cflags --libs libuv)
# The public header stands alone in strict C99 and in C++; the adapters
# (whose loops' own headers need POSIX) in gnu11 and C++.
printf '#include <volt/client.h>\nint main(void) { return volt_version() == 0; }\n' > "$tmp/h.c"
printf '#include <volt/adapters/libuv.h>\n#include <volt/adapters/libevent.h>\n#include <volt/adapters/sd-event.h>\nint main(void) { return 0; }\n' > "$tmp/a.c"
# shellcheck disable=SC2046
$cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pkg --cflags voltclient) "$tmp/h.c"
# shellcheck disable=SC2046
$cc -std=gnu11 -Wall -Wextra -Werror -fsyntax-only $(pkg --cflags voltclient) \
    $(pkg-config --cflags libuv libevent_core libsystemd) "$tmp/a.c"
if command -v c++ >/dev/null; then
    # shellcheck disable=SC2046
    c++ -x c++ -Wall -Werror -fsyntax-only $(pkg --cflags voltclient) "$tmp/h.c"
    # shellcheck disable=SC2046
    c++ -x c++ -Wall -Werror -fsyntax-only $(pkg --cflags voltclient) \
        $(pkg-config --cflags libuv libevent_core libsystemd) "$tmp/a.c"
fi
# pkg-config, shared and static.
# shellcheck disable=SC2046
$cc $cflags -std=gnu11 -Wall -Werror -o "$tmp/shared" "$src/install-consumer.c" \
    $(pkg --cflags --libs voltclient) $uv
LD_LIBRARY_PATH="$libdir" "$tmp/shared"
# shellcheck disable=SC2046
$cc $cflags -std=gnu11 -Wall -Werror -o "$tmp/static" "$src/install-consumer.c" \
    $(pkg --cflags voltclient) "$libdir/libvoltclient.a" $(pkg --static --libs-only-other voltclient) $uv
"$tmp/static"
if objdump -p "$tmp/static" | grep -q 'NEEDED.*libvoltclient'; then
    echo "static build still needs libvoltclient.so" >&2
    exit 1
fi
# find_package(VoltClient), shared and static.
cmake -S "$src/cmake-consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$root" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$cflags" \
    -DCONSUMER_SOURCE="$src/install-consumer.c" >"$tmp/cm.log" 2>&1 ||
    { cat "$tmp/cm.log" >&2; exit 1; }
cmake --build "$tmp/cm" >"$tmp/cm-build.log" 2>&1 || { cat "$tmp/cm-build.log" >&2; exit 1; }
"$tmp/cm/consumer-shared"
"$tmp/cm/consumer-static"
# Another major version is not this one.
mkdir -p "$tmp/v2"
printf 'cmake_minimum_required(VERSION 3.18)\nproject(v2 LANGUAGES C)\nfind_package(VoltClient 2.0 QUIET)\nif(VoltClient_FOUND)\n  message(FATAL_ERROR "VoltClient 2.0 found in a 1.x install")\nendif()\n' \
    > "$tmp/v2/CMakeLists.txt"
cmake -S "$tmp/v2" -B "$tmp/v2/b" -DCMAKE_PREFIX_PATH="$root" >/dev/null
echo "ok: installed, moved to $root; pkg-config and find_package consumers (shared, static) run"
