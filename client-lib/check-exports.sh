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
# Every symbol carries a version node of the map (VOLTCLIENT_1.0, later 1.N).
unversioned=$(nm -D --defined-only "$lib" | awk '$3 ~ /^volt_/ && $3 !~ /@@?VOLTCLIENT_1\.[0-9]+$/ {print $3}')
if [ -n "$unversioned" ]; then
    echo "symbols without a VOLTCLIENT_1.x version:" $unversioned >&2
    exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[ "$soname" = "libvoltclient.so.0" ] || { echo "SONAME is '$soname'" >&2; exit 1; }
echo "ok: $count volt_* symbols, all versioned, SONAME $soname"
