"""example_chat.py -- an application written for python-socketio's API,
running on fastio -- driven by the official socket.io-client in Node."""

from __future__ import annotations

import importlib

import pytest

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}


@pytest.fixture
async def chat(serve_sio):
    """A fresh copy of the app (its module-level state starts empty), served."""
    import example_chat

    module = importlib.reload(example_chat)
    srv = await serve_sio(module.sio)
    srv.module = module
    return srv


async def user(node_sio, srv, username, mode="websocket", **config):
    auth = {"username": username} if username is not None else None
    spec = {"nsp": "/"}
    if auth is not None:
        spec["auth"] = auth
    proc = await node_sio(
        {
            "url": srv.url,
            "transports": TRANSPORTS[mode],
            "upgrade": mode == "upgrade",
            "sockets": [spec],
            **config,
        },
        name=f"client-{username}",
    )
    return proc


async def call(proc, event, *args, id):
    await proc.send("emit", name=event, args=list(args), ack=True, id=id)
    return (await proc.expect("ack", id=id))["args"][0]


async def test_chat_app(chat, node_sio, bin_codec):
    to_wire, from_wire = bin_codec
    alice = await user(node_sio, chat, "alice", "websocket")
    bob = await user(node_sio, chat, "bob", "polling")
    carol = await user(node_sio, chat, "carol", "upgrade")
    for proc, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        await proc.expect("connect", socket="/")
        welcome = await proc.expect("ev", type="welcome")
        assert welcome["args"][0]["username"] == name
    await carol.expect("upgrade", transport="websocket")

    # refused connections carry the app's data to connect_error
    nobody = await user(node_sio, chat, None)
    err = await nobody.expect("connect_error", socket="/")
    assert err["message"] == "authentication failed"
    assert err["data"] == {"reason": "no username"}
    twin = await user(node_sio, chat, "alice")
    err = await twin.expect("connect_error", socket="/")
    assert err["data"] == {"reason": "username taken"}

    # joining a room: the ack lists the users, the others are told
    assert await call(alice, "join", "lobby", id="j1") == {"room": "lobby", "users": ["alice"]}
    assert await call(bob, "join", "lobby", id="j2") == {"room": "lobby", "users": ["alice", "bob"]}
    assert (await alice.expect("ev", type="user_joined"))["args"] == [{"room": "lobby", "username": "bob"}]
    assert await call(carol, "join", "lobby", id="j3") == {"room": "lobby", "users": ["alice", "bob", "carol"]}
    for proc in (alice, bob):
        assert (await proc.expect("ev", type="user_joined"))["args"] == [{"room": "lobby", "username": "carol"}]
    assert await call(alice, "rooms", id="r1") == ["lobby"]

    # a message goes to the others in the room, not back to the sender
    ack = await call(alice, "message", {"room": "lobby", "text": "hi all"}, id="m1")
    msg_id = ack["id"]
    for proc in (bob, carol):
        ev = await proc.expect("ev", type="message")
        assert ev["args"] == [{"id": msg_id, "room": "lobby", "from": "alice", "text": "hi all"}]
    # a private message to alice arrives after anything broadcast before it
    assert await call(bob, "private", {"to": "alice", "text": "psst"}, id="p1") is True
    assert (await alice.expect("ev", type="private"))["args"] == [{"from": "bob", "text": "psst"}]
    assert not alice.seen("ev", type="message")
    assert await call(bob, "private", {"to": "nobody", "text": "?"}, id="p2") is False

    # binary upload fanned out to the room
    blob = bytes(range(256)) * 8
    assert await call(carol, "upload", {"room": "lobby", "name": "a.bin", "data": to_wire(blob)}, id="u1") == len(blob)
    for proc in (alice, bob):
        ev = await proc.expect("ev", type="file")
        assert from_wire(ev["args"]) == [{"from": "carol", "name": "a.bin", "data": blob}]

    # leaving: the rest of the room is told; the leaver cannot post there
    assert await call(bob, "leave", "lobby", id="l1") is True
    for proc in (alice, carol):
        assert (await proc.expect("ev", type="user_left"))["args"] == [{"room": "lobby", "username": "bob"}]
    assert await call(bob, "rooms", id="r2") == []
    assert await call(bob, "message", {"room": "lobby", "text": "still here?"}, id="m2") == {"error": "not in room"}

    # disconnecting: the rooms of the user are told, with the reason
    await carol.send("disconnect", socket="/")
    assert (await carol.expect("disconnect", socket="/"))["reason"] == "io client disconnect"
    left = await alice.expect("ev", type="user_left")
    assert left["args"] == [{"room": "lobby", "username": "carol", "reason": "client disconnect"}]
    assert "carol" not in chat.module.users.values()
    assert sorted(chat.module.users.values()) == ["alice", "bob"]

    # the server kicks bob
    bob_sid = next(sid for sid, name in chat.module.users.items() if name == "bob")
    await chat.module.sio.disconnect(bob_sid)
    assert (await bob.expect("disconnect", socket="/"))["reason"] == "io server disconnect"
    assert list(chat.module.users.values()) == ["alice"]
    # bob had left the lobby: alice hears nothing of his kick, and is still fine
    assert await call(alice, "rooms", id="r3") == ["lobby"]
    assert len(alice.seen("ev", type="user_left")) == 2  # bob (leave) and carol
