"""Fixtures: the dev server, brokers, and a tiny runner for ``async def`` tests.

pytest-asyncio is not used (one dependency less, and Debian 12's is older
than its current API): an ``async def`` test runs in a fresh event loop of
its own through ``asyncio.run``, under a deadline (``@pytest.mark.timeout(s)``,
default 60 s, stretched under valgrind). Any exception that reaches the
loop's exception handler (an unretrieved task exception, a failing
callback) fails the test: nothing the client does may raise where nobody
can catch it.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, fake_broker

from harness import Broker, DevServer, slack  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "timeout(seconds): deadline of an async test")


def run_async(coro: Any, timeout: float) -> Any:
    problems: List[Dict[str, Any]] = []

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx))
        return await asyncio.wait_for(coro, timeout)

    try:
        result = asyncio.run(main())
    finally:
        gc.collect()  # "Task exception was never retrieved" shows at collection
    if problems:
        lines = [f"{p.get('message')}: {p.get('exception')!r}" for p in problems]
        raise AssertionError("unhandled in the event loop:\n  " + "\n  ".join(lines))
    return result


@pytest.hookimpl(tryfirst=True)  # type: ignore[misc]
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in pyfuncitem.funcargs.items() if k in params}
    marker = pyfuncitem.get_closest_marker("timeout")
    timeout = float(marker.args[0]) if marker else 60.0
    run_async(fn(**kwargs), slack(timeout))
    return True


@pytest.fixture(scope="session")
def devserver() -> Iterator[DevServer]:
    s = DevServer()
    s.start()
    yield s
    s.cleanup()


@pytest.fixture
def server(devserver: DevServer) -> DevServer:
    """The dev server, its behaviours, counters and events reset."""
    devserver.reset()
    return devserver


# The broker most tests share: commandTimeout 3 s so a test can see the
# broker's own default timeout at work.
SHARED_BROKER_CONFIG: Dict[str, Any] = {"commandTimeout": 3000}


@pytest.fixture(scope="module")
def module_broker(devserver: DevServer) -> Iterator[Broker]:
    b = Broker(devserver, SHARED_BROKER_CONFIG)
    b.start()
    yield b
    rc = b.stop()
    log = b.log_text()
    b.cleanup()
    assert rc == 0, f"volt-broker exited with {rc} (valgrind: 99 = leaks or errors); log:\n{log}"


@pytest.fixture
def broker(module_broker: Broker, server: DevServer) -> Broker:
    """The shared broker, its upstream ready."""
    module_broker.wait_ready()
    return module_broker


@pytest.fixture
def make_broker(devserver: DevServer) -> Iterator[Callable[..., Broker]]:
    """Brokers of a test's own (restarted, killed, configured apart); each
    must exit cleanly at the end if it still runs."""
    made: List[Broker] = []

    def make(config: Optional[Dict[str, Any]] = None, start: bool = True) -> Broker:
        b = Broker(devserver, config)
        made.append(b)
        if start:
            b.start()
        return b

    yield make
    bad = []
    for b in made:
        if b.proc is not None:
            rc = b.stop()
            if rc != 0:
                bad.append(f"exit {rc}; log:\n{b.log_text()}")
        b.cleanup()
    assert not bad, "a broker did not exit cleanly: " + "\n".join(bad)
