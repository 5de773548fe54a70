"""serializer="msgpack" against the official socket.io-client (Node, 4.8.x) with
socket.io-msgpack-parser 3.0.x: every packet is one binary Engine.IO message.

The server and handlers are those of test_socketio_client.py; only the serializer differs.
"""

from __future__ import annotations

import asyncio

import pytest
from test_socketio_client import MODES, Env, nested_binary_round_trips

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def mp_env(node_ready):
    e = Env()
    await e.start(serializer="msgpack")
    yield e
    await e.stop()


@pytest.mark.parametrize("mode", MODES)
async def test_acks_both_directions_with_msgpack(mp_env, mode):
    proc, sid = await mp_env.connected(mode, parser="msgpack", acks={"question": ["answer", 42]})
    await proc.send("emit", name="add", args=[40, 2], ack=True, id="a1")
    assert (await proc.expect("ack", id="a1"))["args"] == [42]
    await proc.send("emit", name="pair", args=["first"], ack=True, callback=True, id="a2")
    assert (await proc.expect("ack", id="a2"))["args"] == ["first", "second", {"third": 3}]
    assert await mp_env.sio.call("question", {"q": "?"}, to=sid, timeout=5) == ("answer", 42)
    assert mp_env.sio.transport(sid) == ("polling" if mode == "polling" else "websocket")


@pytest.mark.parametrize("mode", MODES)
async def test_nested_binary_both_directions_with_msgpack(mp_env, mode):
    await nested_binary_round_trips(mp_env, mode, parser="msgpack")


async def test_namespaces_auth_and_refusal_with_msgpack(mp_env):
    proc = await mp_env.client("websocket", parser="msgpack",
                               sockets=[{"name": "/", "nsp": "/", "auth": {"token": "t"}},
                                        {"name": "/chat", "nsp": "/chat"}])
    sid = (await proc.expect("connect", socket="/"))["id"]
    await proc.expect("connect", socket="/chat")
    refused = await mp_env.client("websocket", parser="msgpack",
                                  sockets=[{"name": "/", "nsp": "/", "auth": {"refuse": "no entry"}}])
    err = await refused.expect("connect_error", socket="/")
    assert err["message"] == "no entry" and err["data"] == {"code": 42, "hint": "try again"}
    assert (await mp_env.log.expect("connect", sid=sid))["auth"] == {"token": "t"}
    await proc.send("emit", socket="/chat", name="msg", args=["hi"], ack=True, id="c1")
    assert (await proc.expect("ack", id="c1"))["args"] == ["chat:hi"]


async def test_a_json_client_is_refused_and_others_go_on(mp_env):
    good, sid = await mp_env.connected("websocket", parser="msgpack")
    bad = await mp_env.client("websocket")            # the default JSON parser
    await bad.expect("open")
    ev = await bad.expect(("connect_error", "disconnect", "close"), timeout=10)
    assert ev["event"] in ("connect_error", "disconnect", "close")
    await good.send("emit", name="add", args=[1, 2], ack=True, id="g1")
    assert (await good.expect("ack", id="g1"))["args"] == [3]
