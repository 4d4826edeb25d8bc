#!/bin/sh
# The README's first program ("Using it from C") and
# contrib/examples/volt-example-first.c are one text: this fails when they
# differ, so the program the test builds and runs is the one people read.
# Usage: check-readme.sh README.md volt-example-first.c
set -eu
readme=$1 file=$2
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# The first indented block after the heading, its 4 spaces removed (blank
# lines inside the block kept).
awk '
  /^## Using it from C/ { insec = 1; next }
  insec && /^## / { exit }
  insec && !started && /^    / { started = 1 }
  started {
    if ($0 ~ /^    /) { for (i = 0; i < pending; i++) print ""; pending = 0; print substr($0, 5); next }
    if ($0 ~ /^[ \t]*$/) { pending++; next }
    exit
  }
' "$readme" > "$tmp"
if ! diff -u "$file" "$tmp"; then
    echo "the README's first program differs from $file (diff above): change both" >&2
    exit 1
fi
echo "ok: the README's first program is $file ($(wc -l < "$file") lines)"
