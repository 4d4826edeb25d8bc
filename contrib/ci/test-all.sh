#!/usr/bin/env bash
# Sets up a Debian 12 machine and runs every test of volt-broker:
#   1. gcc build with -Werror, all ctest tests (unit + integration against
#      the real socket.io dev server), the Node client's tests again with
#      Debian 12's nodejs 18, then every integration test again with the
#      broker under valgrind;
#   2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer, all
#      ctest tests;
#   3. clang build with ThreadSanitizer of the libvoltclient tests (a handler's
#      answer from a worker thread), ctest on those;
#   4. every libFuzzer target for a short bounded run on its seed corpus;
#   5. clang-format check of every C file;
#   6. mypy --strict over the Python client (its tests run in ctest);
#   7. a smoke run of the benchmark (contrib/bench/run.sh -s);
#   8. the Debian packages: built, linted, installed into a clean Debian 12
#      root booted with systemd, and used there (contrib/ci/test-package.sh).
# The gcc ctest includes client-lib-abi: the built libvoltclient against its
# committed ABI baseline (abidiff).
# Usage: contrib/ci/test-all.sh    (FUZZ_SECONDS=N to change the fuzz time)
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
"$top/contrib/ci/setup.sh"

jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-20}
status=0
summary=()

step() { printf '\n==== %s\n' "$*"; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Runs ctest in a build dir, keeping its output to count results at the end.
run_ctest() {
  local dir=$1 name=$2; shift 2
  (cd "$dir" && ctest --output-on-failure "$@") 2>&1 | tee "$logs/$name.log"
  return "${PIPESTATUS[0]}"
}

step "format check (clang-format)"
git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run >"$logs/format.txt" 2>&1 || true
unformatted=$(grep -c 'warning:' "$logs/format.txt" || true)
if [ "$unformatted" != 0 ]; then
  grep 'warning:' "$logs/format.txt" | cut -d: -f1 | sort -u | sed 's/^/not clang-formatted: /'
  status=1; summary+=("format: FAILED")
else
  summary+=("format: ok")
fi

step "python client: mypy --strict (package, tests, benchmark)"
# The suite itself runs from ctest (python-client) in every build below.
if (cd client-lib/python && /usr/bin/python3 -m mypy --cache-dir "$logs/mypy-cache" &&
    /usr/bin/python3 -m mypy --strict --ignore-missing-imports --cache-dir "$logs/mypy-cache" \
      ../../contrib/bench/bench-python.py) 2>&1 | tee "$logs/mypy.txt"; then
  summary+=("python mypy: ok")
else
  status=1; summary+=("python mypy: FAILED")
fi

step "gcc build (-Werror) + ctest"
cmake -S . -B build-ci-gcc -DCMAKE_C_COMPILER=gcc -DVOLT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-ci-gcc -j"$jobs"
if run_ctest build-ci-gcc gcc -j"$jobs" --timeout 300; then
  summary+=("gcc ctest: ok")
else
  status=1; summary+=("gcc ctest: FAILED")
fi

step "Node client: its tests again with Debian 12's nodejs 18 (the oldest it supports)"
if client-lib/node/test/with-debian-node18.sh build-ci-gcc 2>&1 | tee "$logs/node18.txt"; then
  summary+=("node 18: ok ($(grep -E '^# pass' "$logs/node18.txt" | tail -1 | sed 's/# //'))")
else
  status=1; summary+=("node 18: FAILED")
fi

step "valgrind: every integration test with the broker under valgrind (no leaks, no errors)"
if VOLT_TEST_VALGRIND=1 run_ctest build-ci-gcc valgrind -L integration -j"$jobs" --timeout 1200; then
  summary+=("valgrind ctest: ok")
else
  status=1; summary+=("valgrind ctest: FAILED")
fi

step "clang build with AddressSanitizer + UndefinedBehaviorSanitizer + ctest"
cmake -S . -B build-ci-asan -DCMAKE_C_COMPILER=clang -DVOLT_WERROR=ON \
  -DVOLT_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-ci-asan -j"$jobs"
if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest build-ci-asan asan -j"$jobs" --timeout 300; then
  summary+=("asan+ubsan ctest: ok")
else
  status=1; summary+=("asan+ubsan ctest: FAILED")
fi

step "clang build with ThreadSanitizer: the libvoltclient tests (answers from worker threads)"
cmake -S . -B build-ci-tsan -DCMAKE_C_COMPILER=clang -DVOLT_WERROR=ON \
  -DVOLT_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug >/dev/null
tsan_tests=(test-client-threads test-client test-client-libuv test-adapter-libuv
            test-adapter-libevent test-adapter-sdevent)
cmake --build build-ci-tsan -j"$jobs" --target "${tsan_tests[@]}"
if TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    run_ctest build-ci-tsan tsan -j"$jobs" --timeout 300 \
    -R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$"; then
  summary+=("tsan ctest (client-lib): ok")
else
  status=1; summary+=("tsan ctest (client-lib): FAILED")
fi

step "libFuzzer targets, ${fuzz_seconds}s each"
cmake -S . -B build-ci-fuzz -DCMAKE_C_COMPILER=clang -DVOLT_FUZZ=ON -DBUILD_TESTING=OFF -DVOLT_WERROR=ON >/dev/null
cmake --build build-ci-fuzz -j"$jobs"
if "$top/contrib/ci/fuzz.sh" build-ci-fuzz "$fuzz_seconds"; then
  summary+=("fuzz: ok")
else
  status=1; summary+=("fuzz: FAILED")
fi

step "benchmark smoke run (contrib/bench/run.sh -s): the benchmark still runs end to end"
# A few hundred requests per scenario, one run: the figures mean little on
# a shared machine; what is checked is that every program of the benchmark
# builds, runs and verifies its answers.
if BENCH_BUILD="$top/build-ci-bench" "$top/contrib/bench/run.sh" -s >"$logs/bench.txt" 2>&1; then
  sed -n '/^volt-broker/,/^Per run/p' "$logs/bench.txt"
  summary+=("bench smoke: ok")
else
  tail -60 "$logs/bench.txt"
  status=1; summary+=("bench smoke: FAILED")
fi

step "Debian packages: build, lintian, install and use in a clean booted root"
if "$top/contrib/ci/test-package.sh" 2>&1 | tee "$logs/package.txt"; then
  summary+=("packages: ok")
else
  status=1; summary+=("packages: FAILED")
fi

step "summary"
printf '%s\n' "${summary[@]}"
# One closing line over every ctest run: "N passed, N failed".
passed=0; failed=0
for f in "$logs"/*.log; do
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$f" | tail -1)
  [ -n "$line" ] || { failed=$((failed + 1)); continue; }
  total=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
  bad=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/')
  passed=$((passed + total - bad)); failed=$((failed + bad))
done
# The package test's own count ("N passed, N failed", its last line).
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$logs/package.txt" | tail -1 || true)
if [ -n "$line" ]; then
  passed=$((passed + ${line%% *})); bad=${line#*, }; failed=$((failed + ${bad%% *}))
else
  failed=$((failed + 1))
fi
[ $status = 0 ] || [ $failed -gt 0 ] || failed=1
echo "$passed passed, $failed failed"
exit $status
