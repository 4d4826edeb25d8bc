"""Bad input from the broker's side: garbage, frames cut in the middle,
oversized frames, wrong welcomes, malformed known frames. Each gives a
clear error and (where the connection is broken) a reconnect; never a
hang, never an exception nobody can catch (conftest fails a test on any
exception that reaches the event loop)."""

from __future__ import annotations

import asyncio
import random
import struct
import time
from typing import Any, List

import msgpack
import pytest

from fake_broker import FakeBroker, FakeConn
from helpers import Recorder
from voltclient import VoltClient, VoltError


def fast_client(path: str, **kw: Any) -> VoltClient:
    kw.setdefault("reconnect_min", 0.02)
    kw.setdefault("reconnect_max", 0.05)
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("attempt_timeout", 2)
    return VoltClient(path, "bad-input", **kw)


async def misbehave_once(fb_conn: FakeConn, first: Any) -> None:
    """Connection 0 does `first` after the handshake; later ones behave."""
    await fb_conn.handshake()
    if fb_conn.index == 0:
        await fb_conn.expect("request")  # the test's request is in flight
        await first(fb_conn)
        await fb_conn.drain()
        await asyncio.sleep(3600)  # the client must be the one to hang up
    await fb_conn.serve()


async def check_broken_then_reconnected(first: Any, expect_code: str, expect_text: str, **kw: Any) -> List[VoltError]:
    async def script(conn: FakeConn) -> None:
        await misbehave_once(conn, first)

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path, **kw)
        rec = Recorder(c)
        async with c:
            assert c.team_cluster_id == "cluster-fake"
            with pytest.raises(VoltError) as e:
                await asyncio.wait_for(c.send_command("x", 1), 5)
            assert e.value.code == "SOCKET_NOT_READY", e.value
            await rec.until(lambda: rec.connected >= 2, 5, "the reconnect")
            assert rec.disconnected == ["broker gone"]
            codes = rec.codes()
            assert expect_code in codes, rec.errors
            err = rec.errors[codes.index(expect_code)]
            assert expect_text in err.message, err
            if "in the middle of a frame" not in expect_text:  # a cut frame is the loss itself
                assert "BrokerGone" in codes, rec.errors
            # The new session works.
            assert await c.send_command("echo", {"ok": 1}) == {"ok": 1}
            assert len(fb.conns) == 2
        return rec.errors


async def test_garbage_is_a_bad_frame_and_a_reconnect() -> None:
    async def first(conn: FakeConn) -> None:
        conn.send_raw(b"\xff\xfe\xfd garbage garbage garbage")

    await check_broken_then_reconnected(first, "FrameTooLarge", "frame length 4294901024 is over max_frame 16777216")


async def test_invalid_msgpack_body() -> None:
    async def first(conn: FakeConn) -> None:
        conn.send_body(b"\xc1\xc1\xc1")

    await check_broken_then_reconnected(first, "BadFrame", "not valid msgpack")


async def test_body_that_is_not_a_map() -> None:
    async def first(conn: FakeConn) -> None:
        conn.send_body(msgpack.packb([1, 2, 3]))

    await check_broken_then_reconnected(first, "BadFrame", "is a list, not a map")


async def test_frame_over_max_frame() -> None:
    async def first(conn: FakeConn) -> None:
        conn.send({"op": "message", "type": "big", "data": "x" * 5000})

    await check_broken_then_reconnected(first, "FrameTooLarge", "over max_frame 4096", max_frame=4096)


async def test_close_in_the_middle_of_a_frame() -> None:
    async def first(conn: FakeConn) -> None:
        conn.send_raw(struct.pack(">I", 100) + b"0123456789")
        await conn.drain()
        await conn.close()

    # A frame cut short is bad input, as in every client library.
    errors = await check_broken_then_reconnected(
        first, "BadFrame", "in the middle of a frame (14 of 104 bytes)"
    )
    assert [e.code for e in errors] == ["BadFrame"], errors


async def test_close_in_the_middle_of_a_length_prefix() -> None:
    async def first(conn: FakeConn) -> None:
        conn.send_raw(b"\x00\x00")
        await conn.drain()
        await conn.close()

    await check_broken_then_reconnected(first, "BadFrame", "in the middle of a frame (2 of 4 bytes)")


async def test_garbage_instead_of_welcome_is_not_a_broker() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.expect("hello")
        conn.send_raw(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await conn.drain()
        await asyncio.sleep(3600)

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path)
        t0 = time.monotonic()
        with pytest.raises(VoltError) as e:
            await c.connect(timeout=0.5)
        assert time.monotonic() - t0 < 3
        assert e.value.code == "FrameTooLarge", e.value
        assert "is over max_frame" in e.value.message
        assert f"is {fb.path} a volt-broker socket?" in e.value.message
        assert len(fb.conns) >= 2, "it retried until the deadline"
        assert not c.is_connected() and c._supervisor is None


async def test_welcome_with_another_version_is_final() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.handshake(version=1)
        await asyncio.sleep(3600)

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path)
        t0 = time.monotonic()
        with pytest.raises(VoltError) as e:
            await c.connect(timeout=20)
        assert time.monotonic() - t0 < 5, "a version mismatch does not wait for the deadline"
        assert e.value.code == "VersionMismatch"
        assert "version 1" in e.value.message
        await asyncio.sleep(0.3)  # reconnect_max is 0.05: a retry would be here by now
        assert len(fb.conns) == 1, "no reconnect after a version mismatch"


async def test_refused_at_hello() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.expect("hello")
        conn.send({"op": "error", "code": "PermissionDenied", "message": "uid/gid not in the allowed set"})
        await conn.drain()
        await conn.close()

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path)
        t0 = time.monotonic()
        with pytest.raises(VoltError) as e:
            await c.connect(timeout=20)
        assert time.monotonic() - t0 < 5, "PermissionDenied does not wait for the deadline"
        assert e.value.code == "PermissionDenied"
        assert "not in the allowed set" in e.value.message


async def test_broker_that_never_says_welcome() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.expect("hello")
        await asyncio.sleep(3600)

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path, attempt_timeout=0.2)
        with pytest.raises(VoltError) as e:
            await c.connect(timeout=1)
        assert e.value.code == "BrokerGone"
        assert "did not answer hello within 0.2 s" in e.value.message
        assert len(fb.conns) >= 2


async def test_odd_but_valid_frames_are_not_fatal() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.handshake()
        req = await conn.expect("request")
        rid = req["id"]
        conn.send({"op": "result", "id": 999999, "ok": True})  # unknown id
        conn.send({"op": "brand-new-op", "x": 1})  # a newer broker's op: ignored
        conn.send({"op": "event", "event": "brand-new-event", "state": "ready"})  # ignored
        # v2: an error frame never completes a request, even with its id.
        conn.send({"op": "error", "code": "BadRequest", "message": "about your request", "id": rid, "about": "request"})
        conn.send({"op": "result", "id": rid, "ok": True, "data": "answered"})
        await conn.drain()
        await conn.serve()

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path)
        rec = Recorder(c)
        async with c:
            assert await asyncio.wait_for(c.send_command("x", 1), 5) == "answered"
            codes = rec.codes()
            assert codes == ["BadRequest"], rec.errors
            assert rec.errors[0].message == "about your request (about request)"
            assert c.stats["unknown_results"] == 1
            assert c.is_ready() and rec.disconnected == []
        assert len(fb.conns) == 1


# A known frame with a field missing or of the wrong type is bad input: the
# broker never sends one, so the connection ends and the client reconnects,
# as in every client library (tests/conformance/bad-input.json).
MALFORMED = [
    ({"op": "result", "id": "not-an-int", "ok": True}, "a 'result' frame with a str 'id'"),
    ({"op": "result", "id": 1}, "a 'result' frame without 'ok'"),
    ({"op": "call", "command": "x"}, "a 'call' frame without 'id'"),
    ({"op": "call", "id": 5}, "a 'call' frame without 'command'"),
    ({"op": "message", "data": 1}, "a 'message' frame without 'type'"),
    ({"op": "event", "event": 42, "state": ["no"]}, "a 'event' frame with a int 'event'"),
    ({"op": "welcome", "version": 2, "max_frame": 100, "state": "ready", "timeout_ms": 1}, "a second welcome"),
    ({"no": "op"}, "a frame without an op"),
]


@pytest.mark.parametrize("frame,text", MALFORMED, ids=[t for _f, t in MALFORMED])
async def test_malformed_known_frames_end_the_connection(frame: Any, text: str) -> None:
    async def first(conn: FakeConn) -> None:
        conn.send(frame)

    await check_broken_then_reconnected(first, "BadFrame", text)


async def test_result_answers_exactly_once() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.handshake()
        req = await conn.expect("request")
        for _ in range(3):
            conn.send({"op": "result", "id": req["id"], "ok": True, "data": "first"})
        await conn.drain()
        await conn.serve()

    async with FakeBroker(script) as fb:
        async with fast_client(fb.path) as c:
            assert await c.send_command("x") == "first"
            await c.flush()
            assert c.stats["unknown_results"] == 2


async def test_local_deadline_when_the_broker_never_answers() -> None:
    async def script(conn: FakeConn) -> None:
        await conn.handshake()
        while await conn.read_frame(timeout=3600) is not None:
            pass  # reads everything, answers nothing

    async with FakeBroker(script) as fb:
        async with fast_client(fb.path, timeout_grace=0.1, local_timeout=0.3) as c:
            t0 = time.monotonic()
            with pytest.raises(VoltError) as e:
                await c.send_command("x", timeout=0.2)
            assert e.value.code == "Timeout" and 0.25 < time.monotonic() - t0 < 2, e.value
            with pytest.raises(VoltError) as e:
                await c.status()
            assert e.value.code == "Timeout"
            assert c._pending == {}


async def test_hanging_up_during_setup_and_before_welcome() -> None:
    """Connections cut at every early point; the client ends up ready."""

    async def script(conn: FakeConn) -> None:
        if conn.index == 0:
            return  # accept and close at once
        if conn.index == 1:
            await conn.expect("hello")
            return  # close after hello
        if conn.index == 2:
            await conn.handshake()
            return  # close right after welcome
        await conn.handshake()
        await conn.serve()

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path)
        c.register_handler("h", lambda p: p)
        rec = Recorder(c)
        async with c:
            assert len(fb.conns) == 4
            assert await c.send_command("echo", 1) == 1
            assert rec.connected == 1


async def test_random_garbage_never_escapes() -> None:
    """Seeded random bytes after a proper welcome, many times over."""
    rng = random.Random(20261202)
    rounds = 40

    async def script(conn: FakeConn) -> None:
        await conn.handshake()
        if conn.index >= rounds:
            await conn.serve()
            return
        n = rng.choice([1, 3, 4, 5, 17, 200, 5000])
        blob = bytes(rng.getrandbits(8) for _ in range(n))
        if rng.random() < 0.5:
            blob = struct.pack(">I", rng.randrange(1, 64)) + blob  # a plausible length first
        conn.send_raw(blob)
        await conn.drain()
        if rng.random() < 0.5:
            await conn.close()
        else:
            await asyncio.sleep(0.05)
            await conn.close()

    async with FakeBroker(script) as fb:
        c = fast_client(fb.path, reconnect_min=0.001, reconnect_max=0.002, max_frame=65536)
        rec = Recorder(c)
        await c.connect(timeout=5)
        await fb.wait_conns(rounds + 1, timeout=20)
        await c.wait_ready(timeout=5)
        assert await c.send_command("echo", "survived") == "survived"
        await c.close()
        assert rec.connected >= 2
        assert all(e.code in ("BadFrame", "FrameTooLarge", "BrokerGone", "BadRequest", "Internal") for e in rec.errors)
        assert "Internal" not in rec.codes(), [e for e in rec.errors if e.code == "Internal"]
