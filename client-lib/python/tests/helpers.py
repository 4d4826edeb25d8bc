"""What the integration tests share: a client with test settings, a
recorder of its event callbacks, and a way to call blocking helpers."""

from __future__ import annotations

import asyncio
import time
from typing import Any, List

from harness import Broker, slack
from voltclient import VoltClient, VoltError


def client(broker: Broker, name: str = "pytest", **kw: Any) -> VoltClient:
    kw.setdefault("reconnect_min", 0.05)
    kw.setdefault("reconnect_max", 0.2)
    kw.setdefault("connect_timeout", slack(15))
    kw.setdefault("attempt_timeout", slack(5))
    kw.setdefault("local_timeout", slack(10))
    return VoltClient(broker.sock, name, **kw)


class Recorder:
    """Collects what a client's event callbacks see."""

    def __init__(self, c: VoltClient) -> None:
        self.connected = 0
        self.disconnected: List[str] = []
        self.errors: List[VoltError] = []
        self.changed = asyncio.Event()
        c.on_connected(self._on_connected)
        c.on_disconnected(self._on_disconnected)
        c.on_error(self._on_error)

    def _on_connected(self) -> None:
        self.connected += 1
        self.changed.set()

    def _on_disconnected(self, reason: str) -> None:
        self.disconnected.append(reason)
        self.changed.set()

    def _on_error(self, err: VoltError) -> None:
        self.errors.append(err)
        self.changed.set()

    def codes(self) -> List[str]:
        return [e.code for e in self.errors]

    async def until(self, cond: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not cond():
            left = end - time.monotonic()
            assert left > 0, f"timed out waiting for {what}; errors {self.errors}"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass


async def in_thread(fn: Any, *args: Any) -> Any:
    """Blocking control-API calls run off the loop, so the client keeps working."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
