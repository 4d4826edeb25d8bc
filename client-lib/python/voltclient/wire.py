"""The local protocol's framing as a pure codec: no socket, no event loop.

Like hiredis's reader (and proto/reader.c on the C side): feed it bytes as
they come, cut at any point, and ask it for the next frame. What to do
about a bad frame is the caller's decision; this module only says which
kind of bad it is:

- a length prefix over ``max_frame`` is *fatal*: the stream can no longer
  be trusted (where would the next frame start?), and the reader refuses
  to go on;
- a body that is not one msgpack map with string keys (or a length of 0)
  is *not* fatal: its bytes are dropped and the stream stays in sync, as
  proto/PROTOCOL.md says for frames the broker receives.

Decoding never trusts a length: a prefix is checked against ``max_frame``
before anything is buffered for it, and msgpack-python bounds each string,
array and map by the size of the body it was given, so a hostile peer
cannot make this module allocate more than the frames it really sent.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Optional, Tuple

import msgpack

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HARD_MAX_FRAME",
    "FrameError",
    "FrameReader",
    "Encoder",
]

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
#: Largest max_frame this package accepts as an option (as libvoltclient).
HARD_MAX_FRAME = 256 * 1024 * 1024

_HEADER = struct.Struct(">I")
_unpackb = msgpack.unpackb

Frame = Dict[str, Any]


class FrameError(Exception):
    """A frame that could not be read.

    ``code`` is ``"FrameTooLarge"`` (fatal: the reader stops) or
    ``"BadFrame"`` (the frame was dropped; the next one can be read).
    """

    def __init__(self, code: str, message: str, fatal: bool) -> None:
        super().__init__(code, message, fatal)
        self.code = code
        self.message = message
        self.fatal = fatal

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class FrameReader:
    """Cuts a byte stream into frames and decodes each body.

    ``feed()`` appends bytes; ``next()`` returns the next frame (a ``dict``
    with ``str`` keys), ``None`` when no whole frame is buffered yet, or
    raises :class:`FrameError`. Binary (msgpack ``bin``) arrives as
    ``bytes``, strings as ``str``, integers exactly (up to 64 bits).
    """

    __slots__ = ("_buf", "_pos", "_max_frame", "_broken")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if not 1 <= max_frame <= HARD_MAX_FRAME:
            raise ValueError(f"max_frame must be 1..{HARD_MAX_FRAME}, not {max_frame}")
        self._buf = bytearray()
        self._pos = 0
        self._max_frame = max_frame
        self._broken: Optional[FrameError] = None

    def feed(self, data: bytes) -> None:
        if self._broken is not None:
            return  # nothing after a fatal error can be framed again
        if self._pos and self._pos == len(self._buf):
            # Everything before was consumed: start afresh, no copy.
            self._buf = bytearray(data)
            self._pos = 0
        else:
            self._buf += data

    def buffered(self) -> int:
        """Bytes held that do not make a whole frame yet."""
        return len(self._buf) - self._pos

    def partial(self) -> Optional[Tuple[int, int]]:
        """For a frame begun but not complete: (bytes held, bytes it needs
        including the 4-byte prefix); ``None`` when nothing is held."""
        have = len(self._buf) - self._pos
        if have == 0:
            return None
        if have < 4:
            return (have, 4)
        (n,) = _HEADER.unpack_from(self._buf, self._pos)
        return (have, 4 + n)

    def next(self) -> Optional[Frame]:
        if self._broken is not None:
            raise self._broken
        buf = self._buf
        pos = self._pos
        have = len(buf) - pos
        if have < 4:
            self._compact()
            return None
        (n,) = _HEADER.unpack_from(buf, pos)
        if n > self._max_frame:
            self._broken = FrameError(
                "FrameTooLarge",
                f"frame length {n} is over max_frame {self._max_frame}",
                fatal=True,
            )
            self._buf = bytearray()
            self._pos = 0
            raise self._broken
        if n == 0:
            self._pos = pos + 4
            raise FrameError("BadFrame", "empty frame (length 0)", fatal=False)
        end = pos + 4 + n
        if len(buf) < end:
            self._compact()
            return None
        self._pos = end
        # A slice copies the body (one memcpy); cheaper than the memoryviews
        # that would avoid it, for frames of the usual size.
        return decode_body(buf[pos + 4 : end])

    def _compact(self) -> None:
        # Drop consumed bytes once they are the larger part of the buffer,
        # so a long-lived connection does not keep growing its buffer.
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0


def decode_body(body: Any) -> Frame:
    """Decodes one frame body (bytes-like) into a map, or raises a
    non-fatal :class:`FrameError`."""
    try:
        obj = _unpackb(body, raw=False, strict_map_key=True)
    except msgpack.ExtraData:
        raise FrameError("BadFrame", "bytes left over after the frame's map", fatal=False) from None
    except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
        # Invalid msgpack, a truncated value, invalid UTF-8 in a string, a
        # non-string map key, nesting deeper than msgpack's own limit.
        raise FrameError("BadFrame", f"not valid msgpack: {exc}", fatal=False) from None
    if type(obj) is not dict:
        raise FrameError("BadFrame", f"frame body is a {type(obj).__name__}, not a map", fatal=False)
    # strict_map_key lets only str and bytes through: a bin key is the one left.
    for key in obj:
        if type(key) is not str:
            raise FrameError("BadFrame", "frame map has a key that is not a string", fatal=False)
    return obj


class Encoder:
    """Encodes frames: 4-byte big-endian length, then the msgpack map.

    One per connection (a msgpack Packer is not shareable across threads).
    ``bytes``/``bytearray``/``memoryview`` become msgpack ``bin``, ``str``
    becomes ``str``, tuples become arrays.
    """

    __slots__ = ("_packer",)

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True, autoreset=True)

    def encode(self, frame: Frame) -> bytes:
        """The whole frame, prefix included. Raises ``TypeError`` or
        ``ValueError`` for values msgpack cannot encode (objects, sets,
        integers beyond 64 bits, nesting deeper than msgpack allows)."""
        try:
            body: bytes = self._packer.pack(frame)
        except OverflowError as exc:
            raise ValueError(f"integer out of the 64-bit range: {exc}") from None
        return _HEADER.pack(len(body)) + body
