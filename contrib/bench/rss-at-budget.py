#!/usr/bin/python3
"""The broker's RSS with its memory budget used up, with the default limits.

A measurement, not a test (test-isolation checks the rules with small
limits): it starts the dev server and a volt-broker with the default
configuration (memoryBudget 256 MiB, maxBytesPerUid 128 MiB, maxFrame
16 MiB, maxQueueBytes 64 MiB), then, as several users (it needs root to
switch users), attacks it the two ways that make it hold memory:

  - clients that send 15 MiB of a 16 MiB frame and stall;
  - subscribers that never read while the server sends 1 MiB messages;

and samples the broker's RSS (VmRSS) every 10 ms: before, at the peak,
and after the attackers have left. A well-behaved client's echo request
is timed at each step. Prints one line per figure.

    contrib/bench/rss-at-budget.py --broker build/broker/volt-broker
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import msgpack

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1024 * 1024


def frame(obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def read_frame(sock, timeout=10.0):
    sock.settimeout(timeout)
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return msgpack.unpackb(body, raw=False)


def hello(path, name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(frame({"op": "hello", "min_version": 1, "max_version": 2, "name": name}))
    while read_frame(s).get("op") != "welcome":
        pass
    return s


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def http(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def as_user(uid, fn, *args):
    """Runs fn(*args) in a child process as uid; returns (pid, write end of
    a pipe that makes it leave, read end where it says it is in place)."""
    leave_r, leave_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(leave_w)
        os.close(ready_r)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            held = fn(*args)
            os.write(ready_w, b"ok\n")
            os.read(leave_r, 1)
            del held
        finally:
            os._exit(0)
    os.close(leave_r)
    os.close(ready_w)
    return pid, leave_w, ready_r


def stall(path, conns):
    socks = []
    junk = b"\x90" * (15 * MiB)
    for _ in range(conns):
        try:
            s = hello(path, "stall")
            s.sendall(struct.pack(">I", 16 * MiB) + b"\x81\xa2op\xdb\x00\xf0\x00\x00")
            s.settimeout(10)
            s.sendall(junk)
            socks.append(s)
        except OSError:
            pass  # cut: the budget bit
    return socks


def deaf(path, conns):
    socks = []
    for _ in range(conns):
        s = hello(path, "deaf")
        s.sendall(frame({"op": "subscribe", "id": 1, "match": "all"}))
        socks.append(s)
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--stall-users", type=int, default=4)
    ap.add_argument("--stall-clients", type=int, default=12, help="per user")
    ap.add_argument("--deaf-users", type=int, default=2)
    ap.add_argument("--deaf-clients", type=int, default=6, help="per user")
    ap.add_argument("--messages", type=int, default=100, help="of 1 MiB")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("rss-at-budget: needs root (the attackers run as other users)")

    tmp = tempfile.mkdtemp(prefix="volt-rss-")
    os.chmod(tmp, 0o711)
    server = subprocess.Popen(["node", f"{TOP}/contrib/volt-dev-server/server.js", "--port", "0",
                               "--quiet", "--max-payload", str(2 * MiB)],
                              stdout=subprocess.PIPE, text=True)
    port = json.loads(server.stdout.readline())["port"]
    sock = f"{tmp}/broker.sock"
    cfg = {"controlSocketUrl": f"ws://127.0.0.1:{port}/control",
           "credentials": {"teamClusterId": "cluster-dev", "daemonPassword": "dev-password"},
           "broker": {"listen": sock, "mode": "0666", "stateDir": f"{tmp}/state",
                      "logLevel": "warn"}}
    with open(os.open(f"{tmp}/broker.json", os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        json.dump(cfg, f)
    broker = subprocess.Popen([a.broker, "--config", f"{tmp}/broker.json"])
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kib(broker.pid))
            time.sleep(0.01)

    try:
        good = None
        for _ in range(500):
            try:
                good = hello(sock, "good")
                break
            except OSError:
                time.sleep(0.02)
        while True:
            good.sendall(frame({"op": "status", "id": 1}))
            r = read_frame(good)
            while r.get("op") != "result":
                r = read_frame(good)
            if r["data"]["upstream"]["state"] == "ready":
                break
            time.sleep(0.05)
        ids = [100]

        def echo_ms():
            ids[0] += 1
            t0 = time.monotonic()
            good.sendall(frame({"op": "request", "id": ids[0], "command": "echo", "payload": 1}))
            while True:
                r = read_frame(good, 30)
                if r.get("op") == "result" and r.get("id") == ids[0]:
                    assert r.get("ok"), r
                    return (time.monotonic() - t0) * 1000

        base = rss_kib(broker.pid)
        print(f"baseline RSS: {base} KiB; echo {echo_ms():.1f} ms")
        threading.Thread(target=sample, daemon=True).start()
        attackers = []
        for u in range(a.stall_users):
            attackers.append(as_user(61000 + u, stall, sock, a.stall_clients))
        for u in range(a.deaf_users):
            attackers.append(as_user(62000 + u, deaf, sock, a.deaf_clients))
        for _, _, ready in attackers:
            os.read(ready, 3)
        print(f"stalled frames: {a.stall_users} users x {a.stall_clients} clients x 15 MiB; "
              f"RSS {rss_kib(broker.pid)} KiB; echo {echo_ms():.1f} ms")
        msg = {"type": "big", "data": "x" * MiB}
        for _ in range(a.messages):
            http(port, "/_dev/message", msg)
        print(f"+ {a.messages} x 1 MiB messages to {a.deaf_users * a.deaf_clients} subscribers "
              f"that never read; RSS {rss_kib(broker.pid)} KiB; echo {echo_ms():.1f} ms")
        good.sendall(frame({"op": "status", "id": 2}))
        r = read_frame(good)
        while r.get("op") != "result" or r.get("id") != 2:
            r = read_frame(good)
        c = r["data"]["counters"]
        print(f"memory cuts {c['memory_cuts']}, slow consumers {c['slow_consumers']}, "
              f"held now {r['data']['quotas']['memory_bytes']} of "
              f"{r['data']['quotas']['memory_budget']} bytes")
        for pid, leave, _ in attackers:
            os.write(leave, b"x")
            os.waitpid(pid, 0)
        time.sleep(1)  # a measurement: let the last frees land
        stop.set()
        print(f"peak RSS: {peak[0]} KiB ({(peak[0] - base) / 1024:.0f} MiB over the baseline; "
              f"budget 256 MiB); after the attackers left: {rss_kib(broker.pid)} KiB; "
              f"echo {echo_ms():.1f} ms")
    finally:
        stop.set()
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
