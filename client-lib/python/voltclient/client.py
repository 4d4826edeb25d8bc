"""VoltClient: the asyncio client of volt-broker.

The broker keeps the one upstream socket.io session to the VOLT server;
this client speaks proto/PROTOCOL.md (version 2) to it over its Unix
socket, and offers the TypeScript ``ClusterDaemonClient``'s concepts in
Python's idiom (``async with``, ``await``, decorators for handlers).

How a client lives
------------------
A background task (the *supervisor*) owns the connection to the broker:
it connects, says ``hello``, and on ``welcome`` sets the session up again
from the client's own state: every handler registered (one ``register``),
every message filter subscribed; the emits kept while there was no broker
go, in order, once it is ready. Handlers and subscriptions are client
state, not connection state, so they survive broker restarts. When the connection is lost the
supervisor retries with jittered exponential backoff (``reconnect_min`` to
``reconnect_max``) until the client is closed.

"Ready" (``is_ready()``, ``on_connected``, what ``connect()`` waits for)
means: a broker session, the broker's upstream registered with the server
(the ``connected`` event), and this session's register/subscribe frames
answered, so a command that reaches the server after that finds our
handlers. ``on_connected`` and ``on_disconnected`` alternate strictly: a
disconnect is announced only after a connect was, whether the upstream
dropped (the broker's ``disconnected`` event, with its reason) or the
broker itself went away (reason ``"broker gone"``).

Exactly once
------------
Every request (``send_command``, and the broker-local ops: ``status``,
``ping``, ``daemon_password``, acknowledged emits) completes exactly once:
with the broker's ``result``; with ``Timeout`` when its local deadline
passes first; or when the connection ends. A ``send_command`` caught by
the end of the connection fails with ``SOCKET_NOT_READY``, as when the
upstream drops under it (libvoltclient says ``BrokerGone`` there); the
others fail with ``BrokerGone``. An ``error`` frame never completes anything
(protocol v2): it goes to ``on_error``. Inbound calls are answered exactly
once too: with the handler's return value, with ``HandlerError`` (or the
code of a raised :class:`VoltError`) when it raises, or not at all when the
connection is gone by then (the broker has already answered the server
``HandlerError``).

A bad broker
------------
A frame this client cannot read (not msgpack, not a map, over
``max_frame``) or a connection cut in the middle of a frame is a broken
broker connection: it is reported through ``on_error`` with what was
wrong, the connection is closed, and the client reconnects as after any
other loss. Nothing the broker sends raises out of the client's callbacks.

Threads
-------
A client belongs to the event loop it was connected in; use it from that
loop's thread only. Different clients are independent.

Times are in seconds (floats), as everywhere in asyncio; the wire carries
milliseconds.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import os
import random
import sys
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    List,
    Optional,
    Set,
    Tuple,
    TypeVar,
)

from . import wire
from .errors import ErrorCode, VoltError
from .paths import default_socket_path

__all__ = ["VoltClient", "Subscription", "PROTOCOL_VERSION"]

log = logging.getLogger("voltclient")

PROTOCOL_VERSION = 2

Handler = Callable[[Any], Any]
MessageCallback = Callable[[str, Any], Any]
H = TypeVar("H", bound=Handler)
C = TypeVar("C", bound=Callable[..., Any])

_SOCKET_NOT_READY = ErrorCode.SOCKET_NOT_READY.value
_BROKER_GONE = ErrorCode.BROKER_GONE.value
_TIMEOUT = ErrorCode.TIMEOUT.value
_HANDLER_ERROR = ErrorCode.HANDLER_ERROR.value

# A handler's error message is cut to this many characters: it travels to
# the server in one packet with everything else.
_MAX_ERROR_MESSAGE = 8192

# How often pending requests are checked against their local deadlines
# (seconds): a deadline may be noticed this much late.
_SWEEP_INTERVAL = 0.1


# Field types of the frames the broker sends (PROTOCOL.md): name -> (type,
# required). A frame of one of these ops with a field missing or of another
# type is bad input, which ends the connection as in every client library;
# unknown ops and keys are ignored (a newer broker may send more).
_INT = "int"
_FRAME_FIELDS: Dict[str, Dict[str, Tuple[Any, bool]]] = {
    "welcome": {"version": (_INT, True), "max_frame": (_INT, True), "state": (str, True),
                "timeout_ms": (_INT, True), "name": (str, False), "max_timeout_ms": (_INT, False),
                "team_cluster_id": (str, False), "reason": (str, False), "code": (str, False),
                "message": (str, False)},
    "result": {"id": (_INT, True), "ok": (bool, True), "code": (str, False),
               "message": (str, False), "server_code": (str, False)},
    "pong": {"id": (_INT, True)},
    "call": {"id": (_INT, True), "command": (str, True), "timeout_ms": (_INT, False)},
    "message": {"type": (str, True)},
    "event": {"event": (str, True), "state": (str, False), "reason": (str, False),
              "code": (str, False), "message": (str, False), "team_cluster_id": (str, False)},
    "error": {"code": (str, True), "message": (str, False), "id": (_INT, False),
              "about": (str, False)},
}


def _frame_problem(f: Dict[str, Any]) -> Optional[str]:
    """Why a frame of a known op is unusable, or None."""
    op = f.get("op")
    if not isinstance(op, str):
        return "a frame without an op"
    fields = _FRAME_FIELDS.get(op)
    if fields is None:
        return None
    for name, (kind, required) in fields.items():
        v = f.get(name)
        if v is None:
            if required:
                return f"a {op!r} frame without {name!r}"
        elif kind is _INT:
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                return f"a {op!r} frame with a {type(v).__name__} {name!r} (expected an unsigned integer)"
        elif not isinstance(v, kind):
            return f"a {op!r} frame with a {type(v).__name__} {name!r} (expected {kind.__name__})"
    return None


def _name_ok(s: str, max_bytes: int) -> bool:
    """1..max_bytes of UTF-8 without control characters (C0, DEL, C1),
    the broker's rule for commands, message types and error codes."""
    try:
        n = len(s.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        return False
    if not 1 <= n <= max_bytes:
        return False
    for ch in s:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o <= 0x9F:
            return False
    return True


def _check_name(what: str, s: object, max_bytes: int = 256) -> str:
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    if not _name_ok(s, max_bytes):
        raise ValueError(
            f"{what} {s!r} is not usable: 1..{max_bytes} bytes of UTF-8 without control characters"
        )
    return s


def _str_or(v: object, dflt: str) -> str:
    return v if isinstance(v, str) else dflt


class _Pending:
    """One request waiting for its result: a future (a caller awaits it)
    or a callback (the client's own background ops), and its deadline."""

    __slots__ = ("fut", "cb", "deadline", "timeout", "upstream", "what")

    def __init__(
        self,
        fut: Optional["asyncio.Future[Any]"],
        cb: Optional[Callable[[Optional[VoltError], Any], None]],
        upstream: bool,
        what: str,
    ) -> None:
        self.fut = fut
        self.cb = cb
        self.deadline = 0.0  # loop time
        self.timeout = 0.0
        self.upstream = upstream  # a send_command: ends with SOCKET_NOT_READY
        self.what = what

    def settle(self, err: Optional[VoltError], value: Any = None) -> None:
        fut = self.fut
        if fut is not None:
            if not fut.done():
                if err is None:
                    fut.set_result(value)
                else:
                    fut.set_exception(err)
        elif self.cb is not None:
            self.cb(err, value)


class Subscription:
    """A message callback registered with :meth:`VoltClient.on_message`;
    ``cancel()`` removes it."""

    __slots__ = ("_client", "match", "type", "callback", "active")

    def __init__(self, client: "VoltClient", match: str, type: str, callback: MessageCallback) -> None:
        self._client = client
        self.match = match  # "all", "exact" or "prefix"
        self.type = type  # "" for "all"
        self.callback = callback
        self.active = True

    def matches(self, msg_type: str) -> bool:
        if self.match == "all":
            return True
        if self.match == "exact":
            return msg_type == self.type
        return msg_type.startswith(self.type)

    def cancel(self) -> None:
        self._client.off_message(self)

    def __repr__(self) -> str:
        return f"<Subscription {self.match} {self.type!r} active={self.active}>"


class _Connection(asyncio.Protocol):
    """One connection to the broker. Everything it sees goes to the
    client, tagged with this connection so a late event of an old
    connection is recognised and ignored."""

    def __init__(self, client: "VoltClient", max_frame: int) -> None:
        self.client = client
        self.reader = wire.FrameReader(max_frame)
        self.transport: Optional[asyncio.Transport] = None
        self.paused = False
        self.drain_waiters: List["asyncio.Future[None]"] = []
        self.lost: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
        # Why we are closing it ourselves (a bad frame), for the report.
        self.fail_reason: Optional[str] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client._on_data(self, data)

    def eof_received(self) -> Optional[bool]:
        return False  # close our side too

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.paused = False
        self._wake_drain()
        try:
            self.client._on_connection_lost(self, exc)
        finally:
            if not self.lost.done():
                self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def drained(self) -> None:
        while self.paused:
            w = asyncio.get_running_loop().create_future()
            self.drain_waiters.append(w)
            await w

    def abort(self, reason: str) -> None:
        if self.fail_reason is None:
            self.fail_reason = reason
        if self.transport is not None:
            self.transport.abort()


class VoltClient:
    """A connection to the local volt-broker, shared VOLT session behind it.

    ::

        async with VoltClient(name="my-service") as c:
            @c.handler("list-files")
            async def list_files(payload):
                return os.listdir(payload["path"])

            stats = await c.send_command("get-container-stats", {"containerId": "c-1"})
            await c.emit("exposure-snapshot", {"analysisId": 7})

    Parameters (times in seconds):

    - ``socket_path``: the broker's socket; ``None``: the shared rule
      (``$VOLT_BROKER_SOCKET``, the per-user broker, ``/run/volt/broker.sock``).
    - ``name``: a label in the broker's logs and status (default: the program name).
    - ``connect_timeout``: how long ``connect()`` waits for the upstream to
      become ready (default 20, the seed's socket timeout).
    - ``reconnect``: reconnect to the broker by itself (default ``True``);
      ``reconnect_min`` / ``reconnect_max``: the backoff's first delay and cap.
    - ``attempt_timeout``: one connection attempt (socket + hello/welcome).
    - ``command_timeout``: the default timeout of ``send_command``;
      ``None`` (default): the broker's ``commandTimeout``.
    - ``timeout_grace``: a request's local deadline is its timeout plus
      this, so the broker's ``COMMAND_TIMEOUT`` normally comes first.
    - ``local_timeout``: deadline of what the broker answers itself
      (status, ping, credentials, acknowledged emits).
    - ``max_frame``: the largest frame accepted from the broker.
    - ``max_emit_buffer``: bytes of emits kept while there is no broker.
    """

    def __init__(
        self,
        socket_path: Optional[str] = None,
        name: Optional[str] = None,
        *,
        connect_timeout: float = 20.0,
        reconnect: bool = True,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        attempt_timeout: float = 5.0,
        command_timeout: Optional[float] = None,
        timeout_grace: float = 1.0,
        local_timeout: float = 10.0,
        max_frame: int = wire.DEFAULT_MAX_FRAME,
        max_emit_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        for label, value in (
            ("connect_timeout", connect_timeout),
            ("reconnect_min", reconnect_min),
            ("reconnect_max", reconnect_max),
            ("attempt_timeout", attempt_timeout),
            ("local_timeout", local_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{label} must be > 0, not {value!r}")
        if reconnect_max < reconnect_min:
            raise ValueError("reconnect_max must be >= reconnect_min")
        if command_timeout is not None and not command_timeout > 0:
            raise ValueError(f"command_timeout must be > 0 or None, not {command_timeout!r}")
        if not timeout_grace >= 0:
            raise ValueError(f"timeout_grace must be >= 0, not {timeout_grace!r}")
        if not 1 <= max_frame <= wire.HARD_MAX_FRAME:
            raise ValueError(f"max_frame must be 1..{wire.HARD_MAX_FRAME}")
        if name is None:
            name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        name.encode("utf-8")  # a str msgpack cannot send (lone surrogates) fails here
        self._socket_path = socket_path if socket_path is not None else default_socket_path()
        self._name = name
        self._connect_timeout = connect_timeout
        self._reconnect = reconnect
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._attempt_timeout = attempt_timeout
        self._command_timeout = command_timeout
        self._timeout_grace = timeout_grace
        self._local_timeout = local_timeout
        self._max_frame = max_frame
        self._max_emit_buffer = max_emit_buffer

        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._encoder = wire.Encoder()
        self._supervisor: Optional["asyncio.Task[None]"] = None
        self._closing = False
        self._fatal: Optional[VoltError] = None  # stops reconnecting (VersionMismatch)
        self._attempt_error: Optional[VoltError] = None

        # The connection and its session.
        self._conn: Optional[_Connection] = None
        self._session = False  # welcome received on _conn
        self._welcome_fut: Optional["asyncio.Future[None]"] = None
        self._out: List[bytes] = []
        self._flush_scheduled = False
        self._next_id = 1

        # What the broker told us.
        self._broker_name = ""
        self._send_max_frame = wire.DEFAULT_MAX_FRAME
        self._broker_timeout_ms = 30000
        self._broker_max_timeout_ms = 0
        self._upstream_state = ""
        self._upstream_reason = ""
        self._upstream_ready = False
        self._team_cluster_id = ""
        self._last_upstream_error: Optional[VoltError] = None

        # Readiness as the user sees it (see the module's essay).
        self._setup_pending = 0
        self._announced = False
        # connect() waiters also fail early when waiting cannot help;
        # wait_ready() waiters only at their deadline or close().
        self._ready_waiters: List["asyncio.Future[None]"] = []
        self._connect_waiters: List["asyncio.Future[None]"] = []

        self._pending: Dict[int, _Pending] = {}
        self._sweeper: Optional[asyncio.TimerHandle] = None
        self._handlers: Dict[str, Handler] = {}
        self._subs: List[Subscription] = []
        self._filters: Dict[Tuple[str, str], int] = {}
        self._emit_buffer: Deque[Tuple[Dict[str, Any], int, Optional["asyncio.Future[None]"]]] = (
            collections.deque()
        )
        self._emit_buffer_bytes = 0
        self._tasks: Set["asyncio.Task[Any]"] = set()

        self._on_connected: List[Callable[[], Any]] = []
        self._on_disconnected: List[Callable[[str], Any]] = []
        self._on_error: List[Callable[[VoltError], Any]] = []

        # Counters, for people and tests.
        self.stats: Dict[str, int] = collections.defaultdict(int)

    # ------------------------------------------------------------------
    # Properties

    @property
    def socket_path(self) -> str:
        return self._socket_path

    @property
    def name(self) -> str:
        return self._name

    @property
    def team_cluster_id(self) -> str:
        """The team cluster id in force at the broker (from ``welcome`` and
        each ``connected`` event); ``""`` before the first welcome or when
        the broker has none configured."""
        return self._team_cluster_id

    @property
    def broker_name(self) -> str:
        """The broker's name and version, e.g. ``volt-broker/0.1.0``."""
        return self._broker_name

    @property
    def upstream_state(self) -> str:
        """The upstream state as of the last welcome or event (``ready``,
        ``connecting``, ``backoff``, ``failed``, ...); ``""`` without a session."""
        return self._upstream_state

    @property
    def upstream_reason(self) -> str:
        return self._upstream_reason

    @property
    def command_timeout(self) -> float:
        """The timeout, in seconds, of a ``send_command`` given none: this
        client's ``command_timeout``, else the broker's ``commandTimeout``."""
        if self._command_timeout is not None:
            return self._command_timeout
        return self._broker_timeout_ms / 1000.0

    def is_ready(self) -> bool:
        """True when the broker's upstream session is connected and
        registered and this client's handlers and subscriptions are in place."""
        return self._announced

    def is_connected(self) -> bool:
        """True while there is a session with the broker (whatever its upstream does)."""
        return self._session

    # ------------------------------------------------------------------
    # Lifecycle

    async def __aenter__(self) -> "VoltClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: Optional[float] = None) -> None:
        """Connects to the broker and returns once the upstream is ready.

        Raises :class:`VoltError`: early when the upstream is ``failed``
        (a final error such as a refused enrollment, with its code), or the
        broker refuses this client (``VersionMismatch``, ``PermissionDenied``);
        at the deadline (``timeout``, default ``connect_timeout``) with the
        upstream's last error (``SocketConnectionFailed``,
        ``SocketRegistrationFailed``, ``EnrollmentFailed``, ...), or
        ``BrokerGone`` when no broker answered at all. A failed or cancelled
        connect() that started the client leaves it closed; on a client
        already running it only stops waiting.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop and self._supervisor is not None:
            raise RuntimeError("this VoltClient is running in another event loop")
        if timeout is None:
            timeout = self._connect_timeout
        if self._announced:
            return
        self._loop = loop
        started = self._supervisor is None or self._supervisor.done()
        if started:
            self._closing = False
            self._fatal = None
            self._attempt_error = None
            self._supervisor = loop.create_task(self._supervise())
        try:
            await self._wait_ready(timeout, connecting=True)
        except BaseException:
            # Only the connect() that started the client closes it again: a
            # second one on a running client (say, after a disconnect)
            # leaves it reconnecting.
            if started:
                await self.close()
            raise

    async def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Waits until :meth:`is_ready` (e.g. after a disconnect). Raises
        ``VoltError`` ``Timeout`` at the deadline (``None``: no limit), or
        ``BrokerGone`` when the client is closed meanwhile."""
        if self._supervisor is None:
            raise VoltError(_BROKER_GONE, "the client is not connected: call connect() first")
        await self._wait_ready(timeout, connecting=False)

    async def _wait_ready(self, timeout: Optional[float], connecting: bool) -> None:
        if self._announced:
            return
        loop = asyncio.get_running_loop()
        waiter: "asyncio.Future[None]" = loop.create_future()
        waiters = self._connect_waiters if connecting else self._ready_waiters
        waiters.append(waiter)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, self._ready_deadline, waiter, timeout, connecting)
        if connecting:
            # Conditions that are already final do not wait for the deadline.
            self._check_connect_final()
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in waiters:
                waiters.remove(waiter)

    def _ready_deadline(self, waiter: "asyncio.Future[None]", timeout: float, connecting: bool) -> None:
        if waiter.done():
            return
        if not connecting:
            waiter.set_exception(
                VoltError(_TIMEOUT, f"not ready within {timeout:g} s (upstream {self._state_text()})")
            )
            return
        waiter.set_exception(self._not_ready_error(timeout))

    def _not_ready_error(self, timeout: float) -> VoltError:
        """What connect() says at its deadline."""
        if not self._session:
            if self._attempt_error is not None:
                return self._attempt_error
            return VoltError(
                _BROKER_GONE, f"no answer from the broker at {self._socket_path} within {timeout:g} s"
            )
        if self._upstream_ready and self._setup_pending:
            return VoltError(
                _TIMEOUT,
                f"the broker did not answer this client's register/subscribe within {timeout:g} s",
            )
        err = self._last_upstream_error
        if err is not None:
            return VoltError(
                err.code,
                f"the upstream session did not become ready within {timeout:g} s: {err.message}",
                err.server_code,
            )
        return VoltError(
            ErrorCode.SOCKET_CONNECTION_FAILED.value,
            f"the upstream session did not become ready within {timeout:g} s "
            f"({self._state_text()})",
        )

    def _state_text(self) -> str:
        if not self._session:
            return "no broker session"
        if self._upstream_reason:
            return f"state {self._upstream_state}: {self._upstream_reason}"
        return f"state {self._upstream_state}"

    def _check_connect_final(self) -> None:
        """Fails connect() waiters at once when waiting cannot help: the
        upstream failed for good, the broker refused this client
        (VersionMismatch, PermissionDenied), or a failed attempt will not
        be retried."""
        err: Optional[VoltError] = None
        attempt = self._attempt_error
        if self._fatal is not None:
            err = self._fatal
        elif self._session and self._upstream_state == "failed":
            last = self._last_upstream_error
            why = self._upstream_reason or (last.message if last is not None else "") or "no reason given"
            text = f"the upstream session failed for good: {why}"
            if last is not None:
                err = VoltError(last.code, text, last.server_code)
            else:
                err = VoltError(ErrorCode.SOCKET_CONNECTION_FAILED.value, text)
        elif attempt is not None and not self._session:
            if not self._reconnect or attempt.code == ErrorCode.PERMISSION_DENIED:
                err = attempt
        if err is None:
            return
        for w in self._connect_waiters:
            if not w.done():
                w.set_exception(err)

    async def close(self) -> None:
        """Closes the connection and stops reconnecting. Pending requests
        fail (``SOCKET_NOT_READY`` for commands, ``BrokerGone`` for the
        rest), emits not yet sent are dropped, running handlers and async
        callbacks are cancelled. ``on_disconnected("client closed")`` runs
        if the client was ready. Safe to call twice."""
        self._closing = True
        sup, self._supervisor = self._supervisor, None
        conn = self._conn
        if conn is not None:
            self._flush_out()
            if conn.transport is not None:
                conn.transport.close()
        if sup is not None and not sup.done():
            sup.cancel()
            try:
                await sup
            except asyncio.CancelledError:
                pass
        if conn is not None:
            # connection_lost runs from the loop soon after close().
            try:
                await asyncio.wait_for(asyncio.shield(conn.lost), 5.0)
            except asyncio.TimeoutError:
                conn.abort("close")
        self._end_session(None, "client closed")
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._fail_emit_buffer("the client was closed before the emit was sent")
        for w in self._ready_waiters + self._connect_waiters:
            if not w.done():
                w.set_exception(VoltError(_BROKER_GONE, "the client was closed"))
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------
    # The supervisor: connect, hello, welcome, wait for the loss, back off.

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            conn: Optional[_Connection] = None
            try:
                try:
                    conn = await self._open_session()
                except (VoltError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a bug: say so, and keep the client alive
                    log.exception("voltclient: connection attempt failed")
                    raise VoltError(ErrorCode.INTERNAL.value, f"connection attempt failed: {exc!r}")
            except VoltError as err:
                self._attempt_error = err
                self.stats["connect_failures"] += 1
                if err.code == ErrorCode.VERSION_MISMATCH:
                    self._fatal = err
                    self._report(err)
                self._check_connect_final()
                if self._fatal is not None or not self._reconnect:
                    return
            if conn is not None:
                attempt = 0
                self._attempt_error = None
                # Shielded: cancelling the supervisor (close) must not
                # cancel the connection's own "lost" future.
                await asyncio.shield(conn.lost)
                if self._fatal is not None or not self._reconnect:
                    self._check_connect_final()
                    return
            if self._closing:
                return
            delay = min(self._reconnect_max, self._reconnect_min * (2 ** min(attempt, 30)))
            delay = delay / 2 + random.random() * delay / 2  # jitter: [d/2, d]
            attempt += 1
            await asyncio.sleep(delay)

    async def _open_session(self) -> _Connection:
        loop = asyncio.get_running_loop()
        path = self._socket_path
        max_frame = self._max_frame
        try:
            _, conn = await asyncio.wait_for(
                loop.create_unix_connection(lambda: _Connection(self, max_frame), path),
                self._attempt_timeout,
            )
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise VoltError(
                _BROKER_GONE,
                f"no broker at {path}: is volt-broker running? set VOLT_BROKER_SOCKET"
                f" ({exc.strerror or exc})",
            ) from None
        except PermissionError:
            raise VoltError(
                ErrorCode.PERMISSION_DENIED.value,
                f"cannot connect to the broker at {path}: permission denied"
                " (the socket's mode and group decide who may connect)",
            ) from None
        except asyncio.TimeoutError:
            raise VoltError(
                _BROKER_GONE,
                f"the broker at {path} did not accept within {self._attempt_timeout:g} s",
            ) from None
        except OSError as exc:
            raise VoltError(_BROKER_GONE, f"cannot connect to the broker at {path}: {exc}") from None
        if self._closing:
            conn.abort("client closed")
            raise VoltError(_BROKER_GONE, "the client was closed")
        if conn.lost.done():  # lost before we looked: no session to start
            raise VoltError(_BROKER_GONE, f"the broker at {path} closed the connection at once")
        self._conn = conn
        self._session = False
        self._welcome_fut = loop.create_future()
        hello: Dict[str, Any] = {
            "op": "hello",
            "min_version": PROTOCOL_VERSION,
            "max_version": PROTOCOL_VERSION,
            "name": self._name,
        }
        self._write(self._encoder.encode(hello))
        fut = self._welcome_fut
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._attempt_timeout)
        except asyncio.TimeoutError:
            conn.abort("no welcome")
            raise VoltError(
                _BROKER_GONE,
                f"the broker at {path} did not answer hello within {self._attempt_timeout:g} s",
            ) from None
        except VoltError:
            conn.abort("refused")
            raise
        finally:
            # Nobody else waits for this future: settle it so that a late
            # outcome is not reported as "never retrieved".
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()
        return conn

    # ------------------------------------------------------------------
    # Reading

    def _on_data(self, conn: _Connection, data: bytes) -> None:
        if conn is not self._conn:
            return
        reader = conn.reader
        reader.feed(data)
        while True:
            try:
                frame = reader.next()
            except wire.FrameError as exc:
                self._bad_broker(conn, exc.code, f"the broker sent a bad frame: {exc.message}")
                return
            if frame is None:
                return
            try:
                self._dispatch(frame)
            except Exception as exc:  # a bug here must not kill the connection silently
                log.exception("voltclient: error while handling a %r frame", frame.get("op"))
                self._bad_broker(conn, ErrorCode.INTERNAL.value, f"error handling a frame: {exc!r}")
                return
            if conn is not self._conn or conn.fail_reason is not None:
                return  # a callback closed the client, or the frame broke the session

    def _bad_broker(self, conn: _Connection, code: str, message: str) -> None:
        """The broker sent what it never should: report it, drop the
        connection; the supervisor reconnects."""
        if conn.fail_reason is not None:
            return
        self.stats["bad_frames"] += 1
        if not self._session:
            message += f" (is {self._socket_path} a volt-broker socket?)"
        err = VoltError(code, message)
        conn.fail_reason = message
        if self._welcome_fut is not None and not self._welcome_fut.done():
            self._welcome_fut.set_exception(err)
        self._report(err)
        conn.abort(message)

    def _dispatch(self, f: Dict[str, Any]) -> None:
        op = f.get("op")
        problem = _frame_problem(f)
        if problem is None and op == "welcome" and self._session:
            problem = "a second welcome"
        if problem is not None:
            if self._conn is not None:
                self._bad_broker(self._conn, ErrorCode.BAD_FRAME.value, f"the broker sent {problem}")
            return
        if not self._session:
            if op == "welcome":
                self._on_welcome(f)
            elif op == "error":
                self._on_hello_error(f)
            elif self._conn is not None:
                self._bad_broker(
                    self._conn, ErrorCode.BAD_REQUEST.value, f"the broker sent {op!r} before welcome"
                )
            return
        if op == "result" or op == "pong":
            self._on_result(f)
        elif op == "call":
            self._on_call(f)
        elif op == "message":
            self._on_message(f)
        elif op == "event":
            self._on_event(f)
        elif op == "error":
            self._on_error_frame(f)
        # Other ops (trace, a newer broker's) are not for us: ignored.

    def _on_welcome(self, f: Dict[str, Any]) -> None:
        conn = self._conn
        assert conn is not None
        fut = self._welcome_fut
        version = f.get("version")
        if version != PROTOCOL_VERSION:
            err = VoltError(
                ErrorCode.VERSION_MISMATCH.value,
                f"the broker chose protocol version {version!r}; this client speaks {PROTOCOL_VERSION}",
            )
            self._fatal = err
            conn.fail_reason = err.message
            if fut is not None and not fut.done():
                fut.set_exception(err)
            return
        mf = f.get("max_frame")
        self._send_max_frame = (
            mf if type(mf) is int and 0 < mf <= wire.HARD_MAX_FRAME else wire.DEFAULT_MAX_FRAME
        )
        self._broker_name = _str_or(f.get("name"), "")
        t = f.get("timeout_ms")
        self._broker_timeout_ms = t if type(t) is int and t > 0 else 30000
        t = f.get("max_timeout_ms")
        self._broker_max_timeout_ms = t if type(t) is int and t > 0 else 0
        self._team_cluster_id = _str_or(f.get("team_cluster_id"), self._team_cluster_id)
        self._upstream_state = _str_or(f.get("state"), "")
        self._upstream_reason = _str_or(f.get("reason"), "")
        self._upstream_ready = False  # the connected event follows when it is
        code = f.get("code")
        if isinstance(code, str) and code:
            self._last_upstream_error = VoltError(code, _str_or(f.get("message"), ""))
        self._session = True
        self.stats["sessions"] += 1
        self._setup_session()
        if fut is not None and not fut.done():
            fut.set_result(None)
        if self._upstream_state == "failed":
            self._check_connect_final()

    def _on_hello_error(self, f: Dict[str, Any]) -> None:
        code = _str_or(f.get("code"), ErrorCode.INTERNAL.value)
        message = _str_or(f.get("message"), "")
        err = VoltError(code, f"the broker refused this client: {message}")
        if code == ErrorCode.VERSION_MISMATCH:
            self._fatal = err
        fut = self._welcome_fut
        if fut is not None and not fut.done():
            fut.set_exception(err)

    def _on_result(self, f: Dict[str, Any]) -> None:
        rid = f.get("id")
        ent = self._pending.pop(rid, None) if type(rid) is int else None
        if ent is None:
            self.stats["unknown_results"] += 1
            return
        ok = f.get("ok")
        if ok is True or f["op"] == "pong":
            ent.settle(None, f.get("data"))
        elif ok is False:
            sc = f.get("server_code")
            ent.settle(
                VoltError(
                    _str_or(f.get("code"), ErrorCode.INTERNAL.value),
                    _str_or(f.get("message"), ""),
                    sc if isinstance(sc, str) else None,
                )
            )
        else:
            ent.settle(VoltError(ErrorCode.BAD_FRAME.value, "the broker sent a result without ok"))

    def _on_event(self, f: Dict[str, Any]) -> None:
        state = f.get("state")
        if isinstance(state, str):
            self._upstream_state = state
        ev = f.get("event")
        if ev == "connected":
            self._team_cluster_id = _str_or(f.get("team_cluster_id"), self._team_cluster_id)
            self._upstream_ready = True
            self._upstream_reason = ""
            self._last_upstream_error = None
            self._maybe_announce()
        elif ev == "disconnected":
            reason = _str_or(f.get("reason"), "")
            self._upstream_reason = reason
            self._upstream_ready = False
            self._announce_down(reason)
        elif ev == "error":
            err = VoltError(
                _str_or(f.get("code"), ErrorCode.INTERNAL.value), _str_or(f.get("message"), "")
            )
            self._last_upstream_error = err
            self._report(err)
        if self._upstream_state == "failed":
            self._check_connect_final()

    def _on_error_frame(self, f: Dict[str, Any]) -> None:
        message = _str_or(f.get("message"), "")
        about = f.get("about")
        if isinstance(about, str) and about:
            message = f"{message} (about {about})"
        self._report(VoltError(_str_or(f.get("code"), ErrorCode.INTERNAL.value), message))

    def _on_message(self, f: Dict[str, Any]) -> None:
        mtype = f.get("type")
        if not isinstance(mtype, str):
            self._report(VoltError(ErrorCode.BAD_FRAME.value, "message frame without a type"))
            return
        data = f.get("data")
        self.stats["messages"] += 1
        for sub in list(self._subs):
            if sub.active and sub.matches(mtype):
                self._call_user(sub.callback, (mtype, data), f"message callback for {mtype!r}")

    # ------------------------------------------------------------------
    # Session set-up and readiness

    def _setup_session(self) -> None:
        """Re-creates this client's state at the broker: its handlers and
        subscriptions. (The emits kept meanwhile go once it is ready.)"""
        self._setup_pending = 0
        if self._handlers:
            self._setup_pending += 1
            self._send_bg(
                {"op": "register", "commands": list(self._handlers)},
                "register",
                setup=True,
            )
        for match, mtype in list(self._filters):
            self._setup_pending += 1
            self._send_bg(self._sub_frame("subscribe", match, mtype), "subscribe", setup=True)

    def _setup_done_one(self) -> None:
        if self._setup_pending > 0:
            self._setup_pending -= 1
            if self._setup_pending == 0:
                self._maybe_announce()

    def _maybe_announce(self) -> None:
        if self._announced or not self._session or not self._upstream_ready or self._setup_pending:
            return
        self._announced = True
        self.stats["ready"] += 1
        # Emits kept while there was no broker go first, in order, now that
        # the upstream can take them (whether or not the broker would have
        # kept them itself).
        while self._emit_buffer:
            frame, size, fut = self._emit_buffer.popleft()
            self._emit_buffer_bytes -= size
            self._send_emit_now(frame, fut)
        for w in self._ready_waiters + self._connect_waiters:
            if not w.done():
                w.set_result(None)
        for cb in list(self._on_connected):
            self._call_user(cb, (), "on_connected callback")

    def _announce_down(self, reason: str) -> None:
        if not self._announced:
            return
        self._announced = False
        for cb in list(self._on_disconnected):
            self._call_user(cb, (reason,), "on_disconnected callback")

    def _on_connection_lost(self, conn: _Connection, exc: Optional[Exception]) -> None:
        if conn is not self._conn:
            return
        had_session = self._session
        lost_code = _BROKER_GONE
        if conn.fail_reason is not None:
            why = conn.fail_reason
        else:
            part = conn.reader.partial()
            if part is not None:
                # A frame cut short is bad input (BadFrame), as in every
                # client library; a close between frames is the broker going.
                lost_code = ErrorCode.BAD_FRAME.value
                why = (
                    f"the broker closed the connection in the middle of a frame"
                    f" ({part[0]} of {part[1]} bytes)"
                )
            elif exc is not None:
                why = f"connection error: {exc}"
            else:
                why = "the broker closed the connection"
        self._conn = None
        self._out = []
        if self._welcome_fut is not None and not self._welcome_fut.done():
            self._welcome_fut.set_exception(
                VoltError(_BROKER_GONE, f"no welcome from the broker at {self._socket_path}: {why}")
            )
        if self._closing:
            self._end_session(None, "client closed")
            return
        self.stats["connections_lost"] += 1
        self._end_session(why, "broker gone")
        if had_session:
            self._report(VoltError(lost_code, f"connection to the broker at {self._socket_path} lost: {why}"))

    def _end_session(self, why: Optional[str], down_reason: str) -> None:
        """The session is over: every pending request ends now, once."""
        self._session = False
        self._upstream_ready = False
        self._setup_pending = 0
        if why is None:
            req_msg = local_msg = "the client was closed"
        else:
            req_msg = f"the connection to the broker was lost ({why})"
            local_msg = f"connection to the broker lost: {why}"
        pending, self._pending = self._pending, {}
        for ent in pending.values():
            if ent.upstream:
                ent.settle(VoltError(_SOCKET_NOT_READY, req_msg))
            else:
                ent.settle(VoltError(_BROKER_GONE, local_msg))
        self._announce_down(down_reason)

    # ------------------------------------------------------------------
    # Writing

    def _write(self, data: bytes) -> None:
        # Frames written in one loop turn leave in one write: with many
        # requests in flight this is one syscall per turn, not per frame.
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush_out)

    def _flush_out(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        conn = self._conn
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return
        conn.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _encode(self, frame: Dict[str, Any], what: str) -> bytes:
        try:
            data = self._encoder.encode(frame)
        except TypeError as exc:  # a type msgpack has no form for
            raise TypeError(f"{what}: cannot be encoded as msgpack: {exc}") from None
        except ValueError as exc:  # out of range, too deep, a str that is not UTF-8
            raise ValueError(f"{what}: cannot be encoded as msgpack: {exc}") from None
        if len(data) - 4 > self._send_max_frame:
            raise VoltError(
                ErrorCode.FRAME_TOO_LARGE.value,
                f"{what}: {len(data) - 4} bytes is over the broker's max_frame {self._send_max_frame}",
            )
        return data

    def _take_id(self) -> int:
        rid = self._next_id
        self._next_id = rid + 1 if rid < 0xFFFFFFFFFFFFFFFF else 1
        return rid

    def _start(self, frame: Dict[str, Any], ent: _Pending, timeout: float) -> None:
        """Sends frame (which gets an id) as the request ent. Raises
        (nothing sent) when the frame cannot be encoded."""
        rid = self._take_id()
        frame["id"] = rid
        data = self._encode(frame, ent.what)
        loop = self._loop
        assert loop is not None
        ent.timeout = timeout
        ent.deadline = loop.time() + timeout
        self._pending[rid] = ent
        if self._sweeper is None:
            self._sweeper = loop.call_later(_SWEEP_INTERVAL, self._sweep)
        self._write(data)

    def _sweep(self) -> None:
        """Fails the requests whose local deadline has passed. One timer
        for all of them, every _SWEEP_INTERVAL while any is pending: a
        timer per request (call_later + cancel) cost more than the rest of
        a request's bookkeeping together, and these deadlines are a safety
        net behind the broker's own COMMAND_TIMEOUT, not a precise clock."""
        self._sweeper = None
        loop = self._loop
        if loop is None or not self._pending:
            return
        now = loop.time()
        expired = [rid for rid, ent in self._pending.items() if ent.deadline <= now]
        for rid in expired:
            ent = self._pending.pop(rid)
            self.stats["timeouts"] += 1
            ent.settle(VoltError(_TIMEOUT, f"no answer to {ent.what} within {ent.timeout:g} s"))
        if self._pending and self._sweeper is None:
            # A scan is one comparison per pending request: with very many
            # pending, scan less often (1 s per million).
            interval = max(_SWEEP_INTERVAL, len(self._pending) / 1_000_000)
            self._sweeper = loop.call_later(interval, self._sweep)

    def _send_bg(self, frame: Dict[str, Any], what: str, setup: bool = False) -> None:
        """A broker op whose result nobody awaits: a refusal goes to
        on_error. ``setup`` ops count towards readiness."""
        gen_conn = self._conn

        def done(err: Optional[VoltError], _value: Any) -> None:
            if err is not None and self._conn is gen_conn and err.code not in (
                _BROKER_GONE,
                _SOCKET_NOT_READY,
            ):
                self._report(VoltError(err.code, f"{what}: {err.message}", err.server_code))
            if setup and self._conn is gen_conn:
                self._setup_done_one()

        self._start(frame, _Pending(None, done, False, what), self._local_timeout)

    async def _local(self, frame: Dict[str, Any], what: str) -> Any:
        if not self._session:
            raise VoltError(_BROKER_GONE, f"{what}: not connected to the broker")
        conn = self._conn
        if conn is not None and conn.paused:
            await conn.drained()
            if not self._session:
                raise VoltError(_BROKER_GONE, f"{what}: not connected to the broker")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        ent = _Pending(fut, None, False, what)
        self._start(frame, ent, self._local_timeout)
        try:
            return await fut
        except asyncio.CancelledError:
            self._forget(frame["id"], ent)
            raise

    def _forget(self, rid: int, ent: _Pending) -> None:
        if self._pending.get(rid) is ent:
            del self._pending[rid]

    # ------------------------------------------------------------------
    # sendCommand / emit

    async def send_command(
        self, command: str, payload: Any = None, timeout: Optional[float] = None
    ) -> Any:
        """Sends a command to the VOLT server and returns its ``data``
        (``None`` when the server gave none).

        ``payload``: any msgpack-able value (``None``: no payload); ``bytes``
        travel as binary. ``timeout`` in seconds; ``None``: this client's
        ``command_timeout``, else the broker's ``commandTimeout``.

        Raises :class:`VoltError` with ``SOCKET_NOT_READY`` (no broker, no
        upstream, or the connection was lost while waiting),
        ``COMMAND_TIMEOUT``, ``COMMAND_REJECTED`` (``server_code`` and
        ``message`` are the server's), ``PayloadTooLarge``, ``NotJson``,
        ``LimitExceeded``, ``ShuttingDown``, ``FrameTooLarge``, or
        ``Timeout`` (no answer from the broker by the local deadline);
        ``TypeError``/``ValueError`` for arguments that cannot be sent.
        """
        if not isinstance(command, str):
            raise TypeError(f"command must be a str, not {type(command).__name__}")
        if timeout is None:
            timeout = self._command_timeout
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")
        if not self._session:
            raise VoltError(_SOCKET_NOT_READY, "not connected to the broker")
        conn = self._conn
        if conn is not None and conn.paused:
            await conn.drained()
            if not self._session:
                raise VoltError(_SOCKET_NOT_READY, "not connected to the broker")
        frame: Dict[str, Any] = {"op": "request", "command": command}
        if payload is not None:
            frame["payload"] = payload
        if timeout is not None:
            ms = min(max(1, int(timeout * 1000 + 0.5)), 0xFFFFFFFF)
            frame["timeout_ms"] = ms
        else:
            ms = self._broker_timeout_ms
        if self._broker_max_timeout_ms and ms > self._broker_max_timeout_ms:
            ms = self._broker_max_timeout_ms
        loop = self._loop
        assert loop is not None
        fut = loop.create_future()
        ent = _Pending(fut, None, True, f"command {command!r}")
        self._start(frame, ent, ms / 1000.0 + self._timeout_grace)
        try:
            return await fut
        except asyncio.CancelledError:
            self._forget(frame["id"], ent)
            raise

    async def emit(
        self, type: str, data: Any = None, *, volatile: bool = False, ack: bool = False
    ) -> None:
        """Sends a fire-and-forget message ``{type, data}`` upstream.

        Like socket.io-client's buffer, an emit made while the upstream is
        not ready is kept and sent once it is (by the broker, PROTOCOL.md
        v2; and by this client while there is no broker at all, up to
        ``max_emit_buffer`` bytes, until the client is ready again), unless
        ``volatile``: then it fails with ``EmitFailed`` at once. Without ``ack`` a failure upstream comes to ``on_error``
        (``EmitFailed``); with ``ack=True`` this waits for the broker's
        answer and raises it. Returns once the frame is handed to the
        socket (it waits while the broker is not reading).
        """
        _check_name("message type", type)
        if not isinstance(volatile, bool) or not isinstance(ack, bool):
            raise TypeError("volatile and ack must be bool")
        frame: Dict[str, Any] = {"op": "emit", "type": type}
        if data is not None:
            frame["data"] = data
        if volatile:
            frame["volatile"] = True
        what = f"emit {type!r}"
        # Kept here without a broker session, and after one comes back
        # until the kept ones have gone (so that emits keep their order).
        if not self._session or (self._emit_buffer and not volatile):
            if volatile:
                raise VoltError(
                    ErrorCode.EMIT_FAILED.value, f"{what}: not connected to the broker (volatile)"
                )
            size = len(self._encode(frame, what))
            if self._emit_buffer_bytes + size > self._max_emit_buffer:
                raise VoltError(
                    ErrorCode.EMIT_FAILED.value,
                    f"{what}: not connected to the broker and its emit buffer"
                    f" ({self._max_emit_buffer} bytes) is full",
                )
            fut: Optional["asyncio.Future[None]"] = None
            if ack:
                fut = asyncio.get_running_loop().create_future()
            self._emit_buffer.append((frame, size, fut))
            self._emit_buffer_bytes += size
            self.stats["emits_kept"] += 1
            if fut is not None:
                await fut
            return
        conn = self._conn
        if conn is not None and conn.paused:
            await conn.drained()
        if not ack:
            self._write(self._encode(frame, what))
            return
        fut = asyncio.get_running_loop().create_future()
        ent = self._send_emit_now(frame, fut)
        try:
            await fut
        except asyncio.CancelledError:
            if ent is not None:
                self._forget(frame["id"], ent)
            raise

    def _send_emit_now(
        self, frame: Dict[str, Any], fut: Optional["asyncio.Future[None]"]
    ) -> Optional[_Pending]:
        what = f"emit {frame['type']!r}"
        if fut is None:
            self._write(self._encode(frame, what))
            return None
        ent = _Pending(fut, None, False, what)
        try:
            self._start(frame, ent, self._local_timeout)
        except (TypeError, ValueError, VoltError) as exc:
            if not fut.done():
                fut.set_exception(exc)
        return ent

    def _fail_emit_buffer(self, why: str) -> None:
        dropped = len(self._emit_buffer)
        while self._emit_buffer:
            _, _, fut = self._emit_buffer.popleft()
            if fut is not None and not fut.done():
                fut.set_exception(VoltError(ErrorCode.EMIT_FAILED.value, why))
        self._emit_buffer_bytes = 0
        if dropped:
            self.stats["emits_dropped"] += dropped
            log.info("voltclient: %d kept emit(s) dropped: %s", dropped, why)

    # ------------------------------------------------------------------
    # Inbound commands (registerHandler)

    def register_handler(self, command: str, handler: Handler) -> None:
        """Registers (or replaces) the handler of an inbound ``command``,
        now and on every future broker session.

        ``handler(payload)`` returns the answer's data, or an awaitable of
        it (``async def`` handlers run as tasks, many at once). Raising
        answers ``HandlerError`` with ``str(exc)`` as the message, or the
        code of a raised :class:`VoltError`. A refusal by the broker
        (``LimitExceeded``) comes to ``on_error``.
        """
        _check_name("command", command)
        if not callable(handler):
            raise TypeError("handler must be callable")
        new = command not in self._handlers
        self._handlers[command] = handler
        if new and self._session:
            self._send_bg({"op": "register", "commands": [command]}, f"register {command!r}")

    def handler(self, command: str) -> Callable[[H], H]:
        """Decorator form of :meth:`register_handler`::

            @client.handler("list-files")
            async def list_files(payload): ...
        """
        _check_name("command", command)

        def deco(fn: H) -> H:
            self.register_handler(command, fn)
            return fn

        return deco

    def unregister_handler(self, command: str) -> bool:
        """Removes the handler of ``command``; False if there was none.
        Calls already running finish and are answered."""
        if self._handlers.pop(command, None) is None:
            return False
        if self._session:
            self._send_bg({"op": "unregister", "commands": [command]}, f"unregister {command!r}")
        return True

    def _on_call(self, f: Dict[str, Any]) -> None:
        cid = f.get("id")
        command = f.get("command")
        if type(cid) is not int:
            self._report(VoltError(ErrorCode.BAD_FRAME.value, "call frame without an id"))
            return
        conn = self._conn
        if not isinstance(command, str):
            self._reply_error(conn, cid, ErrorCode.BAD_REQUEST.value, "call without a command")
            return
        self.stats["calls"] += 1
        fn = self._handlers.get(command)
        if fn is None:
            self._reply_error(
                conn, cid, ErrorCode.NO_HANDLER.value, f"{command}: no handler in {self._name}"
            )
            return
        try:
            res = fn(f.get("payload"))
        except Exception as exc:
            self._handler_failed(conn, cid, command, exc)
            return
        if inspect.isawaitable(res):
            loop = self._loop
            assert loop is not None
            task = loop.create_task(self._finish_call(conn, cid, command, res))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._reply_ok(conn, cid, command, res)

    async def _finish_call(
        self, conn: Optional[_Connection], cid: int, command: str, aw: Awaitable[Any]
    ) -> None:
        try:
            res = await aw
        except asyncio.CancelledError:
            self._reply_error(conn, cid, _HANDLER_ERROR, f"the handler of {command} was cancelled")
            raise
        except Exception as exc:
            self._handler_failed(conn, cid, command, exc)
            return
        self._reply_ok(conn, cid, command, res)

    def _handler_failed(
        self, conn: Optional[_Connection], cid: int, command: str, exc: Exception
    ) -> None:
        if isinstance(exc, VoltError):
            code, message = exc.code, exc.message
        else:
            code, message = _HANDLER_ERROR, str(exc) or type(exc).__name__
            self._report(
                VoltError(_HANDLER_ERROR, f"the handler of {command} raised {type(exc).__name__}: {exc}")
            )
        self._reply_error(conn, cid, code, message)

    def _reply_ok(self, conn: Optional[_Connection], cid: int, command: str, data: Any) -> None:
        if conn is None or conn is not self._conn or not self._session:
            self.stats["replies_dropped"] += 1
            return
        frame: Dict[str, Any] = {"op": "reply", "id": cid, "ok": True}
        if data is not None:
            frame["data"] = data
        try:
            encoded = self._encode(frame, f"the answer of {command}")
        except (TypeError, ValueError, VoltError) as exc:
            message = f"the handler of {command} returned what cannot be sent: {exc}"
            self._report(VoltError(_HANDLER_ERROR, message))
            self._reply_error(conn, cid, _HANDLER_ERROR, message)
            return
        self._write(encoded)

    def _reply_error(self, conn: Optional[_Connection], cid: int, code: str, message: str) -> None:
        if conn is None or conn is not self._conn or not self._session:
            self.stats["replies_dropped"] += 1
            return
        if not isinstance(code, str) or not _name_ok(code, 64):
            code = _HANDLER_ERROR
        if not isinstance(message, str):
            message = str(message)
        if len(message) > _MAX_ERROR_MESSAGE:
            message = message[: _MAX_ERROR_MESSAGE - 3] + "..."
        frame = {"op": "reply", "id": cid, "ok": False, "code": code, "message": message}
        try:
            self._write(self._encoder.encode(frame))
        except (TypeError, ValueError):  # a message with lone surrogates
            frame["message"] = message.encode("utf-8", "replace").decode("utf-8")
            self._write(self._encoder.encode(frame))

    # ------------------------------------------------------------------
    # Inbound messages (onMessage)

    @staticmethod
    def _sub_frame(op: str, match: str, mtype: str) -> Dict[str, Any]:
        frame: Dict[str, Any] = {"op": op, "match": match}
        if match != "all":
            frame["type"] = mtype
        return frame

    def on_message(
        self,
        callback: MessageCallback,
        type: Optional[str] = None,
        prefix: Optional[str] = None,
    ) -> Subscription:
        """Calls ``callback(type, data)`` (plain or ``async``) for each
        inbound message: all of them, those whose type equals ``type``, or
        those whose type starts with ``prefix``. Kept across reconnects.
        Returns a :class:`Subscription` (``.cancel()`` to remove it)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        if type is not None and prefix is not None:
            raise ValueError("give type or prefix, not both")
        if type is not None:
            match, key = "exact", _check_name("type", type)
        elif prefix is not None:
            match, key = "prefix", _check_name("prefix", prefix)
        else:
            match, key = "all", ""
        sub = Subscription(self, match, key, callback)
        self._subs.append(sub)
        fkey = (match, key)
        n = self._filters.get(fkey, 0)
        self._filters[fkey] = n + 1
        if n == 0 and self._session:
            self._send_bg(self._sub_frame("subscribe", match, key), f"subscribe {match} {key!r}")
        return sub

    def off_message(self, sub: Subscription) -> None:
        """Removes a subscription (same as ``sub.cancel()``); a no-op when
        it was removed already."""
        if not sub.active or sub not in self._subs:
            return
        sub.active = False
        self._subs.remove(sub)
        fkey = (sub.match, sub.type)
        n = self._filters.get(fkey, 0) - 1
        if n > 0:
            self._filters[fkey] = n
            return
        self._filters.pop(fkey, None)
        if self._session:
            self._send_bg(
                self._sub_frame("unsubscribe", sub.match, sub.type), f"unsubscribe {sub.match}"
            )

    # ------------------------------------------------------------------
    # Events (onConnected / onDisconnected / onError)

    def on_connected(self, callback: C) -> C:
        """``callback()`` each time the client becomes ready (see
        :meth:`is_ready`). Plain or ``async``; usable as a decorator."""
        self._on_connected.append(callback)
        return callback

    def on_disconnected(self, callback: C) -> C:
        """``callback(reason)`` each time a ready client stops being ready:
        the upstream's reason, ``"broker gone"`` or ``"client closed"``."""
        self._on_disconnected.append(callback)
        return callback

    def on_error(self, callback: C) -> C:
        """``callback(err)`` with a :class:`VoltError` for errors nobody
        awaits: upstream errors (``HeartbeatFailed``, ``SocketConnectionFailed``,
        ...), failed emits (``EmitFailed``), handler exceptions
        (``HandlerError``), refused registrations, a lost broker
        (``BrokerGone``) and bad frames from it. Without any callback these
        are logged (logger ``voltclient``) instead."""
        self._on_error.append(callback)
        return callback

    def remove_listener(self, callback: Callable[..., Any]) -> bool:
        """Removes a callback given to on_connected/on_disconnected/on_error."""
        found = False
        lists: Tuple[List[Any], ...] = (self._on_connected, self._on_disconnected, self._on_error)
        for lst in lists:
            while callback in lst:
                lst.remove(callback)
                found = True
        return found

    def _report(self, err: VoltError) -> None:
        self.stats["errors"] += 1
        if not self._on_error:
            log.warning("voltclient %s: %s", self._name, err)
            return
        for cb in list(self._on_error):
            self._call_user(cb, (err,), "on_error callback", report=False)

    def _call_user(
        self, cb: Callable[..., Any], args: Tuple[Any, ...], what: str, report: bool = True
    ) -> None:
        """Runs a user callback; a coroutine it returns runs as a task.
        What it raises is reported, never thrown into the connection."""
        try:
            res = cb(*args)
        except Exception as exc:
            self._callback_failed(what, exc, report)
            return
        if inspect.isawaitable(res):
            loop = self._loop
            assert loop is not None
            task = loop.create_task(self._await_user(res, what, report))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _await_user(self, aw: Awaitable[Any], what: str, report: bool) -> None:
        try:
            await aw
        except Exception as exc:
            self._callback_failed(what, exc, report)

    def _callback_failed(self, what: str, exc: Exception, report: bool) -> None:
        if report and self._on_error:
            self._report(VoltError(_HANDLER_ERROR, f"{what} raised {type(exc).__name__}: {exc}"))
        else:
            log.error("voltclient %s: %s raised", self._name, what, exc_info=exc)

    # ------------------------------------------------------------------
    # Broker operations

    async def status(self) -> Dict[str, Any]:
        """The broker's status map (PROTOCOL.md "Status map")."""
        data = await self._local({"op": "status"}, "status")
        if not isinstance(data, dict):
            raise VoltError(ErrorCode.BAD_FRAME.value, "status: the broker's answer is not a map")
        return data

    async def ping(self) -> float:
        """A round trip to the broker (not upstream); returns its time in seconds."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self._local({"op": "ping"}, "ping")
        return loop.time() - t0

    async def flush(self) -> None:
        """Returns once the broker has handled everything sent before
        (registrations, subscriptions, emits): a ping round trip."""
        await self.ping()

    async def daemon_password(self) -> str:
        """The daemon password the broker uses now (it may have been rotated
        by enrollment). Only for root, the broker's own user and whoever
        the broker's configuration allows: others get ``VoltError``
        ``PermissionDenied`` saying so. Asked each time, never cached."""
        try:
            data = await self._local({"op": "credential", "name": "daemonPassword"}, "daemon_password")
        except VoltError as err:
            if err.code == ErrorCode.PERMISSION_DENIED:
                raise VoltError(
                    err.code,
                    f"the broker does not give the daemon password to this process"
                    f" (uid {os.getuid()}): {err.message}",
                ) from None
            raise
        if not isinstance(data, str):
            raise VoltError(ErrorCode.BAD_FRAME.value, "daemon_password: the answer is not a string")
        return data

    async def fetch_team_cluster_id(self) -> str:
        """Asks the broker for its team cluster id (``team_cluster_id`` has
        it already without a round trip)."""
        data = await self._local({"op": "credential", "name": "teamClusterId"}, "team_cluster_id")
        if not isinstance(data, str):
            raise VoltError(ErrorCode.BAD_FRAME.value, "team_cluster_id: the answer is not a string")
        return data

    def __repr__(self) -> str:
        return (
            f"<VoltClient {self._name!r} at {self._socket_path!r}"
            f" {'ready' if self._announced else ('session' if self._session else 'no session')}>"
        )


