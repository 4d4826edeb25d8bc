"""Losing the broker: a real volt-broker killed and started again under a
connected client, with requests, handlers, subscriptions and emits in play."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, List, Tuple

import pytest

from harness import Broker, DevServer, slack
from helpers import Recorder, client, in_thread
from voltclient import VoltClient, VoltError


async def test_broker_killed_and_restarted(make_broker: Callable[..., Broker], server: DevServer) -> None:
    b = make_broker()
    await in_thread(b.wait_ready)
    c = client(b, "t-restart")
    rec = Recorder(c)
    got: List[Tuple[str, Any]] = []
    c.register_handler("svc", lambda p: {"served": p})
    c.on_message(lambda t, d: got.append((t, d)), prefix="svc.")
    async with c:
        assert rec.connected == 1
        # Requests in flight when the broker dies: each fails once, at once.
        inflight = [asyncio.ensure_future(c.send_command("never", {"i": i}, timeout=60)) for i in range(20)]
        await c.flush()
        await in_thread(b.kill)
        t0 = time.monotonic()
        results = await asyncio.gather(*inflight, return_exceptions=True)
        assert time.monotonic() - t0 < slack(5), "they must not wait for their timeout (60 s)"
        assert all(isinstance(r, VoltError) and r.code == "SOCKET_NOT_READY" for r in results), results
        assert all("connection to the broker was lost" in r.message for r in results if isinstance(r, VoltError))
        await rec.until(lambda: rec.disconnected and "BrokerGone" in rec.codes(), slack(5), "the loss")
        assert rec.disconnected == ["broker gone"]
        assert not c.is_ready() and not c.is_connected()
        # Without a broker: commands fail at once, emits are kept.
        with pytest.raises(VoltError) as e:
            await c.send_command("echo", 1)
        assert e.value.code == "SOCKET_NOT_READY"
        since = await in_thread(server.last_seq)
        await c.emit("kept-1", {"n": 1})
        await c.emit("kept-2", {"n": 2})
        with pytest.raises(VoltError) as e:
            await c.emit("volatile", 1, volatile=True)
        assert e.value.code == "EmitFailed"
        assert c.stats["emits_kept"] == 2
        # The broker comes back (same socket path): the client finds it.
        await in_thread(b.start)
        await c.wait_ready(timeout=slack(15))
        assert rec.connected == 2 and rec.disconnected == ["broker gone"]
        # Handler and subscription were set up again on the new session.
        r = await in_thread(server.server_request, "svc", {"x": 1})
        assert r["success"] is True and r["data"] == {"served": {"x": 1}}, r
        await in_thread(server.post, "/_dev/message", {"type": "svc.news", "data": [1]})
        deadline = time.monotonic() + slack(5)
        while not got:
            assert time.monotonic() < deadline, "no message after the restart"
            await asyncio.sleep(0.01)
        assert got == [("svc.news", [1])]
        # The kept emits reached the server, in order.
        kept = await in_thread(
            lambda: [
                e["type"]
                for e in server.events("message_in", since)
                if str(e.get("type", "")).startswith("kept-")
            ]
        )
        assert kept == ["kept-1", "kept-2"], kept
        assert await c.send_command("echo", "again") == "again"
        st = await c.status()
        assert [cl["name"] for cl in st["clients"]].count("t-restart") == 1
    assert rec.disconnected == ["broker gone", "client closed"]


async def test_calls_in_progress_when_the_broker_dies(
    make_broker: Callable[..., Broker], server: DevServer
) -> None:
    b = make_broker()
    await in_thread(b.wait_ready)
    started = asyncio.Event()
    release = asyncio.Event()
    async with client(b) as c:
        rec = Recorder(c)

        @c.handler("hold")
        async def hold(p: Any) -> str:
            started.set()
            await release.wait()
            return "too late"

        await c.flush()
        call = asyncio.ensure_future(in_thread(server.http, "POST", "/_dev/server-request", {"command": "hold", "timeoutMs": 3000}))
        await asyncio.wait_for(started.wait(), slack(5))
        await in_thread(b.kill)
        await rec.until(lambda: "BrokerGone" in rec.codes(), slack(5), "the loss")
        release.set()  # the handler finishes: its answer has nowhere to go
        deadline = time.monotonic() + slack(5)
        while not c.stats["replies_dropped"]:
            assert time.monotonic() < deadline, "the handler's answer was not dropped"
            await asyncio.sleep(0.01)
        assert c.stats["replies_dropped"] == 1
        status, _body = await call  # the server's request times out; nothing is answered twice
        assert status == 504
        await in_thread(b.start)
        await c.wait_ready(timeout=slack(15))


async def test_service_started_before_the_broker(make_broker: Callable[..., Broker]) -> None:
    """connect() keeps trying until its deadline: a service may start first."""
    b = make_broker(start=False)
    c = client(b, "early-bird")
    task = asyncio.ensure_future(c.connect(timeout=slack(20)))
    # A negative check: with no broker there, connect() is still waiting.
    await asyncio.sleep(0.3)
    assert not task.done()
    await in_thread(b.start)
    await task
    try:
        assert c.is_ready()
        assert await c.send_command("echo", "late broker") == "late broker"
        assert c.stats["connect_failures"] >= 1
    finally:
        await c.close()


async def test_broker_stopped_cleanly(make_broker: Callable[..., Broker]) -> None:
    """SIGTERM: the broker says goodbye by closing; the client reconnects
    to its successor like after a crash."""
    b = make_broker()
    await in_thread(b.wait_ready)
    async with client(b) as c:
        rec = Recorder(c)
        assert await in_thread(b.stop) == 0
        await rec.until(lambda: rec.disconnected, slack(5), "on_disconnected")
        await in_thread(b.start)
        await c.wait_ready(timeout=slack(15))
        assert rec.disconnected == ["broker gone"] and rec.connected == 1
        assert await c.send_command("echo", 3) == 3


async def test_close_while_reconnecting(make_broker: Callable[..., Broker]) -> None:
    b = make_broker()
    await in_thread(b.wait_ready)
    c = client(b)
    await c.connect()
    await in_thread(b.kill)
    deadline = time.monotonic() + slack(5)
    while c.is_connected():
        assert time.monotonic() < deadline, "the client did not notice the broker's death"
        await asyncio.sleep(0.01)
    await c.close()
    assert c._supervisor is None
    with pytest.raises(VoltError) as e:
        await c.wait_ready(timeout=0.1)
    assert e.value.code == "BrokerGone"
    # A closed client may be connected again.
    await in_thread(b.start)
    await c.connect(timeout=slack(15))
    assert await c.send_command("echo", "reborn") == "reborn"
    await c.close()


async def test_two_clients_share_the_broker_independently(broker: Broker, server: DevServer) -> None:
    """Closing one client leaves the other (and the queue group) working."""
    a = client(broker, "qa")
    b2 = client(broker, "qb")
    hits: List[str] = []
    def answer(who: str) -> Callable[[Any], str]:
        def handler(_p: Any) -> str:
            hits.append(who)
            return who

        return handler

    a.register_handler("qg", answer("a"))
    b2.register_handler("qg", answer("b"))
    async with a, b2:
        body = {"command": "qg", "timeoutMs": 5000, "count": 10}
        r = await in_thread(server.post, "/_dev/server-request", body)
        assert r["answered"] == 10, r
        assert sorted(set(hits)) == ["a", "b"], hits  # round robin over both
        await a.close()
        hits.clear()
        r = await in_thread(server.post, "/_dev/server-request", body)
        assert r["answered"] == 10 and set(hits) == {"b"}, (r, hits)
        assert b2.is_ready()


def test_connect_in_a_second_loop_is_refused(broker: Broker) -> None:
    c: VoltClient = client(broker)
    loop1 = asyncio.new_event_loop()
    loop2 = asyncio.new_event_loop()
    try:
        loop1.run_until_complete(c.connect())
        with pytest.raises(RuntimeError):
            loop2.run_until_complete(c.connect())
        loop1.run_until_complete(c.close())
    finally:
        loop1.close()
        loop2.close()


async def test_a_second_connect_that_times_out_leaves_the_client_running(
    make_broker: Callable[..., Broker]
) -> None:
    b = make_broker()
    await in_thread(b.wait_ready)
    async with client(b) as c:
        rec = Recorder(c)
        await in_thread(b.kill)
        await rec.until(lambda: rec.disconnected, slack(5), "the loss")
        with pytest.raises(VoltError) as e:
            await c.connect(timeout=0.3)
        assert e.value.code == "BrokerGone" and "no broker at" in e.value.message, e.value
        assert c._supervisor is not None, "the client was closed by a connect() it did not start with"
        await in_thread(b.start)
        await c.wait_ready(timeout=slack(15))
        assert await c.send_command("echo", "still here") == "still here"
