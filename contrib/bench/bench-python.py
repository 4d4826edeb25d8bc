#!/usr/bin/python3
"""bench-python: what a Python service on voltclient costs, per request.

The Python side of the benchmark (README.md beside this file describes the
C side, bench-broker, and run.sh). It starts the dev VOLT server (a real
socket.io 4.8 server) and, for each run, a fresh volt-broker; then `-c`
Python worker processes (services), each with its own voltclient connection.
A worker connects, waits until the upstream is ready, sends 500 warm-up
requests, reports ready; when all are, they are released together and each
sends its share of the N `echo` commands keeping K in flight (K coroutines,
each sending its next request when the previous one is answered). Every
answer is checked: the payload {"i": n, "s": "0123..."} must come back
intact, exactly once.

Figures, over the timed phase only (from the release to the last answer):
req/s; CPU per request of the Python workers (getrusage, user+sys), of
the broker and of the dev server (/proc/PID/stat, 10 ms ticks); peak RSS
of each Python worker. With --c-bench PATH (build-bench/contrib/bench/
bench-broker, which run.sh builds) the C client runs the same work in the
same session, for comparison.

    /usr/bin/python3 contrib/bench/bench-python.py                 # N=20000 K=100, 1 and 4 services, 3 runs
    /usr/bin/python3 contrib/bench/bench-python.py -n 50000 -k 10 -c 1 -r 5 --c-bench build-bench/contrib/bench/bench-broker

Loopback only; every process it starts is killed when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

TOP = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TOP / "client-lib" / "python"))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- worker


async def worker_main(sock: str, n: int, k: int, payload_bytes: int, warmup: int) -> None:
    from voltclient import VoltClient, VoltError

    pad = ("0123456789abcdef" * (payload_bytes // 16 + 1))[:payload_bytes]
    async with VoltClient(sock, "bench-python", connect_timeout=30) as c:

        async def run(count: int, base: int) -> Tuple[int, int]:
            nxt = 0
            ok = bad = 0

            async def lane() -> None:
                nonlocal nxt, ok, bad
                while nxt < count:
                    i = base + nxt
                    nxt += 1
                    try:
                        got = await c.send_command("echo", {"i": i, "s": pad}, timeout=60)
                    except VoltError as e:
                        bad += 1
                        if bad <= 3:
                            say(f"worker {os.getpid()}: request {i}: {e}")
                        continue
                    if got == {"i": i, "s": pad}:
                        ok += 1
                    else:
                        bad += 1
                        if bad <= 3:
                            say(f"worker {os.getpid()}: request {i}: wrong answer {got!r:.200}")

            await asyncio.gather(*(lane() for _ in range(min(k, count))))
            return ok, bad

        ok, bad = await run(warmup, 10**9)
        if bad:
            raise SystemExit(f"warm-up failed: {bad} bad answers")
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # GO
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        ok, bad = await run(n, 0)
        t1 = time.monotonic()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        completed = c.stats.get("unknown_results", 0)
    print(
        "RESULT "
        + json.dumps(
            {
                "ok": ok,
                "bad": bad,
                "seconds": t1 - t0,
                "cpu_s": cpu,
                "maxrss_kb": r1.ru_maxrss,
                "late_results": completed,
            }
        ),
        flush=True,
    )


# ---------------------------------------------------------------- coordinator


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def proc_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def wait_for(cond: Any, timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Run:
    """Processes started by the benchmark, all killed at the end."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="volt-bench-py.")
        self.procs: List[subprocess.Popen[Any]] = []

    def start(self, argv: List[str], **kw: Any) -> "subprocess.Popen[Any]":
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: "subprocess.Popen[Any]") -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def cleanup(self) -> None:
        for p in list(self.procs):
            self.stop(p)
        subprocess.run(["rm", "-rf", self.dir], check=False)


def ensure_broker(path: Optional[str]) -> str:
    if path:
        return path
    env = os.environ.get("VOLT_BROKER_BIN")
    if env:
        return env
    build = TOP / "build-bench"
    binary = build / "broker" / "volt-broker"
    if not binary.exists():
        say(f"building volt-broker (Release) into {build}")
        subprocess.run(
            ["cmake", "-S", str(TOP), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_TESTING=OFF"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            ["cmake", "--build", str(build), f"-j{os.cpu_count() or 1}", "--target", "volt-broker"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return str(binary)


def start_server(run: Run) -> Tuple["subprocess.Popen[Any]", int]:
    server_dir = TOP / "contrib" / "volt-dev-server"
    if not (server_dir / "node_modules").exists():
        say("npm ci in the dev server")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=server_dir, check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(run.dir, "server.out")
    with open(out, "w") as f:
        p = run.start(["node", str(server_dir / "server.js"), "--port", "0", "--quiet"], stdout=f, stderr=subprocess.STDOUT)

    def port() -> Optional[int]:
        if p.poll() is not None:
            raise SystemExit("the dev server exited: " + open(out).read())
        for line in open(out):
            if '"event":"listening"' in line:
                return int(json.loads(line)["port"])
        return None

    return p, wait_for(port, 15, "the dev server")


def start_broker(run: Run, binary: str, port: int, tag: str) -> Tuple["subprocess.Popen[Any]", str]:
    d = os.path.join(run.dir, f"broker-{tag}")
    os.makedirs(d)
    sock = os.path.join(d, "broker.sock")
    cfg = {
        "controlSocketUrl": f"ws://127.0.0.1:{port}/control",
        "credentials": {"teamClusterId": "cluster-dev", "daemonPassword": "dev-password"},
        "broker": {"listen": sock, "stateDir": os.path.join(d, "state"), "logLevel": "warn"},
    }
    with open(os.path.join(d, "broker.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "broker.log"), "w") as log:
        p = run.start([binary, "--config", os.path.join(d, "broker.json")], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: os.path.exists(sock), 15, "the broker's socket")
    return p, sock


def run_python(
    run: Run, sock: str, services: int, n: int, k: int, payload_bytes: int, samples: Dict[str, int]
) -> Dict[str, Any]:
    share = [n // services + (1 if i < n % services else 0) for i in range(services)]
    workers = [
        run.start(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                sock,
                str(share[i]),
                str(k),
                str(payload_bytes),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(services)
    ]
    for w in workers:
        assert w.stdout is not None
        line = w.stdout.readline()
        if line.strip() != "READY":
            raise SystemExit(f"a worker failed to start: {line!r}")
    cpu0 = {k_: proc_cpu_s(pid) for k_, pid in samples.items()}
    t0 = time.monotonic()
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("GO\n")
        w.stdin.flush()
    results = []
    for w in workers:
        assert w.stdout is not None
        line = w.stdout.readline()
        if not line.startswith("RESULT "):
            raise SystemExit(f"a worker failed: {line!r}")
        results.append(json.loads(line[7:]))
    t1 = time.monotonic()
    cpu1 = {k_: proc_cpu_s(pid) for k_, pid in samples.items()}
    for w in workers:
        w.wait(10)
        run.procs.remove(w)
    ok = sum(r["ok"] for r in results)
    bad = sum(r["bad"] for r in results)
    if bad or ok != n:
        raise SystemExit(f"checks failed: {ok} good answers of {n}, {bad} bad")
    wall = t1 - t0
    out = {
        "tool": "python",
        "services": services,
        "req_s": n / wall,
        "client_cpu_us": sum(r["cpu_s"] for r in results) / n * 1e6,
        "client_rss_mib": sum(r["maxrss_kb"] for r in results) / 1024,
        "client_rss_each_mib": max(r["maxrss_kb"] for r in results) / 1024,
    }
    for label in samples:
        out[f"{label}_cpu_us"] = (cpu1[label] - cpu0[label]) / n * 1e6
    return out


def run_c(
    run: Run, c_bench: str, sock: str, services: int, n: int, k: int, payload_bytes: int, samples: Dict[str, int]
) -> Dict[str, Any]:
    argv = [c_bench, "-s", sock, "-n", str(n), "-k", str(k), "-c", str(services),
            "--payload-bytes", str(payload_bytes), "--deadline-ms", "60000"]
    for label, pid in samples.items():
        argv += ["--sample", f"{label}={pid}"]
    p = run.start(argv, stdout=subprocess.PIPE, text=True)
    text, _ = p.communicate(timeout=300)
    run.procs.remove(p)
    line = [ln for ln in str(text).splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not line:
        raise SystemExit(f"bench-broker failed ({p.returncode}): {text}")
    kv = dict(item.split("=", 1) for item in line[-1].split()[1:])
    out: Dict[str, Any] = {
        "tool": "c",
        "services": services,
        "req_s": float(kv["rps"]),
        "client_cpu_us": float(kv["clients_cpu_us"]) / n,
        "client_rss_each_mib": float(kv["clients_maxrss_kb"]) / services / 1024,
        "broker_rss_mib": float(kv.get("broker_hwm_kb", 0)) / 1024,
    }
    for label in samples:
        out[f"{label}_cpu_us"] = float(kv[f"{label}_cpu_us"]) / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20000, help="timed requests per run (split over the services)")
    ap.add_argument("-k", type=int, default=100, help="requests in flight per service")
    ap.add_argument("-c", default="1 4", help='numbers of services, e.g. "1 4"')
    ap.add_argument("-r", type=int, default=3, help="runs of each")
    ap.add_argument("-b", "--payload-bytes", type=int, default=16)
    ap.add_argument("--broker", help="volt-broker binary (default: $VOLT_BROKER_BIN or build-bench/)")
    ap.add_argument("--c-bench", help="bench-broker binary: run the C client on the same work too")
    ap.add_argument("--worker", nargs=4, metavar=("SOCK", "N", "K", "BYTES"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        sock, n, k, b = a.worker
        asyncio.run(worker_main(sock, int(n), int(k), int(b), warmup=500))
        return

    configs = [int(x) for x in a.c.split()]
    binary = ensure_broker(a.broker)
    run = Run()
    rows: List[Dict[str, Any]] = []
    load_before = open("/proc/loadavg").read().split()[:3]
    try:
        server, port = start_server(run)
        # Warm the dev server up (JIT, full event log) before measuring.
        broker, sock = start_broker(run, binary, port, "warmup")
        run_python(run, sock, 1, 6000, a.k, a.payload_bytes, {})
        run.stop(broker)
        for r in range(a.r):
            for services in configs:
                say(f"run {r + 1}/{a.r}, {services} service(s)")
                broker, sock = start_broker(run, binary, port, f"{r}-{services}")
                samples = {"broker": broker.pid, "server": server.pid}
                row = run_python(run, sock, services, a.n, a.k, a.payload_bytes, samples)
                row["broker_rss_mib"] = proc_hwm_kb(broker.pid) / 1024
                rows.append(row)
                if a.c_bench:
                    rows.append(run_c(run, a.c_bench, sock, services, a.n, a.k, a.payload_bytes, samples))
                run.stop(broker)
    finally:
        run.cleanup()
    load_after = open("/proc/loadavg").read().split()[:3]

    import msgpack

    print(f"voltclient (Python {platform.python_version()}, msgpack {'.'.join(map(str, msgpack.version))},"
          f" asyncio) over volt-broker to the socket.io dev server")
    print(f"{a.n} echo requests per run, split over the services; {a.k} in flight per service;"
          f" payload {{\"i\":n,\"s\":<{a.payload_bytes} chars>}}; medians over {a.r} runs.")
    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()};"
          f" load average before: {' '.join(load_before)}, after: {' '.join(load_after)}.")
    def medians(tool: str, services: int) -> Optional[Dict[str, float]]:
        got = [x for x in rows if x["tool"] == tool and x["services"] == services]
        if not got:
            return None
        return {key: statistics.median(x[key] for x in got) for key in got[0] if key not in ("tool", "services")}

    for services in configs:
        print(f"\n== {services} service(s)")
        print(f"  {'':34} {'req/s':>8} {'client CPU':>12} {'broker CPU':>12} {'server CPU':>12}"
              f" {'RSS/service':>12} {'broker RSS':>11}")
        for tool, label in (("python", "voltclient (Python, asyncio)"), ("c", "bench-broker (C, libvoltclient)")):
            m = medians(tool, services)
            if m is None:
                continue
            print(f"  {label:34} {m['req_s']:8.0f} {m['client_cpu_us']:7.1f} us/req {m['broker_cpu_us']:5.1f} us/req"
                  f" {m['server_cpu_us']:5.1f} us/req {m['client_rss_each_mib']:8.1f} MiB {m['broker_rss_mib']:7.1f} MiB")
        py, c = medians("python", services), medians("c", services)
        if py and c:
            print(f"  {'ratio Python/C':34} {py['req_s'] / c['req_s']:7.2f}x {py['client_cpu_us'] / c['client_cpu_us']:10.2f}x"
                  f" {py['broker_cpu_us'] / c['broker_cpu_us']:11.2f}x")
    print("\nPer run (client, services, req/s, client CPU us/req, broker CPU us/req, server CPU us/req, RSS MiB/service):")
    for x in rows:
        print(f"  {x['tool']:7} {x['services']:3d} {x['req_s']:8.0f} {x['client_cpu_us']:8.1f} {x['broker_cpu_us']:8.1f}"
              f" {x['server_cpu_us']:8.1f} {x['client_rss_each_mib']:7.1f}")


if __name__ == "__main__":
    main()
