#!/bin/sh
# Installs client-lib into a temporary prefix and builds a program against
# it with pkg-config, once with the shared and once with the static
# library; both must run. Checks the install rules, the .pc file and that
# the public headers stand alone.
set -eu
build=$1 src=$2 cc=${3:-cc} cflags=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake -DCMAKE_INSTALL_PREFIX="$tmp" -P "$build/cmake_install.cmake" >/dev/null
export PKG_CONFIG_PATH=
pc=$(find "$tmp" -name voltclient.pc)
[ -n "$pc" ] || { echo "voltclient.pc not installed" >&2; exit 1; }
pcdir=$(dirname "$pc")
pkg() { pkg-config --define-variable=prefix="$tmp" --with-path="$pcdir" "$@"; }
libdir=$(pkg --variable=libdir voltclient)
for f in "$libdir/libvoltclient.so.0" "$libdir/libvoltclient.a" \
         "$tmp/include/volt/client.h" "$tmp/include/volt/adapters/libuv.h"; do
    [ -e "$f" ] || { echo "missing $f" >&2; exit 1; }
done
uv=$(pkg-config --cflags --libs libuv)
# The public header stands alone in strict C99 and in C++.
printf '#include <volt/client.h>\nint main(void) { return volt_version() == 0; }\n' > "$tmp/h.c"
# shellcheck disable=SC2046
$cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pkg --cflags voltclient) "$tmp/h.c"
if command -v c++ >/dev/null; then
    # shellcheck disable=SC2046
    c++ -x c++ -Wall -Werror -fsyntax-only $(pkg --cflags voltclient) "$tmp/h.c"
fi
# shellcheck disable=SC2046
$cc $cflags -std=gnu11 -Wall -Werror -o "$tmp/shared" "$src/install-consumer.c" \
    $(pkg --cflags --libs voltclient) $uv
LD_LIBRARY_PATH="$libdir" "$tmp/shared"
# shellcheck disable=SC2046
$cc $cflags -std=gnu11 -Wall -Werror -o "$tmp/static" "$src/install-consumer.c" \
    $(pkg --cflags voltclient) "$libdir/libvoltclient.a" $uv
"$tmp/static"
if objdump -p "$tmp/static" | grep -q 'NEEDED.*libvoltclient'; then
    echo "static build still needs libvoltclient.so" >&2
    exit 1
fi
echo "ok: installed to $tmp, shared and static consumers run"
