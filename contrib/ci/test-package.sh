#!/usr/bin/env bash
# The package test: builds the Debian packages from this tree, runs lintian
# on them, installs them with their dependencies into a clean Debian 12
# root booted with systemd (systemd-nspawn), and checks there, as an admin
# and as local users would, that they work:
#   - what landed where (dpkg -L), nothing pointing back at the source tree;
#   - sysusers made the user volt-broker and the group volt with it; the
#     postinst enabled and started the units; the socket is root:volt 0660;
#   - the broker runs as volt-broker under the packaged unit and
#     /etc/volt/broker.json, against the dev server (only the upstream URL
#     and the cluster id come from a drop-in's VOLT_* variables), with the
#     daemon password from /etc/volt/broker.env, then from a root-only
#     /etc/volt/daemon-password through LoadCredential=;
#   - an example service built from libvoltclient-dev with pkg-config,
#     run by a user in group volt, sends a request and gets its answer; a
#     user not in volt is refused; only root gets the daemon password;
#   - started by hand as volt-broker (runuser, no socket activation), the
#     broker makes its own socket volt-broker:volt 0660;
#   - reload keeps the process; a configuration error exits 78 and is not
#     restarted; purge removes the configuration and stops everything.
#
# Why a booted root and not this machine: the units, sysusers, credentials
# and the hardening only mean something under systemd as PID 1, which this
# machine does not run, and a clean root proves the packages' dependencies.
# The root (Debian 12 minbase, systemd, a C compiler, cmake) is made once with
# mmdebstrap and kept in $VOLT_PKGTEST_CACHE (default
# /var/cache/volt-broker-ci); each run boots a throw-away overlay of it.
#
# Usage: contrib/ci/test-package.sh     (as root; after contrib/ci/setup.sh)
# Prints "N passed, N failed" last; exits non-zero on any failure.
set -euo pipefail

# ---------------------------------------------------------------------------
# Inside the booted root: the checks. Started by volt-pkgtest.service.
# ---------------------------------------------------------------------------
if [ "${1:-}" = --in-root ]; then
  exec >>/out/test.log 2>&1
  # shellcheck disable=SC1091
  . /pkgtest/env # DEVSERVER_PORT, DAEMON_PASSWORD, SOURCE_DIR, TRIPLET, PKG_VERSION
  export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
  passed=0 failed=0
  ok() { passed=$((passed + 1)); echo "ok: $*"; }
  bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
  # check DESCRIPTION CMD...: CMD succeeds.
  check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$what"; else bad "$what: ${out:-(no output)}"; fi
  }
  # wait_until SECONDS CMD...: CMD succeeds before the deadline.
  wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
      [ $SECONDS -lt $deadline ] || return 1
      sleep 0.1
    done
  }
  # The counts are written and the root powered off however the script
  # ends; a command failing where no check expected it is a failure.
  finished=no
  finish() {
    finished=yes
    exit 0
  }
  on_exit() {
    [ $finished = yes ] || bad "the in-root script stopped early (exit $?), see above"
    echo "in-root: $passed passed, $failed failed"
    echo "$passed $failed" >/out/counts
    # No logind here to ask about inhibitors: straight to systemd.
    # It asks logind first (absent here: an error message), then systemd.
    systemctl poweroff --no-block 2>/dev/null
  }
  trap on_exit EXIT
  journal() { journalctl --no-pager -o cat -n "${2:-30}" -u "$1" | sed 's/^/    | /'; }
  prop() { systemctl show -P "$2" "$1"; }
  stat_of() { stat -c '%U:%G %a %F' "$1" 2>&1; }
  upstream_state() {
    volt-inspect status --json 2>/dev/null | grep -o '"upstream":{"state":"[a-z]*"' | cut -d'"' -f6 || true
  }
  upstream_ready() { [ "$(upstream_state)" = ready ]; }
  is_failed() { [ "$(prop volt-broker.service ActiveState)" = failed ]; }
  was_restarted() { [ "$(prop volt-broker.service NRestarts)" != 0 ]; }
  main_uid() { awk '/^Uid:/ {print $2}' "/proc/$(prop volt-broker.service MainPID)/status" 2>/dev/null || true; }
  dropin=/etc/systemd/system/volt-broker.service.d/pkgtest.conf
  set_dropin() {
    mkdir -p "${dropin%/*}"
    printf '[Service]\n' >"$dropin"
    printf 'Environment=%s\n' "$@" >>"$dropin"
    systemctl daemon-reload
  }
  upstream_env=("VOLT_CONTROL_SOCKET_URL=ws://127.0.0.1:$DEVSERVER_PORT/control"
                "VOLT_TEAM_CLUSTER_ID=cluster-dev")

  echo "== install the packages and their dependencies"
  start=$SECONDS
  debs=(/pkgtest/debs/*.deb)
  if apt-get update -q >/tmp/apt.log 2>&1 &&
     apt-get install -y -q --no-install-recommends "${debs[@]}" >>/tmp/apt.log 2>&1; then
    ok "apt-get install of ${#debs[@]} packages with their dependencies ($((SECONDS - start)) s)"
  else
    bad "apt-get install: $(tail -20 /tmp/apt.log)"
    finish
  fi
  grep -iE 'warning|error' /tmp/apt.log | grep -v '^W: Download is performed unsandboxed' | sed 's/^/    apt: /' || true

  echo "== what landed where"
  declare -A expect=(
    [volt-broker]="/usr/bin/volt-broker /lib/systemd/system/volt-broker.service
      /lib/systemd/system/volt-broker.socket /usr/lib/sysusers.d/volt-broker.conf
      /etc/volt/broker.json /usr/share/man/man8/volt-broker.8.gz
      /usr/share/doc/volt-broker/PROTOCOL.md.gz /usr/share/doc/volt-broker/copyright
      /usr/share/doc/volt-broker/SECURITY.md.gz
      /usr/share/bash-completion/completions/volt-broker /usr/share/zsh/vendor-completions/_volt-broker"
    [libvoltclient0]="/usr/lib/$TRIPLET/libvoltclient.so.0"
    [libvoltclient-dev]="/usr/include/volt/client.h /usr/include/volt/adapters/libuv.h
      /usr/include/volt/adapters/libevent.h /usr/include/volt/adapters/sd-event.h
      /usr/lib/$TRIPLET/libvoltclient.so /usr/lib/$TRIPLET/libvoltclient.a
      /usr/lib/$TRIPLET/pkgconfig/voltclient.pc
      /usr/lib/$TRIPLET/cmake/VoltClient/VoltClientConfig.cmake
      /usr/share/man/man3/libvoltclient.3.gz
      /usr/share/doc/libvoltclient-dev/examples/volt-example-send.c
      /usr/share/doc/libvoltclient-dev/examples/volt-example-handler.c"
    [volt-inspect]="/usr/bin/volt-inspect /usr/share/man/man1/volt-inspect.1.gz
      /usr/share/bash-completion/completions/volt-inspect /usr/share/zsh/vendor-completions/_volt-inspect"
    [python3-voltclient]="/usr/lib/python3/dist-packages/voltclient/__init__.py
      /usr/lib/python3/dist-packages/voltclient/client.py /usr/lib/python3/dist-packages/voltclient/py.typed"
  )
  for pkg in volt-broker libvoltclient0 libvoltclient-dev volt-inspect python3-voltclient; do
    listed=$(dpkg -L "$pkg")
    missing=""
    for f in ${expect[$pkg]}; do
      grep -qxF "$f" <<<"$listed" && [ -e "$f" ] || missing+=" $f"
    done
    if [ -z "$missing" ]; then ok "$pkg holds $(wc -w <<<"${expect[$pkg]}") expected files"
    else bad "$pkg lacks:$missing"; fi
    echo "$listed" | while read -r f; do [ -d "$f" ] || echo "    $pkg: $f"; done
  done
  soname=$(objdump -p "/usr/lib/$TRIPLET/libvoltclient.so.0" 2>/dev/null | awk '/SONAME/ {print $2}' || true)
  [ -n "$soname" ] || soname=$(readlink "/usr/lib/$TRIPLET/libvoltclient.so")
  check "the shared library's name is libvoltclient.so.0 ($soname)" \
    grep -q '^libvoltclient\.so\.0' <<<"$soname"
  check "/etc/volt/broker.json is a conffile" \
    grep -q '^ /etc/volt/broker.json ' <<<"$(dpkg-query -W -f='${Conffiles}\n' volt-broker)"
  unresolved=$(ldd /usr/bin/volt-broker /usr/bin/volt-inspect "/usr/lib/$TRIPLET/libvoltclient.so.0" |
               grep 'not found' || true)
  check "every library the programs need is installed" test -z "$unresolved"
  # libcurl is not linked: the broker loads it when it enrolls (dlopen).
  check "libcurl.so.4, which the broker loads to enroll, is installed" \
    test -e "/usr/lib/$TRIPLET/libcurl.so.4"
  refs=$(dpkg -L volt-broker libvoltclient0 libvoltclient-dev volt-inspect python3-voltclient |
         while read -r f; do [ -f "$f" ] && echo "$f"; done |
         xargs -r zgrep -l -a -F "$SOURCE_DIR" 2>/dev/null || true)
  check "no installed file names the source tree ($SOURCE_DIR)" test -z "$refs"

  echo "== users, units and the socket after installation"
  check "system user volt-broker" bash -c '[ "$(id -u volt-broker)" -lt 1000 ]'
  check "volt-broker is in group volt" bash -c 'id -nG volt-broker | tr " " "\n" | grep -qx volt'
  for u in volt-broker.socket volt-broker.service; do
    check "$u enabled" test "$(systemctl is-enabled $u)" = enabled
    check "$u started by the postinst" test "$(systemctl is-active $u)" = active
  done
  check "socket root:volt 0660 ($(stat_of /run/volt/broker.sock))" \
    test "$(stat_of /run/volt/broker.sock)" = "root:volt 660 socket"
  check "the broker runs as volt-broker (uid $(main_uid))" test "$(main_uid)" = "$(id -u volt-broker)"
  check "unconfigured, the upstream is idle ($(upstream_state))" test "$(upstream_state)" = idle
  exposure=$(systemd-analyze security --no-pager volt-broker.service 2>&1 |
             sed -n 's/.*Overall exposure level for volt-broker.service: \([0-9.]*\).*/\1/p' || true)
  echo "    systemd-analyze security volt-broker.service (running): $exposure"
  check "exposure $exposure <= 1.2" awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 1.2) }'

  echo "== the broker against the dev server, password from /etc/volt/broker.env"
  install -m 0600 /dev/null /etc/volt/broker.env
  echo "VOLT_DAEMON_PASSWORD=$DAEMON_PASSWORD" >/etc/volt/broker.env
  set_dropin "${upstream_env[@]}"
  systemctl restart volt-broker.service || true
  if wait_until 30 upstream_ready; then ok "upstream ready, password from the environment file"
  else bad "upstream not ready ($(upstream_state))"; journal volt-broker.service; fi
  check "still root:volt 0660 once the broker runs ($(stat_of /run/volt/broker.sock))" \
    test "$(stat_of /run/volt/broker.sock)" = "root:volt 660 socket"

  echo "== password from a root-only /etc/volt/daemon-password (LoadCredential=)"
  rm /etc/volt/broker.env
  install -m 0600 /dev/null /etc/volt/daemon-password
  printf '%s\n' "$DAEMON_PASSWORD" >/etc/volt/daemon-password
  systemctl restart volt-broker.service || true
  if wait_until 30 upstream_ready; then ok "upstream ready, password from the credential"
  else bad "upstream not ready with the password as a credential ($(upstream_state))"; journal volt-broker.service; fi
  check "the broker itself cannot read /etc/volt/daemon-password" \
    bash -c '! runuser -u volt-broker -- cat /etc/volt/daemon-password >/dev/null 2>&1'

  echo "== local services: a user in group volt, a user not in it"
  useradd -m -G volt alice
  useradd -m mallory
  # Clients find the system broker by the client rule (PROTOCOL.md): no
  # VOLT_BROKER_SOCKET. volt-inspect looks where a broker of the user's
  # own would listen, so it is told.
  as() { runuser -u "$1" -- env -C "/home/$1" "${@:2}"; }
  sys_socket=VOLT_BROKER_SOCKET=/run/volt/broker.sock
  cp /usr/share/doc/libvoltclient-dev/examples/volt-example-send.c /home/alice/
  chown alice: /home/alice/volt-example-send.c
  # shellcheck disable=SC2016
  check "example built by alice with pkg-config voltclient" \
    as alice sh -c 'cc -Wall -Werror -o send volt-example-send.c $(pkg-config --cflags --libs voltclient)'
  # shellcheck disable=SC2016
  check "example built by alice against the static library" \
    as alice sh -c 'cc -Wall -Werror -static -o send-static volt-example-send.c $(pkg-config --static --cflags --libs voltclient)'
  check "voltclient.pc names /usr plainly ($(pkg-config --cflags --libs voltclient))" \
    test "$(pkg-config --cflags --libs voltclient | xargs)" = "-lvoltclient"
  mkdir -p /home/alice/cmake-send
  printf '%s\n' 'cmake_minimum_required(VERSION 3.18)' 'project(send C)' \
    'find_package(VoltClient 1.0 REQUIRED)' 'add_executable(send-cmake ../volt-example-send.c)' \
    'target_link_libraries(send-cmake PRIVATE VoltClient::voltclient)' >/home/alice/cmake-send/CMakeLists.txt
  chown -R alice: /home/alice/cmake-send
  check "example built by alice with find_package(VoltClient)" \
    as alice sh -c 'cmake -S cmake-send -B cmake-send/build >/dev/null && cmake --build cmake-send/build >/dev/null &&
                    cp cmake-send/build/send-cmake .'
  for prog in send send-static send-cmake; do
    got=$(as alice "./$prog" echo '{"from":"alice","n":1}' 2>&1) && rc=0 || rc=$?
    check "alice's $prog: echo answered (exit $rc: $got)" \
      test "$rc:$(tr -d ' \n' <<<"$got")" = '0:{"from":"alice","n":1}'
  done
  # A Python service as a newcomer writes it from python3-voltclient's
  # README: the system Python, nothing but the package installed.
  printf '%s\n' 'import asyncio' 'from voltclient import VoltClient' '' 'async def main():' \
    '    async with VoltClient(name="alice-py") as c:' \
    '        print(await c.send_command("echo", {"from": "python"}))' '' 'asyncio.run(main())' \
    >/home/alice/service.py
  got=$(as alice python3 service.py 2>&1) && rc=0 || rc=$?
  check "alice's Python service (python3-voltclient): echo answered (exit $rc: $got)" \
    test "$rc:$got" = "0:{'from': 'python'}"
  got=$(as alice python3 -c 'import importlib.metadata as m; print(m.version("voltclient"))' 2>&1) || true
  check "python3-voltclient's metadata says its version ($got)" test "$got" = "$PKG_VERSION"
  install -m 0755 /home/alice/send /usr/local/bin/volt-pkgtest-send
  got=$(as mallory volt-pkgtest-send echo '{}' 2>&1) && rc=0 || rc=$?
  check "mallory (not in volt) is refused (exit $rc: $got)" \
    bash -c "[ $rc = 3 ] && grep -qi 'permission denied' <<<\"\$1\"" _ "$got"
  got=$(volt-inspect -e '{"op":"credential","name":"daemonPassword"}' 2>&1) && rc=0 || rc=$?
  check "root gets the daemon password over the socket (exit $rc)" \
    bash -c '[ "$1" = 0 ] && grep -qF -- "$2" <<<"$3"' _ "$rc" "$DAEMON_PASSWORD" "$got"
  got=$(runuser -u volt-broker -- env "$sys_socket" volt-inspect -e '{"op":"credential","name":"daemonPassword"}' 2>&1) && rc=0 || rc=$?
  check "so does the broker's own user (exit $rc)" \
    bash -c '[ "$1" = 0 ] && grep -qF -- "$2" <<<"$3"' _ "$rc" "$DAEMON_PASSWORD" "$got"
  got=$(as alice env "$sys_socket" volt-inspect -e '{"op":"credential","name":"daemonPassword"}' 2>&1) && rc=0 || rc=$?
  check "alice does not (exit $rc: $got)" \
    bash -c '[ "$1" != 0 ] && grep -q PermissionDenied <<<"$3" && ! grep -qF -- "$2" <<<"$3"' \
    _ "$rc" "$DAEMON_PASSWORD" "$got"

  echo "== reload"
  pid=$(prop volt-broker.service MainPID)
  check "systemctl reload" systemctl reload volt-broker.service
  check "same process ($pid) after reload" \
    bash -c '[ "$1" != 0 ] && [ "$(systemctl show -P MainPID volt-broker.service)" = "$1" ]' _ "$pid"
  check "upstream ready after reload" wait_until 10 upstream_ready

  echo "== started by hand as volt-broker, without socket activation"
  systemctl stop volt-broker.socket volt-broker.service
  # setpriv execs (runuser would stay in between): $! is the broker. The
  # password comes through the environment, never the command line.
  VOLT_DAEMON_PASSWORD=$DAEMON_PASSWORD \
    setpriv --reuid=volt-broker --regid=volt-broker --init-groups -- \
    env "${upstream_env[@]}" VOLT_LISTEN=/tmp/volt-manual/broker.sock \
    volt-broker --config /etc/volt/broker.json >/tmp/manual.log 2>&1 &
  manual=$!
  if wait_until 30 test -S /tmp/volt-manual/broker.sock; then
    check "its own socket is volt-broker:volt 0660 ($(stat_of /tmp/volt-manual/broker.sock))" \
      test "$(stat_of /tmp/volt-manual/broker.sock)" = "volt-broker:volt 660 socket"
    got=$(runuser -u alice -- env VOLT_BROKER_SOCKET=/tmp/volt-manual/broker.sock \
            /home/alice/send echo '"by hand"' 2>&1) && rc=0 || rc=$?
    check "alice's request through it (exit $rc: $got)" test "$rc:$got" = '0:"by hand"'
  else
    bad "no socket from the broker started by hand: $(cat /tmp/manual.log)"
  fi
  kill -TERM $manual 2>/dev/null || true
  wait $manual && rc=0 || rc=$?
  check "it stops on SIGTERM with status 0 (got $rc)" test "$rc" = 0

  echo "== a configuration error: exit 78, not restarted"
  set_dropin "VOLT_CONTROL_SOCKET_URL=ftp://127.0.0.1/control" "VOLT_TEAM_CLUSTER_ID=cluster-dev"
  systemctl start volt-broker.socket
  systemctl restart volt-broker.service >/dev/null 2>&1 || true
  wait_until 30 is_failed || true
  check "failed with status 78 (ActiveState $(prop volt-broker.service ActiveState), status $(prop volt-broker.service ExecMainStatus))" \
    test "$(prop volt-broker.service ExecMainStatus)" = 78
  # Not being restarted can only be seen over time: twice RestartSec=2s.
  restarted=$(wait_until 5 was_restarted && echo yes || echo no)
  check "not restarted (NRestarts $(prop volt-broker.service NRestarts))" test "$restarted" = no
  journal volt-broker.service 5

  echo "== purge"
  rm -f "$dropin"
  check "apt-get purge" apt-get purge -y -q volt-broker volt-inspect libvoltclient-dev libvoltclient0 python3-voltclient
  check "no broker process left" bash -c '! grep -lx volt-broker /proc/[0-9]*/comm'
  for f in /etc/volt/broker.json /lib/systemd/system/volt-broker.service /run/volt/broker.sock /usr/bin/volt-broker; do
    check "gone: $f" test ! -e "$f"
  done
  finish
fi

# ---------------------------------------------------------------------------
# On the machine: build, lintian, the root, the dev server, the boot.
# ---------------------------------------------------------------------------
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "test-package: run as root (it mounts and boots a root)" >&2; exit 2; }
for cmd in dpkg-buildpackage lintian mmdebstrap systemd-nspawn node; do
  command -v $cmd >/dev/null || { echo "test-package: $cmd missing: run contrib/ci/setup.sh" >&2; exit 2; }
done

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
t0=$SECONDS
lap() { echo "    ($(($SECONDS - t0)) s so far)"; }

scratch=$(mktemp -d /tmp/volt-pkgtest.XXXXXX)
merged=$scratch/root
devserver=""
cleanup() {
  [ -z "$devserver" ] || kill "$devserver" 2>/dev/null || true
  mountpoint -q "$merged" && umount "$merged"
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "==== versions"
pkg_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
cmake_version=$(sed -n 's/^project(volt-broker VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
if [ "$pkg_version" = "$cmake_version" ]; then ok "debian/changelog and CMakeLists.txt agree: $pkg_version"
else bad "debian/changelog says $pkg_version, CMakeLists.txt $cmake_version"; fi
py_version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' client-lib/python/voltclient/__init__.py)
if [ "$pkg_version" = "$py_version" ]; then ok "debian/changelog and voltclient.__version__ agree: $py_version"
else bad "debian/changelog says $pkg_version, voltclient.__version__ $py_version"; fi

echo "==== dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=nocheck: the suite runs elsewhere)"
# From a copy of the tracked and new files, so no build tree or
# node_modules gets in, and the .debs land in the scratch folder.
# VOLT_PKGTEST_KEEP=DIR keeps the built packages there, and
# VOLT_PKGTEST_DEBS=DIR takes them from there instead of building (to
# iterate on the checks; lintian then runs on those). The build sees only
# the system's programs, as on a Debian buildd: a python3 of pyenv's or a
# node of nvm's earlier in PATH is not what the packages will run with.
src=$scratch/src/volt-broker-$pkg_version
mkdir -p "$src"
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$src"
if [ -n "${VOLT_PKGTEST_DEBS:-}" ]; then
  cp "$VOLT_PKGTEST_DEBS"/*.deb "$VOLT_PKGTEST_DEBS"/*.changes "$VOLT_PKGTEST_DEBS"/*.buildinfo "$scratch/src/"
  src=$(sed -n 's/^SOURCE_DIR=.\(.*\).$/\1/p' "$VOLT_PKGTEST_DEBS/source-dir" 2>/dev/null || echo "$src")
  : >"$scratch/build.log"
  echo "    (not built: taken from $VOLT_PKGTEST_DEBS)"
fi
if [ -n "${VOLT_PKGTEST_DEBS:-}" ] ||
   (cd "$src" && PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
     >"$scratch/build.log" 2>&1; then
  ok "packages built: $(cd "$scratch/src" && ls -- *.deb | grep -v dbgsym | xargs)"
else
  tail -40 "$scratch/build.log"
  bad "dpkg-buildpackage failed"
  echo "$passed passed, $failed failed"
  exit 1
fi
grep -E 'dpkg-gensymbols|dpkg-shlibdeps: warning|dh_missing' "$scratch/build.log" | sed 's/^/    /' || true
if [ -n "${VOLT_PKGTEST_KEEP:-}" ]; then
  mkdir -p "$VOLT_PKGTEST_KEEP"
  cp "$scratch"/src/*.deb "$scratch"/src/*.changes "$scratch"/src/*.buildinfo "$VOLT_PKGTEST_KEEP/"
  echo "SOURCE_DIR='$src'" >"$VOLT_PKGTEST_KEEP/source-dir"
fi
lap

echo "==== lintian"
changes=$(ls "$scratch"/src/*.changes)
lintian --fail-on error --display-info "$changes" >"$scratch/lintian.log" 2>&1 && rc=0 || rc=$?
grep -v 'running with root privileges' "$scratch/lintian.log" | sed 's/^/    /' || true
if [ $rc = 0 ]; then ok "lintian: no errors ($(grep -c '^W:' "$scratch/lintian.log" || true) warnings)"
else bad "lintian: errors (exit $rc)"; fi
lap

echo "==== the clean root (Debian 12 minbase + systemd + a C compiler)"
# The tools the test itself uses, and nothing the packages depend on but
# systemd: apt must bring the rest, which is what is being checked.
include=systemd,gcc,libc6-dev,pkgconf,binutils,cmake,make
cache=${VOLT_PKGTEST_CACHE:-/var/cache/volt-broker-ci}
base=$cache/root-bookworm-$(echo "v1 $include" | sha256sum | cut -c1-12)
mkdir -p "$cache"
(
  flock 9
  if [ ! -f "$base/.complete" ]; then
    rm -rf "$base" "$base.tmp"
    start=$SECONDS
    mmdebstrap --quiet --variant=minbase --include="$include" bookworm "$base.tmp" >"$scratch/mmdebstrap.log" 2>&1 ||
      { tail -20 "$scratch/mmdebstrap.log"; exit 1; }
    touch "$base.tmp/.complete"
    mv "$base.tmp" "$base"
    echo "    made $base in $((SECONDS - start)) s"
    # Roots made for another package list, unless a run has one mounted.
    for old in "$cache"/root-bookworm-*; do
      [ "$old" = "$base" ] || grep -qF "lowerdir=$old," /proc/mounts || rm -rf "$old"
    done
  else
    echo "    cached: $base"
  fi
) 9>"$cache/.lock" || { bad "mmdebstrap failed"; echo "$passed passed, $failed failed"; exit 1; }
mkdir -p "$scratch/upper" "$scratch/work" "$merged" "$scratch/out"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$scratch/upper,workdir=$scratch/work" "$merged"
mkdir -p "$merged/pkgtest/debs"
cp "$scratch"/src/*.deb "$merged/pkgtest/debs/"
rm -f "$merged"/pkgtest/debs/*-dbgsym_*.deb
cp "$0" "$merged/pkgtest/test-package.sh"
cat >"$merged/etc/systemd/system/volt-pkgtest.service" <<'EOF'
[Unit]
Description=volt-broker package test
After=basic.target
[Service]
Type=oneshot
ExecStart=/bin/bash /pkgtest/test-package.sh --in-root
TimeoutStartSec=900
EOF
lap

echo "==== the dev server"
password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
mkfifo "$scratch/devserver.out"
# The password reaches the dev server on its command line: a test server
# on this machine's loopback, gone when the test ends.
node contrib/volt-dev-server/server.js --port 0 --quiet --password "$password" \
  >"$scratch/devserver.out" 2>"$scratch/devserver.err" &
devserver=$!
port=""
exec 8<"$scratch/devserver.out"
if read -r -t 30 line <&8; then
  port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' <<<"$line")
fi
[ -n "$port" ] || { bad "dev server did not start: $(cat "$scratch/devserver.err")"; echo "$passed passed, $failed failed"; exit 1; }
ok "dev server on 127.0.0.1:$port"
cat >"$merged/pkgtest/env" <<EOF
DEVSERVER_PORT=$port
DAEMON_PASSWORD='$password'
SOURCE_DIR='$src'
TRIPLET=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
PKG_VERSION=$pkg_version
EOF
chmod 600 "$merged/pkgtest/env"

echo "==== boot the root and run the checks in it"
: >"$scratch/out/test.log"
start=$SECONDS
timeout -k 20 900 systemd-nspawn --quiet --keep-unit --register=no --boot --console=pipe \
  --machine="volt-pkgtest-$$" -D "$merged" --bind="$scratch/out:/out" \
  -- systemd.unit=volt-pkgtest.service >"$scratch/nspawn.log" 2>&1 && rc=0 || rc=$?
sed 's/^/    /' "$scratch/out/test.log"
if [ -f "$scratch/out/counts" ]; then
  read -r in_passed in_failed <"$scratch/out/counts"
  passed=$((passed + in_passed)) failed=$((failed + in_failed))
  echo "    booted, installed and checked in $((SECONDS - start)) s"
else
  grep -v 'Attempted to remove disk file system' "$scratch/nspawn.log" | tail -20 | sed 's/^/    nspawn: /'
  bad "the checks in the root did not finish (systemd-nspawn exit $rc)"
fi
lap

echo "test-package: $((SECONDS - t0)) s in all"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
