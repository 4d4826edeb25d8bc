"""The pure codec: framing at any split point, and every kind of bad frame."""

from __future__ import annotations

import struct
from typing import Any, Dict, List

import msgpack
import pytest

from voltclient import wire


def frames_of(reader: wire.FrameReader) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    while True:
        f = reader.next()
        if f is None:
            return out
        out.append(f)


SAMPLES: List[Dict[str, Any]] = [
    {"op": "welcome", "version": 2, "max_frame": 16777216, "state": "ready"},
    {"op": "result", "id": 2**64 - 1, "ok": True, "data": {"big": -(2**63), "f": 0.1}},
    {"op": "message", "type": "t", "data": {"blob": b"\x00\x01\xff" * 100, "s": "é☃"}},
    {"op": "call", "id": 7, "command": "x", "payload": [None, True, False, [], {}]},
]


def test_roundtrip_keeps_types_exactly() -> None:
    enc = wire.Encoder()
    r = wire.FrameReader()
    for f in SAMPLES:
        r.feed(enc.encode(f))
    got = frames_of(r)
    assert got == SAMPLES
    assert isinstance(got[2]["data"]["blob"], bytes)
    assert got[1]["id"] == 2**64 - 1 and got[1]["data"]["big"] == -(2**63)
    assert r.buffered() == 0 and r.partial() is None


def test_every_split_point() -> None:
    enc = wire.Encoder()
    stream = b"".join(enc.encode(f) for f in SAMPLES)
    for cut in range(1, len(stream)):
        r = wire.FrameReader()
        r.feed(stream[:cut])
        got = frames_of(r)
        r.feed(stream[cut:])
        got += frames_of(r)
        assert got == SAMPLES, f"split at {cut}"


def test_byte_by_byte() -> None:
    enc = wire.Encoder()
    stream = b"".join(enc.encode(f) for f in SAMPLES)
    r = wire.FrameReader()
    got = []
    for i in range(len(stream)):
        r.feed(stream[i : i + 1])
        got += frames_of(r)
    assert got == SAMPLES


def test_partial_reports_progress() -> None:
    r = wire.FrameReader()
    r.feed(b"\x00\x00")
    assert r.partial() == (2, 4)
    r.feed(b"\x00\x64" + b"x" * 10)
    assert r.next() is None
    assert r.partial() == (14, 104)


def test_oversized_length_is_fatal_and_stays_so() -> None:
    r = wire.FrameReader(max_frame=1024)
    r.feed(struct.pack(">I", 1025))
    with pytest.raises(wire.FrameError) as e:
        r.next()
    assert e.value.code == "FrameTooLarge" and e.value.fatal
    assert "1025" in e.value.message and "1024" in e.value.message
    # Nothing after it can be framed again.
    r.feed(wire.Encoder().encode({"op": "x"}))
    with pytest.raises(wire.FrameError):
        r.next()


def test_max_frame_is_inclusive() -> None:
    body = msgpack.packb({"op": "x", "pad": "a" * 100})
    r = wire.FrameReader(max_frame=len(body))
    r.feed(struct.pack(">I", len(body)) + body)
    assert r.next() == {"op": "x", "pad": "a" * 100}


@pytest.mark.parametrize(
    "body, words",
    [
        (b"\xc1", "not valid msgpack"),  # 0xc1: never used
        (b"\x93\x01\x02", "not valid msgpack"),  # array of 3 with 2 items
        (msgpack.packb(42), "not a map"),
        (msgpack.packb([1, 2]), "not a map"),
        (msgpack.packb({"op": "x"}) + b"\x01", "left over"),
        (b"\x81\xa2\xff\xfe\x01", "not valid msgpack"),  # invalid UTF-8 key
        (msgpack.packb({1: "x"}), "not valid msgpack"),  # non-string key
        (msgpack.packb({b"op": "x"}, use_bin_type=True), "not a string"),  # bin key
    ],
)
def test_bad_bodies_are_dropped_and_stream_stays_in_sync(body: bytes, words: str) -> None:
    r = wire.FrameReader()
    good = wire.Encoder().encode({"op": "after"})
    r.feed(struct.pack(">I", len(body)) + body + good)
    with pytest.raises(wire.FrameError) as e:
        r.next()
    assert e.value.code == "BadFrame" and not e.value.fatal
    assert words in e.value.message, e.value.message
    assert r.next() == {"op": "after"}


def test_empty_frame_is_bad_not_fatal() -> None:
    r = wire.FrameReader()
    r.feed(b"\x00\x00\x00\x00" + wire.Encoder().encode({"op": "after"}))
    with pytest.raises(wire.FrameError) as e:
        r.next()
    assert e.value.code == "BadFrame" and not e.value.fatal
    assert r.next() == {"op": "after"}


def test_deep_nesting_is_a_bad_frame_not_a_crash() -> None:
    body = b"\x81\xa1k" + b"\x91" * 5000 + b"\xc0"  # {"k": [[[[...]]]]} 5000 deep
    r = wire.FrameReader()
    r.feed(struct.pack(">I", len(body)) + body)
    with pytest.raises(wire.FrameError) as e:
        r.next()
    assert e.value.code == "BadFrame"


def test_lying_lengths_inside_a_body_do_not_allocate() -> None:
    # A str32 claiming 4 GiB inside a 10-byte body.
    body = b"\x81\xa1k\xdb\xff\xff\xff\xff"
    r = wire.FrameReader()
    r.feed(struct.pack(">I", len(body)) + body)
    with pytest.raises(wire.FrameError):
        r.next()


def test_buffer_is_compacted() -> None:
    enc = wire.Encoder()
    r = wire.FrameReader()
    one = enc.encode({"op": "x", "pad": "p" * 1000})
    for _ in range(1000):
        r.feed(one + one[:10])
        r.next()
        r.feed(one[10:])
        r.next()
    assert r.buffered() == 0
    assert len(r._buf) < 10 * len(one)


def test_encoder_refuses_what_msgpack_cannot_carry() -> None:
    enc = wire.Encoder()
    with pytest.raises(TypeError):
        enc.encode({"op": "x", "v": object()})
    with pytest.raises(ValueError):
        enc.encode({"op": "x", "v": 2**64})
    with pytest.raises(ValueError):
        enc.encode({"op": "x", "v": -(2**63) - 1})
    # The packer is usable after a failure (no half-written state).
    assert wire.FrameReader().next() is None
    data = enc.encode({"op": "ok"})
    r = wire.FrameReader()
    r.feed(data)
    assert r.next() == {"op": "ok"}


def test_encoder_bytes_are_bin_and_str_is_str() -> None:
    data = wire.Encoder().encode({"op": "x", "b": b"\x00", "s": "\x00"})
    body = data[4:]
    assert struct.unpack(">I", data[:4])[0] == len(body)
    assert b"\xc4\x01\x00" in body  # bin8 of length 1
    assert b"\xa1\x00" in body  # fixstr of length 1


def test_max_frame_option_bounds() -> None:
    with pytest.raises(ValueError):
        wire.FrameReader(max_frame=0)
    with pytest.raises(ValueError):
        wire.FrameReader(max_frame=wire.HARD_MAX_FRAME + 1)
