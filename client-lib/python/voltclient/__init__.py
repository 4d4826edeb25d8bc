"""voltclient: an asyncio client of volt-broker, the local VOLT IPC broker.

Speaks proto/PROTOCOL.md (version 2) over the broker's Unix socket; the
only dependency is msgpack. See README.md beside this package.
"""

from .client import PROTOCOL_VERSION, Subscription, VoltClient
from .errors import ErrorCode, VoltError
from .paths import default_socket_path

__all__ = [
    "PROTOCOL_VERSION",
    "ErrorCode",
    "Subscription",
    "VoltClient",
    "VoltError",
    "default_socket_path",
]

__version__ = "0.1.0"
