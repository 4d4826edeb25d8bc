"""Units without a broker: the socket path rule, errors, argument checks."""

from __future__ import annotations

import os
import pickle
import tempfile

import pytest

from voltclient import ErrorCode, VoltClient, VoltError, default_socket_path
from voltclient.paths import SYSTEM_SOCKET, user_socket_path


def test_socket_path_env_wins() -> None:
    env = {"VOLT_BROKER_SOCKET": "/x/y.sock", "XDG_RUNTIME_DIR": "/nonexistent"}
    assert default_socket_path(env) == "/x/y.sock"


def test_socket_path_user_broker_when_it_exists() -> None:
    with tempfile.TemporaryDirectory() as d:
        env = {"XDG_RUNTIME_DIR": d}
        assert user_socket_path(env) == os.path.join(d, "volt", "broker.sock")
        assert default_socket_path(env) == SYSTEM_SOCKET  # not there yet
        os.mkdir(os.path.join(d, "volt"))
        open(os.path.join(d, "volt", "broker.sock"), "w").close()
        assert default_socket_path(env) == os.path.join(d, "volt", "broker.sock")


def test_socket_path_without_xdg() -> None:
    assert user_socket_path({}, uid=1234) == "/tmp/volt-1234/broker.sock"
    # An empty VOLT_BROKER_SOCKET is as good as unset.
    got = default_socket_path({"VOLT_BROKER_SOCKET": ""}, uid=987654321)
    assert got == SYSTEM_SOCKET


def test_client_uses_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLT_BROKER_SOCKET", "/tmp/somewhere.sock")
    assert VoltClient().socket_path == "/tmp/somewhere.sock"
    assert VoltClient("/explicit.sock").socket_path == "/explicit.sock"


def test_volt_error_fields_text_and_pickle() -> None:
    e = VoltError("COMMAND_REJECTED", "no such container", server_code="NotFound")
    assert e.code == "COMMAND_REJECTED" and e.server_code == "NotFound"
    assert e.code == ErrorCode.COMMAND_REJECTED
    assert str(e) == "COMMAND_REJECTED: no such container (server code NotFound)"
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.code, e2.message, e2.server_code) == (e.code, e.message, e.server_code)
    assert str(VoltError(ErrorCode.TIMEOUT, "x")) == "Timeout: x"
    assert VoltError(ErrorCode.TIMEOUT).code == "Timeout"
    assert isinstance(VoltError("SomethingNew", "from a newer broker").code, str)


def test_error_codes_are_the_protocols() -> None:
    # Every code of proto/PROTOCOL.md's table is here, by its wire name.
    here = os.path.dirname(os.path.abspath(__file__))
    proto = os.path.join(here, "..", "..", "..", "proto", "PROTOCOL.md")
    with open(proto, encoding="utf-8") as f:
        text = f.read()
    table = text.split("## Error codes", 1)[1]
    wire_codes = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            wire_codes.add(line.split("`")[1])
    ours = {c.value for c in ErrorCode}
    assert wire_codes, "no codes parsed from PROTOCOL.md"
    assert wire_codes - ours == set(), f"missing codes: {wire_codes - ours}"
    assert ours - wire_codes == {"BrokerGone", "Timeout"}, ours - wire_codes


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        VoltClient("/x", connect_timeout=0)
    with pytest.raises(ValueError):
        VoltClient("/x", reconnect_min=2, reconnect_max=1)
    with pytest.raises(ValueError):
        VoltClient("/x", command_timeout=-1)
    with pytest.raises(ValueError):
        VoltClient("/x", max_frame=0)


def test_names_are_checked_before_anything_is_sent() -> None:
    c = VoltClient("/nonexistent.sock")
    for bad in ["", "a\nb", "a\x7fb", "a\x85b", "x" * 257, "\ud800"]:
        with pytest.raises(ValueError):
            c.register_handler(bad, lambda p: p)
    with pytest.raises(TypeError):
        c.register_handler(b"bytes", lambda p: p)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.register_handler("ok", "not callable")  # type: ignore[arg-type]
    c.register_handler("é" * 128, lambda p: p)  # 256 bytes: the limit
    with pytest.raises(ValueError):
        c.on_message(lambda t, d: None, type="a", prefix="b")
    with pytest.raises(ValueError):
        c.on_message(lambda t, d: None, prefix="")
    assert c.unregister_handler("never-registered") is False
    assert c.unregister_handler("é" * 128) is True


async def test_send_before_connect_is_socket_not_ready() -> None:
    c = VoltClient("/nonexistent.sock")
    with pytest.raises(VoltError) as e:
        await c.send_command("echo")
    assert e.value.code == "SOCKET_NOT_READY"
    with pytest.raises(VoltError) as e:
        await c.status()
    assert e.value.code == "BrokerGone"
    with pytest.raises(VoltError) as e:
        await c.emit("t", 1, volatile=True)
    assert e.value.code == "EmitFailed"
    with pytest.raises(TypeError):
        await c.send_command(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await c.send_command("echo", timeout=0)
    with pytest.raises(ValueError):
        await c.emit("", 1)
    await c.close()  # never connected: a no-op
