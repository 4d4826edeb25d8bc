"""Where the broker's socket is, by the rule every volt client shares.

1. ``$VOLT_BROKER_SOCKET`` when it is set (and not empty);
2. else the per-user broker's socket, if it exists:
   ``$XDG_RUNTIME_DIR/volt/broker.sock``, or ``/tmp/volt-<uid>/broker.sock``
   when ``XDG_RUNTIME_DIR`` is not set;
3. else the system broker's ``/run/volt/broker.sock``.

Step 2 looks for the file so that a user who runs their own broker gets it
without configuration, and everybody else falls through to the system one.
"""

from __future__ import annotations

import os
from typing import Mapping, Optional

__all__ = ["SYSTEM_SOCKET", "default_socket_path", "user_socket_path"]

SYSTEM_SOCKET = "/run/volt/broker.sock"


def user_socket_path(env: Optional[Mapping[str, str]] = None, uid: Optional[int] = None) -> str:
    """The per-user broker's socket path (whether or not it exists)."""
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime:
        return os.path.join(runtime, "volt", "broker.sock")
    return f"/tmp/volt-{os.getuid() if uid is None else uid}/broker.sock"


def default_socket_path(env: Optional[Mapping[str, str]] = None, uid: Optional[int] = None) -> str:
    """The socket a client connects to when it is given none."""
    env = os.environ if env is None else env
    explicit = env.get("VOLT_BROKER_SOCKET", "")
    if explicit:
        return explicit
    user = user_socket_path(env, uid)
    if os.path.exists(user):
        return user
    return SYSTEM_SOCKET
