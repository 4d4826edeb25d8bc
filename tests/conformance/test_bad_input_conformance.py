"""The shared bad-input cases (bad-input.json here) run by the Python
client against its own fake broker (client-lib/python/tests/fake_broker.py).
Any exception that reaches the event loop fails a case (conftest's runner)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

HERE = Path(__file__).resolve().parent
PYDIR = HERE.parent.parent / "client-lib" / "python"
sys.path.insert(0, str(PYDIR / "tests"))
sys.path.insert(0, str(PYDIR))

from conftest import run_async  # noqa: E402
from fake_broker import FakeBroker, FakeConn  # noqa: E402
from helpers import Recorder  # noqa: E402
from voltclient import VoltClient, VoltError  # noqa: E402

SPEC = json.loads((HERE / "bad-input.json").read_text(encoding="utf-8"))


async def case(bad: Dict[str, Any]) -> None:
    async def script(conn: FakeConn) -> None:
        await conn.handshake()
        if conn.index == 0:
            await conn.expect("request")  # the command in flight
            conn.send_raw(bytes.fromhex(bad["hex"]))
            await conn.drain()
            if bad["close"]:
                await conn.close()
                return
            await asyncio.sleep(3600)  # the client must be the one to hang up
        await conn.serve()

    async with FakeBroker(script) as fb:
        c = VoltClient(fb.path, "bad-input", reconnect_min=0.02, reconnect_max=0.1, connect_timeout=5, attempt_timeout=3)
        rec = Recorder(c)
        settled: List[Any] = []
        async with c:
            try:
                await asyncio.wait_for(c.send_command("never", {}), 5)
                settled.append("data")
            except VoltError as e:
                settled.append(e)
            err = settled[0]
            assert isinstance(err, VoltError) and err.code == "SOCKET_NOT_READY", (
                f"the command in flight: expected SOCKET_NOT_READY, got {err!r}"
            )
            await rec.until(lambda: bad["error"] in rec.codes(), 5, f"an error {bad['error']} (got {rec.errors})")
            await rec.until(lambda: len(fb.conns) == 2 and c.is_ready(), 5, "the reconnect")
            got = await asyncio.wait_for(c.send_command("echo", {"after": bad["name"]}), 5)
            assert got == {"after": bad["name"]}, f"expected {{'after': {bad['name']!r}}}, got {got!r}"
            assert len(settled) == 1, f"the command in flight: expected 1 settlement, got {settled}"


@pytest.mark.parametrize("bad", SPEC["cases"], ids=[b["name"] for b in SPEC["cases"]])
def test_bad_input(bad: Dict[str, Any]) -> None:
    run_async(case(bad), 30)
