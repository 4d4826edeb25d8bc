"""Real processes for the integration tests (the Python side of tests/harness.c).

- ``DevServer``: contrib/volt-dev-server (a real socket.io 4.8 server on
  Node) on an ephemeral port, driven through its HTTP control API;
- ``Broker``: volt-broker (``$VOLT_BROKER_BIN``) in a child process with a
  generated config in a private temp dir; under valgrind when
  ``VOLT_TEST_VALGRIND=1``, with the options of the C harness, so that its
  exit status also reports leaks and memory errors;
- ``RawConn``: a blocking local-protocol connection for frames made by hand.

Every wait has a deadline (``slack()`` stretches it under valgrind); no
fixed sleep stands in for an event.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from voltclient import wire

SOURCE_DIR = Path(os.environ.get("VOLT_SOURCE_DIR") or Path(__file__).resolve().parents[3])
VALGRIND = os.environ.get("VOLT_TEST_VALGRIND") == "1"



def read_text(path: str) -> str:
    """A log file's text so far ("" before it exists)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""

def slack(seconds: float) -> float:
    """A time limit for something the broker does: as is natively, much
    more when valgrind slows the broker down (the C harness's rule)."""
    return seconds * 4 + 10 if VALGRIND else seconds


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Polls cond() until it returns something true; raises at the deadline."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def broker_bin() -> str:
    path = os.environ.get("VOLT_BROKER_BIN", "")
    if not path:
        raise RuntimeError(
            "VOLT_BROKER_BIN is not set: point it at a built volt-broker"
            " (ctest sets it; by hand: VOLT_BROKER_BIN=build/broker/volt-broker)"
        )
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"VOLT_BROKER_BIN={path} is not an executable")
    return path


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    # The control API is on 127.0.0.1: never through a proxy from the environment.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DevServer:
    def __init__(self, extra_args: Tuple[str, ...] = ()) -> None:
        self.extra_args = extra_args
        self.proc: Optional["subprocess.Popen[bytes]"] = None
        self.port = 0
        self.dir = tempfile.mkdtemp(prefix="volt-pytest-server-")
        self.log = os.path.join(self.dir, "server.log")
        self._opener = _no_proxy_opener()

    def start(self, port: int = 0) -> None:
        script = SOURCE_DIR / "contrib" / "volt-dev-server" / "server.js"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                ["node", str(script), "--port", str(port), "--quiet", *self.extra_args],
                stdout=logf,
                stderr=logf,
                stdin=subprocess.DEVNULL,
            )

        def listening() -> Optional[int]:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the dev server exited: {self.log_text()}")
            for line in self.log_text().splitlines():
                if '"event":"listening"' in line:
                    return int(json.loads(line)["port"])
            return None

        self.port = wait_for(listening, 15, "the dev server's listening line")

    def log_text(self) -> str:
        return read_text(self.log)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill_and_restart(self) -> None:
        """SIGKILL (no goodbye to anyone) and a fresh server on the same port."""
        port = self.port
        self.stop(signal.SIGKILL)
        self.start(port)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- control API

    def http(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def post(self, path: str, body: Any = None, timeout: float = 30) -> Any:
        status, data = self.http("POST", path, body if body is not None else {}, timeout)
        assert status == 200, f"POST {path}: status {status}, body {data!r}"
        return data

    def get(self, path: str) -> Any:
        status, data = self.http("GET", path)
        assert status == 200, f"GET {path}: status {status}, body {data!r}"
        return data

    def reset(self) -> None:
        self.post("/_dev/reset")

    def behavior(self, **kw: Any) -> Any:
        return self.post("/_dev/behavior", kw)

    def counter(self, name: str) -> int:
        return int(self.get("/_dev/state")["counters"].get(name, 0))

    def last_seq(self) -> int:
        return int(self.get("/_dev/events?since=0&kind=none")["lastSeq"])

    def events(self, kind: str, since: int = 0) -> List[Dict[str, Any]]:
        return list(self.get(f"/_dev/events?since={since}&kind={kind}")["events"])

    def wait_events(
        self, kind: str, since: int, pred: Callable[[Dict[str, Any]], bool], timeout: float
    ) -> Dict[str, Any]:
        """The first event of `kind` after `since` for which pred is true."""
        end = time.monotonic() + timeout
        cursor = since
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event matching within {timeout:g} s")
            wait_ms = max(1, int(min(left, 5) * 1000))
            got = self.get(f"/_dev/events?since={cursor}&kind={kind}&wait={wait_ms}")
            for ev in got["events"]:
                cursor = max(cursor, int(ev["seq"]))
                if pred(ev):
                    return dict(ev)

    def server_request(self, command: str, payload: Any = None, timeout_ms: int = 10000) -> Any:
        body: Dict[str, Any] = {"command": command, "timeoutMs": timeout_ms}
        if payload is not None:
            body["payload"] = payload
        status, data = self.http("POST", "/_dev/server-request", body, timeout=timeout_ms / 1000 + 10)
        assert status == 200, f"server-request {command}: status {status}, body {data!r}"
        return data["response"]

    def registered_handlers(self) -> List[str]:
        out: List[str] = []
        for d in self.get("/_dev/state")["connected"]:
            if d.get("registered"):
                out.extend(d.get("handlers") or [])
        return out


BROKER_CONFIG: Dict[str, Any] = {
    "controlSocketUrl": "ws://127.0.0.1:%PORT%/control",
    "credentials": {"teamClusterId": "cluster-dev", "daemonPassword": "dev-password"},
    "socket": {"reconnectionDelay": 100, "reconnectionDelayMax": 300},
    "broker": {"listen": "%SOCK%", "stateDir": "%STATE%", "logLevel": "debug", "mode": "0666"},
}


def merge(base: Dict[str, Any], extra: Dict[str, Any]) -> Dict[str, Any]:
    """base with extra's keys; a None in extra removes the key."""
    out = dict(base)
    for k, v in extra.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


class Broker:
    """volt-broker with a config of its own in a temp dir."""

    def __init__(self, server: Optional[DevServer], config: Optional[Dict[str, Any]] = None) -> None:
        self.server = server
        self.config = merge(BROKER_CONFIG, config or {})
        self.dir = tempfile.mkdtemp(prefix="volt-pytest-broker-")
        os.chmod(self.dir, 0o755)  # a test may connect as another user
        self.sock = os.path.join(self.dir, "broker.sock")
        self.state_dir = os.path.join(self.dir, "state")
        self.config_path = os.path.join(self.dir, "broker.json")
        self.log = os.path.join(self.dir, "broker.log")
        self.proc: Optional["subprocess.Popen[bytes]"] = None
        self.valgrind = VALGRIND

    def _write_config(self) -> None:
        text = json.dumps(self.config)
        port = str(self.server.port if self.server else 0)
        text = text.replace("%SOCK%", self.sock).replace("%STATE%", self.state_dir)
        text = text.replace("%PORT%", port)
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, wait_socket: bool = True) -> None:
        self._write_config()
        argv = [broker_bin(), "--config", self.config_path]
        if self.valgrind:
            argv = [
                "valgrind",
                "--quiet",
                "--leak-check=full",
                "--show-leak-kinds=definite,indirect,possible",
                "--errors-for-leak-kinds=definite,indirect,possible",
                "--error-exitcode=99",
                f"--suppressions={SOURCE_DIR / 'tests' / 'valgrind.supp'}",
                *argv,
            ]
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                argv, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, env=env
            )
        if wait_socket:
            wait_for(self._connectable, 60 if self.valgrind else 10, f"broker socket {self.sock}")

    def _connectable(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the broker exited ({self.proc.returncode}):\n{self.log_text()}")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def wait_ready(self, timeout: float = 15) -> None:
        """Waits until the broker's upstream session is ready."""
        def ready() -> bool:
            st = self.status()
            return st is not None and st["upstream"]["state"] == "ready"

        wait_for(ready, slack(timeout), "the broker's upstream to be ready", interval=0.05)

    def status(self) -> Optional[Dict[str, Any]]:
        try:
            with RawConn(self.sock) as c:
                c.hello("pytest-status")
                c.send({"op": "status", "id": 1})
                r = c.expect("result", 1, slack(5))
                return dict(r["data"])
        except (OSError, AssertionError):
            return None

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait: the exit status (0 = clean; under valgrind
        also no leaks and no errors), or -1 if it had to be killed."""
        if self.proc is None:
            return -1
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout * 4 + 20 if self.valgrind else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = -1
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return read_text(self.log)

    def wait_log(self, needle: str, timeout: float = 5) -> None:
        wait_for(lambda: needle in self.log_text(), slack(timeout), f"broker log line {needle!r}")

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RawConn:
    """A blocking local-protocol connection: frames in and out as dicts."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(slack(5))
        self.sock.connect(path)
        self.reader = wire.FrameReader()
        self.encoder = wire.Encoder()

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, frame: Dict[str, Any]) -> None:
        self.sock.sendall(self.encoder.encode(frame))

    def recv(self, timeout: float) -> Optional[Dict[str, Any]]:
        end = time.monotonic() + timeout
        while True:
            f = self.reader.next()
            if f is not None:
                return f
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                return None
            self.reader.feed(data)

    def expect(self, op: str, rid: Optional[int], timeout: float) -> Dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            f = self.recv(max(0.0, end - time.monotonic()))
            if f is None:
                raise AssertionError(f"no {op} frame (id {rid}) within {timeout:g} s")
            if f.get("op") == op and (rid is None or f.get("id") == rid):
                return f

    def hello(self, name: str) -> Dict[str, Any]:
        self.send({"op": "hello", "min_version": 2, "max_version": 2, "name": name})
        return self.expect("welcome", None, slack(5))
