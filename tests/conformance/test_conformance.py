"""The conformance scenarios (scenarios.json here) run by the Python client,
voltclient, against a real broker and the dev server started by the Python
client's own test harness (client-lib/python/tests/harness.py). One pytest
case per scenario."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

HERE = Path(__file__).resolve().parent
PYDIR = HERE.parent.parent / "client-lib" / "python"
sys.path.insert(0, str(PYDIR / "tests"))
sys.path.insert(0, str(PYDIR))

from conftest import run_async  # noqa: E402
from harness import Broker, DevServer, slack  # noqa: E402
from helpers import client as new_client, in_thread  # noqa: E402
from voltclient import VoltClient, VoltError  # noqa: E402

SPEC = json.loads((HERE / "scenarios.json").read_text(encoding="utf-8"))
WAIT = 10.0  # s, for anything the broker or the server does (slack() stretches it)


def native(v: Any) -> Any:
    """A scenario value as the Python client gives and takes it."""
    if isinstance(v, list):
        return [native(x) for x in v]
    if isinstance(v, dict):
        if list(v) == ["$bin"]:
            return base64.b64decode(v["$bin"])
        if list(v) == ["$int"]:
            return int(v["$int"])
        return {k: native(x) for k, x in v.items()}
    return v


def server_side(v: Any) -> Any:
    """A scenario value as the dev server's control API takes it (see
    scenarios.json: binary stays a marker, $int goes as a number)."""
    if isinstance(v, list):
        return [server_side(x) for x in v]
    if isinstance(v, dict):
        if list(v) == ["$int"]:
            return int(v["$int"])
        return {k: server_side(x) for k, x in v.items()}
    return v


Outcome = Tuple[bool, Any]  # (True, data) or (False, VoltError)


def check_outcome(out: Outcome, expect: Dict[str, Any], what: str) -> None:
    ok, value = out
    if "error" in expect:
        assert not ok, f"{what}: expected error {expect['error']}, got data {value!r}"
        assert isinstance(value, VoltError), f"{what}: expected a VoltError, got {value!r}"
        assert value.code == expect["error"], (
            f"{what}: expected code {expect['error']}, got {value.code} ({value.message})"
        )
        if "server_code" in expect:
            assert value.server_code == expect["server_code"], (
                f"{what}: expected server code {expect['server_code']}, got {value.server_code}"
            )
        if "message" in expect:
            assert expect["message"] in value.message, (
                f"{what}: expected a message with {expect['message']!r}, got {value.message!r}"
            )
    else:
        assert ok, f"{what}: expected data {expect['data']!r}, got error {value!r}"
        want = native(expect["data"])
        assert value == want and type(value) is type(want), f"{what}: expected {want!r}, got {value!r}"


async def outcome_of(coro: Any) -> Outcome:
    try:
        return True, await coro
    except VoltError as e:
        return False, e


async def wait_until(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls cond (sync, or async when it returns an awaitable) until truthy."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if asyncio.iscoroutine(v):
            v = await v
        if v:
            return v
        assert time.monotonic() < end, f"waited {timeout:g} s for {what}"
        await asyncio.sleep(0.02)


class Run:
    def __init__(self, name: str, broker: Broker, server: DevServer) -> None:
        self.name = name
        self.broker = broker
        self.server = server
        self.clients: Dict[str, VoltClient] = {}
        self.events: Dict[str, List[str]] = {}
        self.calls: Dict[Tuple[str, str], int] = {}
        self.messages: Dict[str, List[Tuple[str, Any]]] = {}
        self.bg: Dict[str, Dict[str, Any]] = {}

    def client(self, cid: str) -> VoltClient:
        c = self.clients.get(cid)
        if c is not None:
            return c
        c = new_client(self.broker, f"conformance-{cid}")
        ev: List[str] = []
        c.on_connected(lambda: ev.append("connected"))
        c.on_disconnected(lambda _r: ev.append("disconnected"))
        self.clients[cid] = c
        self.events[cid] = ev
        self.messages[cid] = []
        return c

    async def status(self) -> Optional[Dict[str, Any]]:
        return await in_thread(self.broker.status)  # type: ignore[no-any-return]

    async def step(self, s: Dict[str, Any], i: int) -> None:
        what = f"{self.name} step {i} ({s['do']})"
        cid: str = s.get("client", "")
        c = self.client(cid) if cid else None
        do = s["do"]
        if do == "connect":
            assert c is not None
            await c.connect()
        elif do == "handle":
            assert c is not None
            key = (cid, s["command"])

            async def handler(payload: Any, s: Dict[str, Any] = s, key: Tuple[str, str] = key) -> Any:
                self.calls[key] = self.calls.get(key, 0) + 1
                if s.get("echo"):
                    return payload
                if "fail" in s:
                    raise VoltError(s["fail"]["code"], s["fail"]["message"])
                if "throw" in s:
                    raise RuntimeError(s["throw"])
                return native(s.get("reply"))

            c.register_handler(s["command"], handler)
        elif do == "subscribe":
            assert c is not None
            box = self.messages[cid]
            c.on_message(lambda t, d: box.append((t, d)))
        elif do == "send":
            assert c is not None
            t = s.get("timeout_ms")
            out = await asyncio.wait_for(
                outcome_of(c.send_command(s["command"], native(s.get("payload")), t / 1000 if t else None)),
                slack(WAIT + (t or 0) / 1000 + 3),
            )
            check_outcome(out, s["expect"], what)
        elif do == "send_bg":
            assert c is not None
            client: VoltClient = c
            t = s.get("timeout_ms")
            ent: Dict[str, Any] = {"settled": 0, "outcome": None}

            async def bg(ent: Dict[str, Any] = ent, c: VoltClient = client) -> Outcome:
                out = await outcome_of(c.send_command(s["command"], native(s.get("payload")), t / 1000 if t else None))
                ent["settled"] += 1
                ent["outcome"] = out
                return out

            ent["task"] = asyncio.ensure_future(bg())
            self.bg[s["as"]] = ent
        elif do == "settle":
            ent = self.bg[s["as"]]
            out = await asyncio.wait_for(asyncio.shield(ent["task"]), slack(WAIT))
            check_outcome(out, s["expect"], what)
        elif do == "settled_once":
            n = self.bg[s["as"]]["settled"]
            assert n == 1, f"{what}: expected 1 settlement of {s['as']!r}, got {n}"
        elif do == "emit":
            assert c is not None
            await c.emit(s["type"], native(s.get("data")))
        elif do == "wait_handlers":
            async def handlers_ok() -> bool:
                st = await self.status()
                if st is None or sum(1 for x in st["clients"] if s["command"] in x["handlers"]) < s["clients"]:
                    return False
                return s["command"] in await in_thread(self.server.registered_handlers)

            await wait_until(handlers_ok, slack(WAIT), f"{what}: {s['clients']} handler(s) of {s['command']}")
        elif do == "wait_subscribers":
            async def subs_ok() -> bool:
                st = await self.status()
                return st is not None and sum(1 for x in st["clients"] if x["subscriptions"]) >= s["clients"]

            await wait_until(subs_ok, slack(WAIT), f"{what}: {s['clients']} subscriber(s)")
        elif do == "wait_pending":
            async def pending_ok() -> bool:
                st = await self.status()
                return st is not None and bool(st["counters"]["pending"] >= s["count"])

            await wait_until(pending_ok, slack(WAIT), f"{what}: {s['count']} request(s) pending")
        elif do == "server_request":
            payload = server_side(s["payload"]) if "payload" in s else None
            resp = await in_thread(self.server.server_request, s["command"], payload)
            expect = s.get("expect", {})
            if "error" in expect:
                assert resp["success"] is False, f"{what}: expected error {expect['error']}, got {resp!r}"
                assert resp["error"]["code"] == expect["error"], (
                    f"{what}: expected code {expect['error']}, got {resp['error']!r}"
                )
                if "message" in expect:
                    assert expect["message"] in resp["error"]["message"], (
                        f"{what}: expected a message with {expect['message']!r}, got {resp['error']!r}"
                    )
            else:
                assert resp["success"] is True, f"{what}: expected success, got {resp!r}"
                if "data" in expect:
                    assert resp["data"] == expect["data"], f"{what}: expected {expect['data']!r}, got {resp['data']!r}"
        elif do == "expect_calls":
            key = (cid, s["command"])
            try:
                await wait_until(lambda: self.calls.get(key, 0) >= s["count"], slack(WAIT), what)
            except AssertionError:
                pass
            n = self.calls.get(key, 0)
            assert n == s["count"], f"{what}: expected {s['count']} call(s) of {s['command']}, got {n}"
        elif do == "server_message":
            await in_thread(self.server.post, "/_dev/message", {"type": s["type"], "data": server_side(s["data"])})
        elif do == "expect_message":
            box = self.messages[cid]
            m = await wait_until(
                lambda: next((x for x in box if x[0] == s["type"]), None), slack(WAIT), f"{what}: message {s['type']}"
            )
            want = native(s["data"])
            assert m[1] == want, f"{what}: expected {want!r}, got {m[1]!r}"
        elif do == "server_expect_emit":
            ev = await in_thread(
                self.server.wait_events, "message_in", 0, lambda e: e.get("type") == s["type"], slack(WAIT)
            )
            assert ev.get("data") == s["data"], f"{what}: expected {s['data']!r}, got {ev.get('data')!r}"
        elif do == "server_behavior":
            await in_thread(self.server.post, "/_dev/behavior", s["body"])
        elif do == "drop_upstream":
            await in_thread(self.server.post, "/_dev/disconnect", {"mode": s["mode"]})
        elif do == "expect_events":
            ev = self.events[cid]
            try:
                await wait_until(lambda: ev == s["events"] or len(ev) > len(s["events"]), slack(WAIT), what)
            except AssertionError:
                pass
            assert ev == s["events"], f"{what}: expected events {s['events']}, got {ev}"
        elif do == "stop_broker":
            if s["how"] == "kill":
                await in_thread(self.broker.kill)
            else:
                rc = await in_thread(self.broker.stop)
                assert rc == 0, f"{what}: expected a clean exit (0), got {rc}"
        elif do == "start_broker":
            await in_thread(self.broker.start)
        else:
            raise AssertionError(f"{what}: unknown step {do!r}")

    async def finish(self) -> None:
        for c in self.clients.values():
            await c.close()
        for ent in self.bg.values():
            ent["task"].cancel()


@pytest.fixture(scope="module")
def devserver() -> Iterator[DevServer]:
    s = DevServer()
    s.start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def broker(devserver: DevServer) -> Iterator[Broker]:
    b = Broker(devserver, SPEC["broker"])
    b.start()
    yield b
    # Not running: a restart scenario failed half-way, and said so.
    rc = b.stop() if b.proc is not None else 0
    log = b.log_text()
    b.cleanup()
    assert rc == 0, f"volt-broker exited with {rc} (valgrind: 99 = leaks or errors); log:\n{log}"


@pytest.mark.parametrize("scenario", SPEC["scenarios"], ids=[sc["name"] for sc in SPEC["scenarios"]])
def test_scenario(scenario: Dict[str, Any], broker: Broker, devserver: DevServer) -> None:
    if broker.proc is None:
        broker.start()
    devserver.reset()
    broker.wait_ready(WAIT)

    async def main() -> None:
        run = Run(scenario["name"], broker, devserver)
        try:
            for i, s in enumerate(scenario["steps"]):
                await run.step(s, i)
        finally:
            await run.finish()

    run_async(main(), slack(120))
