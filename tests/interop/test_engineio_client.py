"""The official engine.io-client (Node) against fastio's Engine.IO server.

Each test starts the server in-process (``eio_server`` fixture, see
conftest.py) and drives tests/interop/node/eio_client.mjs. Transport modes:

* ``polling``   -- transports=["polling"]
* ``websocket`` -- transports=["websocket"]
* ``upgrade``   -- transports=["polling", "websocket"]: opens on polling,
  the test waits for the upgrade to websocket before going on.

What engine.io-client reports (6.6.x), as these tests expect it:

* the client closing itself is ``"forced close"``;
* a session closed by the server is ``"transport close"`` on every
  transport (over polling the description says "transport closed by the
  server", i.e. a CLOSE packet came back on the long-poll);
* a failed handshake (refused connection) is an ``error`` event followed
  by ``"transport error"``;
* the client's own heartbeat watchdog gives ``"ping timeout"``.
"""

from __future__ import annotations

import base64
import os

import pytest
from clientkit import MODES, client_config

pytestmark = pytest.mark.timeout(30)

SCRIPT = "eio_client.mjs"
FAST_HEARTBEAT = dict(ping_interval=0.3, ping_timeout=0.3)

# FASTIO_INTEROP_BACKEND=python-engineio runs this file against
# python-engineio (see conftest.py); where python-engineio itself does not
# interoperate, the test is an expected failure there.
BACKEND = os.environ.get("FASTIO_INTEROP_BACKEND", "fastio")


def reference_xfail(reason: str):
    return pytest.mark.xfail(BACKEND == "python-engineio", reason=f"python-engineio: {reason}", strict=False)


REF_HEARTBEAT = reference_xfail("announces pingInterval int(0.3) * 1000 == 0, the client gives up first")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def eio_client_config(srv, mode: str, **extra):
    """The config of eio_client.mjs in ``mode`` for the Engine.IO server ``srv``."""
    return client_config(srv.url, mode, 20000, **{"path": "/engine.io", **extra})


async def connect(node_client, srv, mode: str, **extra):
    """Start a client, wait until it is open (and upgraded, in "upgrade"
    mode), and return (process, sid)."""
    proc = await node_client(SCRIPT, eio_client_config(srv, mode, **extra))
    first = "websocket" if mode == "websocket" else "polling"
    hs = await proc.expect("handshake")
    opened = await proc.expect("open")
    assert opened["transport"] == first
    assert opened["sid"] == hs["sid"]
    sid = await srv.expect_connect()
    assert sid == hs["sid"], "the sid in the handshake is the one the server's connect handler got"
    if mode == "upgrade":
        await proc.expect("upgrading", transport="websocket")
        await proc.expect("upgrade", transport="websocket")
    return proc, sid


# What the server's disconnect handler gets when the client closes itself.
CLIENT_CLOSE_REASON = {
    # engine.io-client's polling transport posts a CLOSE packet
    "polling": "client disconnect",
    # its websocket transport only closes the WebSocket, without a CLOSE
    # packet, which python-engineio reports as "transport close"
    "websocket": "transport close",
    "upgrade": "transport close",
}


async def close_client(proc, srv, sid, mode: str):
    """Close the client; check both sides' reasons; return the server's."""
    await proc.send("close")
    closed = await proc.expect("close")
    assert closed["reason"] == "forced close"
    await proc.expect_exit(0)
    reason = await srv.expect_disconnect(sid)
    assert reason == CLIENT_CLOSE_REASON[mode]
    return reason


# ---------------------------------------------------------------------------
# handshake and transports
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_handshake_and_transport(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    hs = proc.seen("handshake")[0]
    assert hs["pingInterval"] == 25000
    assert hs["pingTimeout"] == 20000
    assert hs["maxPayload"] == 1_000_000
    if mode == "websocket":
        assert hs["upgrades"] == []
    else:
        assert hs["upgrades"] == ["websocket"]
    assert isinstance(sid, str) and sid

    await proc.send("state")
    state = await proc.expect("state")
    assert state["readyState"] == "open"
    assert state["transport"] == ("polling" if mode == "polling" else "websocket")

    if mode != "upgrade":
        assert not proc.seen("upgrade"), "a single-transport client never upgrades"
    assert not eio_server.pending("disconnect")
    await close_client(proc, eio_server, sid, mode)


@pytest.mark.eio_server(allow_upgrades=False)
async def test_no_upgrade_when_server_disallows(eio_server, node_client):
    proc = await node_client(SCRIPT, eio_client_config(eio_server, "upgrade"))
    hs = await proc.expect("handshake")
    assert hs["upgrades"] == []
    await proc.expect("open", transport="polling")
    sid = await eio_server.expect_connect()
    await proc.send("send", data="still polling")
    assert await eio_server.expect_message(sid) == "still polling"
    assert (await proc.expect("message"))["data"] == "still polling"
    await proc.send("state")
    assert (await proc.expect("state"))["transport"] == "polling"
    assert not proc.seen("upgrading")
    await close_client(proc, eio_server, sid, "polling")


async def test_messages_continue_across_upgrade(eio_server, node_client):
    # "before" is sent on "open", while the client is still on polling
    proc = await node_client(
        SCRIPT, eio_client_config(eio_server, "upgrade", onOpen=[{"data": "before"}])
    )
    await proc.expect("open", transport="polling")
    sid = await eio_server.expect_connect()
    assert await eio_server.expect_message(sid) == "before"
    await proc.expect("upgrade", transport="websocket")

    await proc.send("send", data="after")
    assert await eio_server.expect_message(sid) == "after"
    await eio_server.eio.send(sid, "server after upgrade")
    await eio_server.eio.send(sid, b"\x00bin after upgrade")

    await proc.expect("message", binary=True)
    # the echo of "before" may come on either transport, but the server's
    # order holds across the switch
    received = [
        base64.b64decode(m["data"]) if m["binary"] else m["data"] for m in proc.seen("message")
    ]
    assert received == ["before", "after", "server after upgrade", b"\x00bin after upgrade"]
    upgrade_at = proc.events.index(proc.seen("upgrade")[0])
    after_at = proc.events.index(proc.seen("message", data="after")[0])
    assert upgrade_at < after_at

    await proc.send("state")
    assert (await proc.expect("state"))["transport"] == "websocket"
    assert not eio_server.pending("disconnect"), "the upgrade must not end the session"
    assert not proc.seen("close")
    await close_client(proc, eio_server, sid, "upgrade")


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
async def test_ping_pong_traffic_across_upgrade(eio_server, node_client, binary):
    """The server and the client bounce a counter back and forth from the
    moment the session opens, so messages are in flight both ways while the
    transport switches; none may be lost, duplicated or reordered."""
    n = 300

    def encode(i):
        return i.to_bytes(2, "big") if binary else str(i)

    def decode(data):
        return int.from_bytes(data, "big") if binary else int(data)

    async def on_message(sid, data):
        i = decode(data)
        if i + 1 < n:
            await eio_server.eio.send(sid, encode(i + 1))

    eio_server.on_message = on_message
    eio_server.on_connect = lambda sid: eio_server.eio.send(sid, encode(0))
    proc = await node_client(SCRIPT, eio_client_config(eio_server, "upgrade", echo=True))
    sid = await eio_server.expect_connect()
    got = [decode(await eio_server.expect_message(sid)) for _ in range(n)]
    assert got == list(range(n))
    await proc.first("upgrade", transport="websocket")
    # the client reports each message on stdout, which may trail its echo over the socket
    last = encode(n - 1)
    await proc.first("message", data=base64.b64encode(last).decode() if binary else last)
    assert [decode(base64.b64decode(m["data"]) if binary else m["data"]) for m in proc.seen("message")] == list(range(n))
    assert not eio_server.pending("disconnect")
    await close_client(proc, eio_server, sid, "upgrade")


# ---------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------

TEXTS = [
    "hello",
    "",
    "héllo wörld ✓ \U0001f600 日本語",
    "4probe",  # looks like an encoded packet
    "bAQID",  # looks like a base64 binary packet on polling
    "x" * 100_000,
]


@pytest.mark.parametrize("mode", MODES)
async def test_text_echo(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    for text in TEXTS:
        await proc.send("send", data=text)
    for text in TEXTS:
        got = await eio_server.expect_message(sid)
        assert isinstance(got, str), f"text arrives as str, got {type(got).__name__}"
        assert got == text
    for text in TEXTS:
        msg = await proc.expect("message")
        assert msg["binary"] is False
        # engine.io-client hands an empty text message over as undefined
        assert (msg["data"] if msg["data"] is not None else "") == text
    await close_client(proc, eio_server, sid, mode)


@reference_xfail("json-decodes text messages")
async def test_json_looking_text_stays_text(eio_server, node_client):
    """fastio hands text messages over as str, also when they parse as JSON
    (python-engineio would json-decode them into dict/list/...)."""
    proc, sid = await connect(node_client, eio_server, "websocket")
    texts = ['{"json": [1, 2, "three"], "nested": {"a": null}}', "[1, 2]", '"quoted"', "true", "null"]
    for text in texts:
        await proc.send("send", data=text)
    for text in texts:
        got = await eio_server.expect_message(sid)
        assert got == text and isinstance(got, str)
    for text in texts:
        assert (await proc.expect("message"))["data"] == text
    await close_client(proc, eio_server, sid, "websocket")


BINARIES = [
    bytes(range(256)),
    b"\x00",
    b"\xff" * 3,
    bytes((i * 7 + 3) % 256 for i in range(65_536)),
]


@pytest.mark.parametrize("kind", ["buffer", "arraybuffer", "uint8array"])
@pytest.mark.parametrize("mode", MODES)
async def test_binary_echo(eio_server, node_client, mode, kind):
    proc, sid = await connect(node_client, eio_server, mode)
    for data in BINARIES:
        await proc.send("send", binary=b64(data), **{"as": kind})
    for data in BINARIES:
        got = await eio_server.expect_message(sid)
        assert isinstance(got, bytes), f"binary arrives as bytes, got {type(got).__name__}"
        assert got == data
    for data in BINARIES:
        msg = await proc.expect("message")
        assert msg["binary"] is True
        assert base64.b64decode(msg["data"]) == data
    await close_client(proc, eio_server, sid, mode)


@pytest.mark.parametrize("mode", MODES)
async def test_server_initiated_messages(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    await eio_server.eio.send(sid, "from server")
    await eio_server.eio.send(sid, b"\x00\x01\xfe\xff")
    await eio_server.eio.send(sid, "")
    await eio_server.eio.send(sid, bytes(range(256)) * 64)

    msg = await proc.expect("message")
    assert msg == {"event": "message", "data": "from server", "binary": False}
    msg = await proc.expect("message")
    assert msg["binary"] is True and msg["data"] == b64(b"\x00\x01\xfe\xff")
    msg = await proc.expect("message")
    assert msg["binary"] is False and msg["data"] is None  # "" arrives as undefined
    msg = await proc.expect("message")
    assert msg["binary"] is True and base64.b64decode(msg["data"]) == bytes(range(256)) * 64
    await close_client(proc, eio_server, sid, mode)


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("polling", marks=reference_xfail("rejects a payload of more than 16 packets")),
        "websocket",
        "upgrade",
    ],
)
async def test_mixed_burst_keeps_order(eio_server, node_client, mode):
    """Many messages sent back to back (polling batches them into one
    payload) arrive complete and in order, both ways."""
    proc, sid = await connect(node_client, eio_server, mode)
    sent = []
    for i in range(60):
        if i % 3 == 2:
            data = f"bin-{i}".encode() + bytes([0, 255, i])
            await proc.send("send", binary=b64(data), **{"as": "arraybuffer" if i % 2 else "buffer"})
        else:
            data = f"text-{i}-\u00e9"
            await proc.send("send", data=data)
        sent.append(data)
    received = [await eio_server.expect_message(sid) for _ in sent]
    assert received == sent
    echoed = []
    for _ in sent:
        msg = await proc.expect("message")
        echoed.append(base64.b64decode(msg["data"]) if msg["binary"] else msg["data"])
    assert echoed == sent
    await close_client(proc, eio_server, sid, mode)


@pytest.mark.parametrize("mode", MODES)
async def test_send_from_connect_handler(eio_server, node_client, mode):
    eio_server.on_connect = lambda sid: eio_server.eio.send(sid, "welcome")
    proc, sid = await connect(node_client, eio_server, mode)
    msg = await proc.first("message")
    assert msg["data"] == "welcome"
    # the greeting comes after the handshake, never before "open"
    names = [e["event"] for e in proc.events]
    assert names.index("open") < names.index("message")
    await close_client(proc, eio_server, sid, mode)


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_refused_connection(eio_server, node_client, mode):
    eio_server.refuse = True
    proc = await node_client(SCRIPT, eio_client_config(eio_server, mode))
    await eio_server.expect_connect()
    closed = await proc.expect("close")
    assert closed["reason"] == "transport error"
    assert proc.seen("error"), "engine.io-client emits an error before closing"
    assert not proc.seen("open")
    await proc.expect_exit(0)
    assert not eio_server.pending("disconnect"), "a refused connection was never connected"


async def test_concurrent_clients(eio_server, node_client):
    modes = ["polling", "websocket", "upgrade", "polling", "websocket"]
    procs = [await node_client(SCRIPT, eio_client_config(eio_server, m)) for m in modes]
    sids = {}
    for i, proc in enumerate(procs):
        opened = await proc.expect("open")
        sids[i] = opened["sid"]
    assert len(set(sids.values())) == len(procs)
    connected = {await eio_server.expect_connect() for _ in procs}
    assert connected == set(sids.values())
    for i, proc in enumerate(procs):
        if modes[i] == "upgrade":
            await proc.expect("upgrade", transport="websocket")
        await proc.send("send", data=f"client {i}")
    for i, proc in enumerate(procs):
        assert await eio_server.expect_message(sids[i]) == f"client {i}"
        assert (await proc.expect("message"))["data"] == f"client {i}"
    for i, proc in enumerate(procs):
        await proc.send("close")
    for i, proc in enumerate(procs):
        await proc.expect("close", reason="forced close")
        assert await eio_server.expect_disconnect(sids[i]) == CLIENT_CLOSE_REASON[modes[i]]


# ---------------------------------------------------------------------------
# heartbeat
# ---------------------------------------------------------------------------


@pytest.mark.eio_server(**FAST_HEARTBEAT)
@REF_HEARTBEAT
@pytest.mark.parametrize("mode", MODES)
async def test_heartbeat_keeps_session_alive(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    hs = proc.seen("handshake")[0]
    assert hs["pingInterval"] == 300
    assert hs["pingTimeout"] == 300
    # five pings is five ping intervals (1.5 s) of a client answering them
    await proc.expect("ping", count=5, timeout=10)
    assert not proc.seen("close")
    assert not eio_server.pending("disconnect")
    await proc.send("send", data="still here")
    assert await eio_server.expect_message(sid) == "still here"
    assert (await proc.expect("message"))["data"] == "still here"
    await close_client(proc, eio_server, sid, mode)


@pytest.mark.eio_server(**FAST_HEARTBEAT)
@REF_HEARTBEAT
@pytest.mark.parametrize("mode", MODES)
async def test_unresponsive_client_gets_ping_timeout(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    await proc.send("mute_pongs")
    await proc.expect("pongs_muted")
    await proc.expect("pong_suppressed", timeout=5)
    assert await eio_server.expect_disconnect(sid, timeout=5) == "ping timeout"
    closed = await proc.expect("close", timeout=5)
    # the client's own watchdog is disarmed, so it learns it from the server
    # (a CLOSE packet on the long-poll, or the WebSocket closing)
    assert closed["reason"] == "transport close", closed
    await proc.expect_exit(0)


@pytest.mark.eio_server(**FAST_HEARTBEAT)
@REF_HEARTBEAT
@pytest.mark.parametrize("mode", MODES)
async def test_frozen_client_gets_ping_timeout(eio_server, node_client, mode):
    """A client process that stops altogether (SIGSTOP) is dropped by the
    server's heartbeat, whatever state its connection was left in."""
    proc, sid = await connect(node_client, eio_server, mode)
    await proc.expect("ping")
    proc.pause()
    try:
        assert await eio_server.expect_disconnect(sid, timeout=5) == "ping timeout"
    finally:
        proc.resume()
    closed = await proc.expect("close", timeout=5)
    assert closed["reason"] in ("transport close", "transport error", "ping timeout"), closed
    await proc.expect_exit(0)


# ---------------------------------------------------------------------------
# closing
# ---------------------------------------------------------------------------


@reference_xfail("disconnect() does not promptly end the client's transport (hangs, or no close within 10 s)")
@pytest.mark.parametrize("mode", MODES)
async def test_server_disconnect(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    await eio_server.eio.disconnect(sid)
    assert await eio_server.expect_disconnect(sid) == "server disconnect"
    closed = await proc.expect("close")
    assert closed["reason"] == "transport close", closed
    if mode == "polling":
        # a CLOSE packet ended the long-poll
        assert closed["description"] == {"description": "transport closed by the server"}
    else:
        assert closed["description"]["description"] == "websocket connection closed"
    await proc.expect_exit(0)
    assert not eio_server.pending("disconnect"), "one disconnect per session"


@pytest.mark.parametrize("mode", MODES)
async def test_client_close(eio_server, node_client, mode):
    proc, sid = await connect(node_client, eio_server, mode)
    reason = await close_client(proc, eio_server, sid, mode)
    assert reason == {"polling": "client disconnect"}.get(mode, "transport close")
    assert not eio_server.pending("disconnect"), "one disconnect per session"


@pytest.mark.eio_server(**FAST_HEARTBEAT)
@REF_HEARTBEAT
@pytest.mark.parametrize("mode", MODES)
async def test_client_process_killed(eio_server, node_client, mode):
    """A client that vanishes (killed, connection reset) is cleaned up."""
    proc, sid = await connect(node_client, eio_server, mode)
    await proc.aclose()  # kills the process; its sockets close with it
    reason = await eio_server.expect_disconnect(sid, timeout=10)
    assert reason in ("transport close", "transport error", "ping timeout"), reason
