#!/bin/sh
# Fails when libvoltclient.so exports anything but the public volt_* API
# (internal volt__* and proto_* must stay hidden), or has the wrong SONAME.
set -eu
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' |
      grep -v '^volt_[a-z]' || true)
internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep '^volt__' || true)
if [ -n "$bad$internal" ]; then
    echo "unexpected exports:" $bad $internal >&2
    exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^volt_[a-z]')
[ "$count" -ge 50 ] || { echo "only $count volt_* symbols exported" >&2; exit 1; }
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libvoltclient.so.0" ] || { echo "SONAME is '$soname'" >&2; exit 1; }
echo "ok: $count volt_* symbols, SONAME $soname"
