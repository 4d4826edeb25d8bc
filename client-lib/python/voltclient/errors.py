"""Errors of the volt-broker client: one exception type, told apart by code.

The TypeScript client throws one ``DaemonClientError`` whose ``code`` says
what went wrong; this package does the same with :class:`VoltError`. The
codes are the wire names of proto/PROTOCOL.md ("Error codes"), so what a
service sees is what ``volt-inspect`` and the broker's log show, plus the
two the client libraries add (``BrokerGone``, ``Timeout``).

Mistakes in the arguments of a call (a command that is not a string, a
message type that is too long, a payload that msgpack cannot encode) are
the caller's bugs, not conditions to handle: they raise the usual
``TypeError`` / ``ValueError`` and nothing is sent.
"""

from __future__ import annotations

import enum
from typing import Optional

__all__ = ["ErrorCode", "VoltError"]


class ErrorCode(str, enum.Enum):
    """The codes a :class:`VoltError` can carry.

    A ``str`` enum, so ``err.code == ErrorCode.COMMAND_TIMEOUT`` and
    ``err.code == "COMMAND_TIMEOUT"`` both work. ``VoltError.code`` itself
    is a plain ``str``: a newer broker may send a code this list lacks.
    """

    # The seed's request codes.
    SOCKET_NOT_READY = "SOCKET_NOT_READY"
    COMMAND_TIMEOUT = "COMMAND_TIMEOUT"
    COMMAND_REJECTED = "COMMAND_REJECTED"
    # Upstream session errors (connect(), on_error).
    ENROLLMENT_FAILED = "EnrollmentFailed"
    SOCKET_CONNECTION_FAILED = "SocketConnectionFailed"
    SOCKET_REGISTRATION_FAILED = "SocketRegistrationFailed"
    HEARTBEAT_FAILED = "HeartbeatFailed"
    # Handlers and emits.
    HANDLER_ERROR = "HandlerError"
    HANDLER_TIMEOUT = "HandlerTimeout"
    NO_HANDLER = "NoHandler"
    EMIT_FAILED = "EmitFailed"
    # The local protocol and the broker's own checks.
    BAD_FRAME = "BadFrame"
    FRAME_TOO_LARGE = "FrameTooLarge"
    UNKNOWN_OP = "UnknownOp"
    BAD_REQUEST = "BadRequest"
    VERSION_MISMATCH = "VersionMismatch"
    PERMISSION_DENIED = "PermissionDenied"
    LIMIT_EXCEEDED = "LimitExceeded"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    DUPLICATE_ID = "DuplicateId"
    NOT_JSON = "NotJson"
    SHUTTING_DOWN = "ShuttingDown"
    INTERNAL = "Internal"
    # Added by the client libraries.
    BROKER_GONE = "BrokerGone"
    TIMEOUT = "Timeout"

    def __str__(self) -> str:
        return self.value


class VoltError(Exception):
    """An error with a protocol code.

    ``code``: the wire name (see :class:`ErrorCode`); ``message``: for
    people; ``server_code``: for ``COMMAND_REJECTED``, the VOLT server's own
    code (its ``message`` is then the server's too), else ``None``.

    A handler may raise ``VoltError(code, message)`` to answer the server
    with that code instead of ``HandlerError``.
    """

    code: str
    message: str
    server_code: Optional[str]

    def __init__(self, code: str, message: str = "", server_code: Optional[str] = None) -> None:
        code = str(code)
        super().__init__(code, message, server_code)
        self.code = code
        self.message = message
        self.server_code = server_code

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        if self.server_code is not None:
            text += f" (server code {self.server_code})"
        return text

    def __repr__(self) -> str:
        extra = f", server_code={self.server_code!r}" if self.server_code is not None else ""
        return f"VoltError({self.code!r}, {self.message!r}{extra})"
