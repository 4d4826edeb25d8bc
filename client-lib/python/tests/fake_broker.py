"""A local peer that pretends to be volt-broker, for bad-input tests.

It is a Unix socket server in the test's own event loop; for each
connection it runs a script the test gives (an ``async def`` taking a
:class:`FakeConn`), so a test decides byte by byte what the client is sent:
garbage, a frame cut in half, an oversized length, a wrong welcome. It
stands in for the broker only (the local protocol is ours); the VOLT
server is never faked.
"""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
from typing import Any, Awaitable, Callable, Dict, List, Optional

from voltclient import wire

Script = Callable[["FakeConn"], Awaitable[None]]


class ClientGone(Exception):
    """The client closed the connection while the script waited for a frame."""


class FakeConn:
    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.index = index  # 0 for the first connection the server accepted
        self.r = reader
        self.w = writer
        self.frames = wire.FrameReader()
        self.enc = wire.Encoder()
        self.received: List[Dict[str, Any]] = []

    async def read_frame(self, timeout: float = 10) -> Optional[Dict[str, Any]]:
        """The next frame from the client, or None at EOF."""
        while True:
            f = self.frames.next()
            if f is not None:
                self.received.append(f)
                return f
            data = await asyncio.wait_for(self.r.read(65536), timeout)
            if not data:
                return None
            self.frames.feed(data)

    async def expect(self, op: str, timeout: float = 10) -> Dict[str, Any]:
        while True:
            f = await self.read_frame(timeout)
            if f is None:
                raise ClientGone(f"EOF while waiting for {op}")
            if f.get("op") == op:
                return f

    def send(self, frame: Dict[str, Any]) -> None:
        self.w.write(self.enc.encode(frame))

    def send_raw(self, data: bytes) -> None:
        self.w.write(data)

    def send_body(self, body: bytes) -> None:
        """A correctly framed but arbitrary body."""
        self.w.write(struct.pack(">I", len(body)) + body)

    async def drain(self) -> None:
        await self.w.drain()

    async def handshake(self, state: str = "ready", **welcome: Any) -> Dict[str, Any]:
        """Reads hello; sends a v2 welcome (and `connected` when ready)."""
        hello = await self.expect("hello")
        w = {
            "op": "welcome",
            "version": 2,
            "max_frame": 16 * 1024 * 1024,
            "name": "fake-broker/0",
            "state": state,
            "timeout_ms": 30000,
            "max_timeout_ms": 600000,
            "team_cluster_id": "cluster-fake",
            "reason": "fake",
        }
        w.update(welcome)
        self.send(w)
        if state == "ready":
            self.send({"op": "event", "event": "connected", "state": "ready", "team_cluster_id": "cluster-fake"})
        await self.drain()
        return hello

    async def serve(self) -> None:
        """Behaves like a minimal broker until the client goes: answers
        register/subscribe/ping/status with ok, echoes requests."""
        while True:
            f = await self.read_frame(timeout=3600)
            if f is None:
                return
            op = f.get("op")
            if op in ("register", "unregister", "subscribe", "unsubscribe", "emit", "status"):
                if "id" in f:
                    self.send({"op": "result", "id": f["id"], "ok": True})
            elif op == "ping":
                self.send({"op": "pong", "id": f["id"]})
            elif op == "request":
                self.send({"op": "result", "id": f["id"], "ok": True, "data": f.get("payload")})
            await self.drain()

    async def close(self) -> None:
        self.w.close()
        try:
            await self.w.wait_closed()
        except (ConnectionError, OSError):
            pass


class FakeBroker:
    def __init__(self, script: Script) -> None:
        self.dir = tempfile.mkdtemp(prefix="volt-pytest-fake-")
        self.path = os.path.join(self.dir, "broker.sock")
        self.script = script
        self.conns: List[FakeConn] = []
        self.errors: List[BaseException] = []
        self.server: Optional[asyncio.AbstractServer] = None
        self._tasks: List["asyncio.Task[None]"] = []
        self.accepted = asyncio.Event()

    async def __aenter__(self) -> "FakeBroker":
        self.server = await asyncio.start_unix_server(self._on_conn, self.path)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for c in self.conns:
            await c.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.rmdir(self.dir)
        # A script that failed is a test failure, not a silent oddity.
        real = [e for e in self.errors if not isinstance(e, (ConnectionError, asyncio.CancelledError))]
        assert not real, f"fake broker script failed: {real!r}"

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConn(len(self.conns), reader, writer)
        self.conns.append(conn)
        self.accepted.set()
        task = asyncio.current_task()
        if task is not None:
            self._tasks.append(task)
        try:
            await self.script(conn)
        except (asyncio.CancelledError, ConnectionError, ClientGone):
            pass  # the client may hang up at any point: that is its right
        except BaseException as e:  # reported at exit
            self.errors.append(e)
        finally:
            await conn.close()

    async def wait_conns(self, n: int, timeout: float = 10) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while len(self.conns) < n:
            assert loop.time() < end, f"only {len(self.conns)} of {n} connections"
            self.accepted.clear()
            try:
                await asyncio.wait_for(self.accepted.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
