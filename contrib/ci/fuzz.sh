#!/usr/bin/env bash
# Runs every libFuzzer target of a -DVOLT_FUZZ=ON build for a bounded time
# on a copy of its seed corpus (the committed corpus is never modified).
# Usage: contrib/ci/fuzz.sh BUILD_DIR SECONDS
set -uo pipefail
build=$1
seconds=$2
status=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

while IFS='=' read -r name corpus; do
  [ -n "$name" ] || continue
  bin=$(find "$build" -type f -name "$name" -perm -u+x | head -1)
  if [ -z "$bin" ]; then
    echo "fuzz: $name: binary not found"; status=1; continue
  fi
  mkdir -p "$work/$name"
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work/$name"/ 2>/dev/null
  log="$work/$name.log"
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/$name-" "$work/$name" >"$log" 2>&1
  rc=$?
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "fuzz: $name: exit $rc, ${execs:-?} execs in ${seconds}s"
  if [ $rc != 0 ]; then
    tail -40 "$log"; status=1
  fi
done < "$build/fuzz-targets.txt"
exit $status
