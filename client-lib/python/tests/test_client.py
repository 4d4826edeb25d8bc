"""VoltClient end to end: a real volt-broker and the real socket.io dev server."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import os
import time
from typing import Any, Dict, List, Tuple

import pytest

from harness import Broker, DevServer, slack, wait_for
from helpers import Recorder, client, in_thread
from voltclient import ErrorCode, VoltClient, VoltError


# ---- connect, sendCommand ----


async def test_connect_and_echo_exact_values(broker: Broker) -> None:
    async with client(broker, "t-echo") as c:
        assert c.is_ready() and c.is_connected()
        assert c.team_cluster_id == "cluster-dev"
        assert c.broker_name.startswith("volt-broker/"), c.broker_name
        assert c.upstream_state == "ready"
        assert c.command_timeout == 3.0  # the broker's commandTimeout
        payload = {
            "s": "héllo ☃",
            # Node (the dev server) keeps integers exact only up to 2**53;
            # the broker and this client keep 64 bits (see test_wire).
            "n": [0, -1, 2**53, -(2**53), 2**31 + 1],
            "f": [0.1, -1e300, 5e-324],
            "b": b"\x00\x01\xfe\xff" * 64,
            "nested": {"a": [True, False, None, {"deep": [[[]]]}]},
        }
        got = await c.send_command("echo", payload)
        assert got == payload
        assert isinstance(got["b"], bytes)
        assert await c.send_command("echo") is None  # no payload: the server's null
        assert await c.send_command("status") == {"server": "volt-dev-server"}


async def test_binary_from_the_server_arrives_as_bytes(broker: Broker) -> None:
    async with client(broker) as c:
        got = await c.send_command("binary", {"size": 100000})
        blob = got["blob"]
        assert isinstance(blob, bytes) and len(blob) == 100000
        assert blob == bytes(i % 256 for i in range(100000))


async def test_rejected_command_carries_the_servers_code(broker: Broker) -> None:
    async with client(broker) as c:
        with pytest.raises(VoltError) as e:
            await c.send_command("reject", {"code": "NotFound", "message": "no container c-9"})
        assert e.value.code == ErrorCode.COMMAND_REJECTED
        assert e.value.server_code == "NotFound"
        assert e.value.message == "no container c-9"
        with pytest.raises(VoltError) as e:
            await c.send_command("no-such-command")
        assert (e.value.code, e.value.server_code) == ("COMMAND_REJECTED", "UnknownCommand")


async def test_command_timeout_from_the_broker(broker: Broker) -> None:
    # A long grace: what answers must be the broker's COMMAND_TIMEOUT, not
    # our local deadline, however loaded the machine.
    async with client(broker, timeout_grace=slack(10)) as c:
        t0 = time.monotonic()
        with pytest.raises(VoltError) as e:
            await c.send_command("never", timeout=0.3)
        took = time.monotonic() - t0
        assert e.value.code == ErrorCode.COMMAND_TIMEOUT, e.value
        assert 0.25 <= took < slack(5), took


async def test_no_timeout_means_the_brokers_command_timeout(broker: Broker) -> None:
    async with client(broker, timeout_grace=slack(10)) as c:
        t0 = time.monotonic()
        with pytest.raises(VoltError) as e:
            await c.send_command("never")
        took = time.monotonic() - t0
        assert e.value.code == "COMMAND_TIMEOUT", e.value
        assert 2.9 <= took < slack(8), took  # commandTimeout is 3000 ms
    # A client-wide default goes on the wire instead (well before 3 s).
    async with client(broker, command_timeout=0.2, timeout_grace=slack(10)) as c:
        t0 = time.monotonic()
        with pytest.raises(VoltError) as e:
            await c.send_command("never")
        assert e.value.code == "COMMAND_TIMEOUT"
        assert time.monotonic() - t0 < slack(2.5)


async def test_slow_answer_within_its_timeout(broker: Broker) -> None:
    async with client(broker) as c:
        got = await c.send_command("slow", {"ms": 200, "v": 1}, timeout=5)
        assert got == {"ms": 200, "v": 1}


async def test_many_requests_in_flight_each_gets_its_own_answer(broker: Broker) -> None:
    async with client(broker) as c:
        n = 500
        results = await asyncio.gather(*(c.send_command("echo", {"i": i}) for i in range(n)))
        assert [r["i"] for r in results] == list(range(n))
        st = await c.status()
        me = [cl for cl in st["clients"] if cl["name"] == "pytest"]
        assert me and me[0]["in_flight"] == 0


async def test_cancelled_request_is_forgotten(broker: Broker) -> None:
    async with client(broker) as c:
        task = asyncio.ensure_future(c.send_command("never", timeout=30))
        await asyncio.sleep(0)  # let it send
        await c.flush()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert c._pending == {}
        assert await c.send_command("echo", 1) == 1


async def test_payloads_the_broker_refuses(broker: Broker) -> None:
    async with client(broker) as c:
        with pytest.raises(VoltError) as e:
            await c.send_command("echo", {1: "int key"})
        assert e.value.code == ErrorCode.NOT_JSON, e.value
        with pytest.raises(VoltError) as e:
            await c.send_command("echo", math.nan)
        assert e.value.code == "NotJson", e.value
        # Over the server's maxPayload (1e6): refused before it goes upstream.
        with pytest.raises(VoltError) as e:
            await c.send_command("echo", b"x" * 2_000_000)
        assert e.value.code == ErrorCode.PAYLOAD_TOO_LARGE, e.value
        # The session is fine afterwards.
        assert await c.send_command("echo", "still ok") == "still ok"


async def test_local_argument_errors_send_nothing(broker: Broker) -> None:
    async with client(broker) as c:
        with pytest.raises(TypeError):
            await c.send_command("echo", {"x": object()})
        with pytest.raises(ValueError):
            await c.send_command("echo", 2**64)
        with pytest.raises(ValueError):
            await c.send_command("echo", {"s": "\ud800"})  # not encodable as UTF-8
        nested: Any = []
        for _ in range(2000):
            nested = [nested]
        with pytest.raises(ValueError):
            await c.send_command("echo", nested)
        with pytest.raises(VoltError) as e:
            await c.send_command("echo", b"x" * (17 * 1024 * 1024))
        assert e.value.code == ErrorCode.FRAME_TOO_LARGE
        assert "max_frame" in e.value.message
        assert c._pending == {}
        assert await c.send_command("echo", 5) == 5


# ---- inbound commands ----


async def test_handlers_answer_the_server(broker: Broker, server: DevServer) -> None:
    async with client(broker, "t-handlers") as c:
        rec = Recorder(c)

        @c.handler("list-files")
        async def list_files(payload: Dict[str, Any]) -> List[str]:
            await asyncio.sleep(0.01)
            return [payload["path"] + "a.txt", "b.txt"]

        c.register_handler("sync-add", lambda p: p["a"] + p["b"])
        c.register_handler("blob", lambda p: {"bytes": b"\x00\xff" * 10})

        def boom(_p: Any) -> None:
            raise ValueError("disk on fire")

        c.register_handler("boom", boom)

        async def custom(_p: Any) -> None:
            raise VoltError("NoHandler", "not today")

        c.register_handler("custom", custom)
        c.register_handler("unsendable", lambda p: {"x": object()})
        await c.flush()

        r = await in_thread(server.server_request, "list-files", {"path": "/tmp/"})
        assert r["success"] is True and r["data"] == ["/tmp/a.txt", "b.txt"], r
        r = await in_thread(server.server_request, "sync-add", {"a": 2**40, "b": 1})
        assert r["data"] == 2**40 + 1, r
        r = await in_thread(server.server_request, "blob")
        assert r["data"] == {"bytes": {"$bin": base64.b64encode(b"\x00\xff" * 10).decode()}}, r
        r = await in_thread(server.server_request, "boom")
        assert r["success"] is False
        assert r["error"] == {"code": "HandlerError", "message": "disk on fire"}, r
        r = await in_thread(server.server_request, "custom")
        assert r["error"] == {"code": "NoHandler", "message": "not today"}, r
        r = await in_thread(server.server_request, "unsendable")
        assert r["error"]["code"] == "HandlerError", r
        assert "cannot be encoded" in r["error"]["message"], r
        # Unexpected exceptions are also reported to on_error; a VoltError
        # raised on purpose is an answer, not an error.
        await rec.until(lambda: len(rec.errors) >= 2, slack(5), "handler errors")
        msgs = [e.message for e in rec.errors]
        assert all(e.code == "HandlerError" for e in rec.errors), rec.errors
        assert any("disk on fire" in m for m in msgs) and any("cannot be" in m for m in msgs)
        assert not any("not today" in m for m in msgs)


async def test_handlers_run_concurrently(broker: Broker, server: DevServer) -> None:
    async with client(broker) as c:
        running = 0
        peak = 0

        @c.handler("wait")
        async def wait(p: Any) -> Any:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.2)
            running -= 1
            return p

        await c.flush()
        body = {"command": "wait", "payload": 1, "timeoutMs": 10000, "count": 20}
        r = await in_thread(server.post, "/_dev/server-request", body)
        assert r["answered"] == 20 and r["timedOut"] == 0, r
        assert peak == 20, peak
        assert r["elapsedMs"] < 20 * 200, r


async def test_unregister_handler(broker: Broker, server: DevServer) -> None:
    async with client(broker) as c:
        c.register_handler("temp", lambda p: "here")
        await c.flush()
        assert (await in_thread(server.server_request, "temp"))["data"] == "here"
        assert c.unregister_handler("temp") is True
        await c.flush()
        r = await in_thread(server.server_request, "temp")
        assert r["error"]["code"] == "NoHandler", r


async def test_handler_registered_before_connect(broker: Broker, server: DevServer) -> None:
    c = client(broker)
    c.register_handler("early", lambda p: "early bird")
    async with c:
        # connect() returned after the registration was answered.
        st = await c.status()
        mine = [cl for cl in st["clients"] if cl["name"] == "pytest"]
        assert mine and mine[0]["handlers"] == ["early"], mine
        r = await in_thread(server.server_request, "early")
        assert r["data"] == "early bird", r


async def test_registration_refused_is_reported(broker: Broker) -> None:
    async with client(broker) as c:
        rec = Recorder(c)
        # Over maxHandlersPerClient (1024): the broker refuses the last one.
        for i in range(1025):
            c.register_handler(f"h{i}", lambda p: None)
        await c.flush()
        await rec.until(lambda: "LimitExceeded" in rec.codes(), slack(5), "LimitExceeded")
        err = rec.errors[rec.codes().index("LimitExceeded")]
        assert "register 'h1024'" in err.message, err


# ---- messages ----


async def test_on_message_filters(broker: Broker, server: DevServer) -> None:
    async with client(broker) as c:
        got: Dict[str, List[Tuple[str, Any]]] = {"all": [], "exact": [], "prefix": [], "async": []}
        c.on_message(lambda t, d: got["all"].append((t, d)))
        c.on_message(lambda t, d: got["exact"].append((t, d)), type="exposure-snapshot")
        sub = c.on_message(lambda t, d: got["prefix"].append((t, d)), prefix="session.")

        async def later(t: str, d: Any) -> None:
            await asyncio.sleep(0)
            got["async"].append((t, d))

        c.on_message(later, prefix="session.")
        await c.flush()
        await in_thread(server.post, "/_dev/message", {"type": "exposure-snapshot", "data": {"a": 1}})
        await in_thread(
            server.post, "/_dev/message", {"type": "session.input", "data": {"$bin": "AAEC"}}
        )
        await in_thread(server.post, "/_dev/message", {"type": "other", "data": None})
        deadline = time.monotonic() + slack(5)
        while len(got["all"]) < 3 or len(got["async"]) < 1:
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.01)
        assert got["all"] == [
            ("exposure-snapshot", {"a": 1}),
            ("session.input", b"\x00\x01\x02"),
            ("other", None),
        ]
        assert got["exact"] == [("exposure-snapshot", {"a": 1})]
        assert got["prefix"] == [("session.input", b"\x00\x01\x02")]
        assert got["async"] == [("session.input", b"\x00\x01\x02")]
        # Cancelled: the prefix filter is still wanted by `later`, so the
        # broker keeps sending; only this callback stops.
        sub.cancel()
        sub.cancel()  # twice is fine
        await in_thread(server.post, "/_dev/message", {"type": "session.two", "data": 2})
        while len(got["async"]) < 2:
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.01)
        assert got["prefix"] == [("session.input", b"\x00\x01\x02")]
        st = await c.status()
        mine = [cl for cl in st["clients"] if cl["name"] == "pytest"][0]
        assert sorted(mine["subscriptions"]) == sorted(
            ["all", "exact:exposure-snapshot", "prefix:session."]
        ) or len(mine["subscriptions"]) == 3, mine


async def test_message_callback_errors_go_to_on_error(broker: Broker, server: DevServer) -> None:
    async with client(broker) as c:
        rec = Recorder(c)

        def bad(t: str, d: Any) -> None:
            raise KeyError("oops")

        c.on_message(bad, type="x")
        await c.flush()
        await in_thread(server.post, "/_dev/message", {"type": "x", "data": 1})
        await rec.until(lambda: rec.errors, slack(5), "the callback's error")
        assert rec.errors[0].code == "HandlerError" and "KeyError" in rec.errors[0].message


# ---- emit ----


async def test_emit_reaches_the_server(broker: Broker, server: DevServer) -> None:
    async with client(broker) as c:
        since = await in_thread(server.last_seq)
        await c.emit("exposure-snapshot", {"analysisId": 7, "blob": b"\x01\x02"})
        await c.emit("volatile-one", [1, 2], volatile=True)
        await c.emit("acked", "yes", ack=True)
        seen: Dict[str, Any] = {}
        for t in ("exposure-snapshot", "volatile-one", "acked"):
            ev = await in_thread(
                server.wait_events, "message_in", since, lambda e, t=t: e.get("type") == t, slack(5)
            )
            seen[t] = ev["data"]
        assert seen["exposure-snapshot"] == {"analysisId": 7, "blob": {"$bin": "AQI="}}
        assert seen["volatile-one"] == [1, 2]
        assert seen["acked"] == "yes"


async def test_emit_refused_by_the_broker(broker: Broker) -> None:
    async with client(broker) as c:
        rec = Recorder(c)
        # No JSON form: refused by the broker, reported (not acked) or raised (acked).
        await c.emit("bad", {1: 2})
        await rec.until(lambda: rec.errors, slack(5), "the emit's error")
        assert rec.errors[0].code == "NotJson", rec.errors
        assert rec.errors[0].message.endswith("(about emit)"), rec.errors  # v2: error frames say which op
        with pytest.raises(VoltError) as e:
            await c.emit("bad", {1: 2}, ack=True)
        assert e.value.code == "NotJson"


# ---- broker operations ----


async def test_status_ping_metrics(broker: Broker) -> None:
    async with client(broker, "t-status") as c:
        c.register_handler("s1", lambda p: None)
        await c.flush()
        st = await c.status()
        assert st["upstream"]["state"] == "ready"
        assert st["upstream"]["team_cluster_id"] == "cluster-dev"
        mine = [cl for cl in st["clients"] if cl["name"] == "t-status"]
        assert len(mine) == 1 and mine[0]["pid"] == os.getpid(), st["clients"]
        assert mine[0]["handlers"] == ["s1"]
        rtt = await c.ping()
        assert 0 < rtt < slack(5)
        assert await c.fetch_team_cluster_id() == "cluster-dev"


async def test_daemon_password_for_root(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    assert os.getuid() == 0, "this test must run as root (it also runs as uid 65534)"
    caplog.set_level(logging.DEBUG)
    async with client(broker) as c:
        assert await c.daemon_password() == "dev-password"
        # The secret is handed over, never kept or shown.
        assert "dev-password" not in repr(c) and "dev-password" not in repr(vars(c))
    assert "dev-password" not in caplog.text


def test_daemon_password_refused_to_another_user(broker: Broker) -> None:
    """A process of another uid gets a clear PermissionDenied (and connects fine)."""
    assert os.getuid() == 0, "this test must run as root (it switches to uid 65534)"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: becomes nobody, reports one line, exits
        os.close(r)
        out = b""
        try:
            os.setgid(65534)
            os.setuid(65534)

            async def check() -> str:
                async with client(broker, "nobody") as c:
                    assert c.team_cluster_id == "cluster-dev"
                    try:
                        await c.daemon_password()
                        return "got the password!"
                    except VoltError as e:
                        return f"{e.code}|{e.message}"

            out = asyncio.run(check()).encode()
        except BaseException as e:  # report anything to the parent
            out = f"child failed: {e!r}".encode()
        finally:
            os.write(w, out)
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode()
    code, _, message = text.partition("|")
    assert code == "PermissionDenied", text
    assert message.startswith("the broker does not give the daemon password to this process (uid 65534): "), message
    assert "root" in message, message  # the broker's own words say who may read it
    broker.wait_log("refused the daemon password")


# ---- upstream drops ----


async def test_upstream_drop_fires_disconnected_then_connected(
    broker: Broker, server: DevServer
) -> None:
    async with client(broker) as c:
        rec = Recorder(c)
        c.register_handler("after-drop", lambda p: "back")
        await c.flush()
        pending = asyncio.ensure_future(c.send_command("never", timeout=30))
        await c.flush()
        await in_thread(server.post, "/_dev/disconnect", {"mode": "transport"})
        # The request in flight fails once, at once, with SOCKET_NOT_READY.
        with pytest.raises(VoltError) as e:
            await asyncio.wait_for(pending, slack(5))
        assert e.value.code == "SOCKET_NOT_READY", e.value
        await rec.until(lambda: rec.disconnected, slack(5), "on_disconnected")
        await rec.until(lambda: rec.connected >= 1, slack(10), "on_connected again")
        assert len(rec.disconnected) == 1 and rec.connected == 1
        assert c.is_ready()
        # Handlers survived: the server can call us again.
        r = await in_thread(server.server_request, "after-drop")
        assert r["data"] == "back", r


async def test_send_while_upstream_down_is_socket_not_ready(
    broker: Broker, server: DevServer
) -> None:
    async with client(broker) as c:
        rec = Recorder(c)
        # Refuse the namespace connects so the upstream stays down a while.
        await in_thread(lambda: server.behavior(connectRefuse=1000))
        await in_thread(server.post, "/_dev/disconnect", {"mode": "transport"})
        await rec.until(lambda: rec.disconnected, slack(5), "on_disconnected")
        assert not c.is_ready() and c.is_connected()
        with pytest.raises(VoltError) as e:
            await c.send_command("echo", 1)
        assert e.value.code == "SOCKET_NOT_READY", e.value
        with pytest.raises(VoltError) as e:
            await c.wait_ready(timeout=0.2)
        assert e.value.code == "Timeout"
        # An emit made meanwhile is kept by the broker (PROTOCOL.md v2) and
        # reaches the server once the upstream is back, once.
        since = await in_thread(server.last_seq)
        await c.emit("kept-while-down", {"k": 1})
        await c.flush()
        await in_thread(lambda: server.behavior(connectRefuse=0))
        await c.wait_ready(timeout=slack(10))
        ev = await in_thread(
            server.wait_events, "message_in", since, lambda e: e.get("type") == "kept-while-down", slack(5)
        )
        assert ev["data"] == {"k": 1}
        assert "EmitFailed" not in rec.codes(), rec.errors
        arrived = await in_thread(
            lambda: [e for e in server.events("message_in", since) if e.get("type") == "kept-while-down"]
        )
        assert len(arrived) == 1, arrived
        assert await c.send_command("echo", 2) == 2
        assert "SocketRegistrationFailed" in rec.codes() or "SocketConnectionFailed" in rec.codes(), rec.errors


# ---- connect() failures ----


async def test_connect_without_a_broker() -> None:
    path = "/tmp/volt-pytest-nothing-here.sock"
    c = VoltClient(path, reconnect=False)
    t0 = time.monotonic()
    with pytest.raises(VoltError) as e:
        await c.connect(timeout=10)
    assert time.monotonic() - t0 < 3, "no retry without reconnect"
    assert e.value.code == "BrokerGone"
    assert f"no broker at {path}: is volt-broker running? set VOLT_BROKER_SOCKET" in e.value.message
    # With reconnect, it keeps trying until the deadline, then says the same.
    c = VoltClient(path, reconnect_min=0.05, reconnect_max=0.1)
    t0 = time.monotonic()
    with pytest.raises(VoltError) as e:
        await c.connect(timeout=0.5)
    assert 0.45 <= time.monotonic() - t0 < 5
    assert "no broker at" in e.value.message and c._supervisor is None


async def test_connect_uses_volt_broker_socket(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLT_BROKER_SOCKET", broker.sock)
    async with VoltClient(name="from-env", connect_timeout=slack(10)) as c:
        assert c.socket_path == broker.sock
        assert await c.send_command("echo", "env") == "env"


async def test_connect_reports_a_refused_registration(make_broker: Any, server: DevServer) -> None:
    await in_thread(lambda: server.behavior(registerRefuse=1000))
    b = make_broker()
    c = VoltClient(b.sock, "refused", attempt_timeout=slack(5))
    t0 = time.monotonic()
    with pytest.raises(VoltError) as e:
        await c.connect(timeout=slack(2))
    assert e.value.code == "SocketRegistrationFailed", e.value
    assert "did not become ready" in e.value.message, e.value
    assert time.monotonic() - t0 >= slack(2) - 0.1
    assert not c.is_connected()


async def test_connect_fails_early_when_the_upstream_failed(make_broker: Any, server: DevServer) -> None:
    # A bad enrollment token is final: the broker's upstream ends `failed`.
    b = make_broker(
        {
            "serverUrl": "http://127.0.0.1:%PORT%",
            "credentials": {"daemonPassword": None, "enrollmentToken": "tok-wrong"},
        }
    )
    # A client connecting meanwhile gets the enrollment's error by its deadline.
    c = VoltClient(b.sock, "before-failed", attempt_timeout=slack(5))
    with pytest.raises(VoltError) as e:
        await c.connect(timeout=slack(10))
    assert e.value.code == "EnrollmentFailed", e.value
    assert "tok-wrong" not in str(e.value)
    await in_thread(
        lambda: wait_for(
            lambda: (b.status() or {}).get("upstream", {}).get("state") == "failed",
            slack(10),
            "the upstream to be failed",
        )
    )
    # Once failed (final), connect() says so at once rather than at its deadline.
    c = VoltClient(b.sock, "after-failed", attempt_timeout=slack(5))
    t0 = time.monotonic()
    with pytest.raises(VoltError) as e:
        await c.connect(timeout=slack(30))
    assert time.monotonic() - t0 < slack(10), "failed is final: no waiting for the 30 s deadline"
    assert e.value.code == "EnrollmentFailed", e.value
    assert "failed for good" in e.value.message and "HTTP 401" in e.value.message, e.value
    assert "tok-wrong" not in str(e.value)


# ---- the README's example ----


async def test_readme_example_runs(broker: Broker, server: DevServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example in README.md, as written, against the broker (found
    through VOLT_BROKER_SOCKET, as the example gives no path)."""
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        code = f.read().split("```python\n", 1)[1].split("```", 1)[0]
    assert code.rstrip().endswith("asyncio.run(main())")
    code = code.rstrip()[: -len("asyncio.run(main())")]  # we are in a loop already
    monkeypatch.setenv("VOLT_BROKER_SOCKET", broker.sock)
    printed: List[str] = []
    ns: Dict[str, Any] = {"print": lambda *a: printed.append(" ".join(map(str, a)))}
    exec(compile(code, "README.md", "exec"), ns)
    task = asyncio.ensure_future(ns["main"]())
    try:
        deadline = time.monotonic() + slack(10)
        while not any(line.startswith("server said") for line in printed):
            assert not task.done(), task
            assert time.monotonic() < deadline, printed
            await asyncio.sleep(0.02)
        # The dev server does not know get-container-stats: rejected, as the example handles.
        assert printed[0] == "server said UnknownCommand unknown command: get-container-stats", printed
        r = await in_thread(server.server_request, "list-files", {"path": "/"})
        assert r["success"] is True and r["data"] == sorted(os.listdir("/")), r
        await in_thread(server.post, "/_dev/message", {"type": "session.readme", "data": 1})
        while "session.readme 1" not in printed:
            assert time.monotonic() < deadline, printed
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
