#!/bin/sh
# The settings section of volt-broker(8) is generated from the settings
# table (broker/config_table.c). With --check, fails when the page and the
# table disagree (a ctest test); without, rewrites the section in place.
# Usage: update-settings.sh VOLT_BROKER_BINARY MAN_PAGE [--check]
set -eu
broker=$1 page=$2 mode=${3:-}
begin='^\.\\" BEGIN SETTINGS'
end='^\.\\" END SETTINGS'
generated=$(mktemp) current=$(mktemp) rebuilt=$(mktemp)
trap 'rm -f "$generated" "$current" "$rebuilt"' EXIT
"$broker" --print-man-settings >"$generated"
sed -n "/$begin/,/$end/p" "$page" | sed '1d;$d' >"$current"
if [ "$mode" = --check ]; then
    if ! cmp -s "$generated" "$current"; then
        echo "$page: the settings section differs from the settings table;" >&2
        echo "run contrib/man/update-settings.sh $broker $page" >&2
        diff -u "$current" "$generated" >&2 || true
        exit 1
    fi
    # The page must also be valid roff.
    if command -v groff >/dev/null 2>&1; then
        warnings=$(groff -man -ww -z "$page" 2>&1 || true)
        [ -z "$warnings" ] || { echo "$warnings" >&2; exit 1; }
    fi
    exit 0
fi
awk -v gen="$generated" '
    /^\.\\" BEGIN SETTINGS/ { print; while ((getline line < gen) > 0) print line; skip = 1; next }
    /^\.\\" END SETTINGS/ { skip = 0 }
    !skip { print }' "$page" >"$rebuilt"
cat "$rebuilt" >"$page"
