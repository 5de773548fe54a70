"""socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4) against ``AsyncServer(allow_eio3=True)``.

The client is npm's socket.io-client 2.5.0, installed as ``socket.io-client-v2``; each test runs
tests/interop/node/sio_v2_client.mjs through one scenario (see there) and checks what the client
and the server saw.  A v4 client (socket.io-client 4.x) is checked on the same server, and a v3
handshake is refused with Node's 400 "Unsupported protocol version" when ``allow_eio3`` is off.
"""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
from typing import Any

import pytest

import fastio
from nodeproc import UnorderedNodeProcess, node_executable, run_to_exit, script_path

pytestmark = pytest.mark.timeout(60)

MODES = {
    "polling": {"transports": ["polling"], "upgrade": False},
    "websocket": {"transports": ["websocket"], "upgrade": False},
    "upgrade": {"transports": ["polling", "websocket"], "upgrade": True},
    "polling-base64": {"transports": ["polling"], "upgrade": False, "forceBase64": True},
}
BLOB = bytes([0, 1, 2, 250, 255])
TEXT = "h\u00e9llo \U0001F600 \u2603"


def unwire(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: unwire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwire(v) for v in value]
    return value


def build_server(seen: dict[str, Any], **options: Any) -> fastio.AsyncServer:
    sio = fastio.AsyncServer(**options)

    @sio.event
    async def connect(sid, environ, auth):
        seen["connect"] = sid
        await sio.emit("greet", ("hi", sid), to=sid)

    @sio.event
    async def echo(sid, *args):
        return args

    @sio.event
    async def bin(sid, data, obj):
        seen["bin"] = (data, obj)
        await sio.emit("binback", {"data": data[::-1]}, to=sid)
        return data[::-1], obj

    @sio.event
    async def bye(sid):
        await sio.disconnect(sid)

    @sio.event
    async def disconnect(sid, reason):
        seen.setdefault("disconnect", []).append((sid, reason))

    @sio.on("connect", namespace="/chat")
    async def chat_connect(sid, environ, auth):
        seen["chat_auth"] = auth

    @sio.on("whoami", namespace="/chat")
    async def whoami(sid):
        return {"sid": sid, "auth": seen["chat_auth"]}

    @sio.on("connect", namespace="/private")
    async def private_connect(sid, environ, auth):
        raise fastio.exceptions.ConnectionRefusedError("no entry", {"why": "private"})

    return sio


async def run_v2_client(url: str, **config: Any) -> dict[str, dict[str, Any]]:
    """Run the scenario; the events it printed, by name (it must end with "exit" code 0)."""
    argv = [node_executable(), str(script_path("sio_v2_client.mjs")),
            json.dumps({"url": url, "timeoutMs": 30000, **config})]
    _, out, err = await run_to_exit(argv, 40)
    events: dict[str, dict[str, Any]] = {}
    for line in out.decode().splitlines():
        ev = json.loads(line)
        events[ev.pop("event")] = ev
    assert "fatal" not in events, (events["fatal"], err.decode()[-2000:])
    assert events.get("exit", {}).get("code") == 0, (events, err.decode()[-2000:])
    return events


@pytest.fixture
async def served(node_ready):
    servers: list[Any] = []

    async def start(**options: Any) -> tuple[dict[str, Any], str]:
        seen: dict[str, Any] = {}
        server = await fastio.serve(build_server(seen, **options), "127.0.0.1", 0)
        servers.append(server)
        return seen, f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await asyncio.wait_for(server.close(), 10)


@pytest.mark.parametrize("mode", list(MODES))
async def test_v2_client_scenario(served, mode):
    seen, url = await served(allow_eio3=True)
    ev = await run_v2_client(url, **MODES[mode])
    expected_transport = "polling" if mode.startswith("polling") else "websocket"
    assert ev["transport"]["name"] == expected_transport
    # Socket.IO v4: "/" is joined on open; the socket id is the Engine.IO id, as the client
    # computes it, and "/chat#<id>" in another namespace.
    sid = ev["connect"]["id"]
    assert sid == ev["connect"]["engineId"] == seen["connect"]
    assert unwire(ev["greet"]["args"]) == ["hi", sid]
    assert ev["echo"]["reply"] == [TEXT, {"n": 1}] and ev["echo"]["sent"] == TEXT
    assert seen["bin"] == (BLOB, {"inner": [BLOB]})
    assert unwire(ev["bin"]["reply"]) == [BLOB[::-1], {"inner": [BLOB]}]
    assert unwire(ev["binback"]["args"]) == [{"data": BLOB[::-1]}]
    assert ev["chat_connect"]["id"] == "/chat#" + sid
    assert ev["chat_whoami"]["reply"] == [{"sid": "/chat#" + sid, "auth": {"token": "abc"}}]
    # Node's CONNECT_ERROR for a v3 client: the error's data (or its message).
    assert ev["private_error"]["data"] == {"why": "private"}
    assert ev["disconnect"]["reason"] == "io server disconnect"


async def test_v3_client_keeps_alive_by_pinging(served):
    # The server must not ping a v3 client (it pings us) and must answer each ping; a short
    # interval shows several round trips, and the session survives past interval + timeout.
    seen, url = await served(allow_eio3=True, ping_interval=0.2, ping_timeout=0.6)
    ev = await run_v2_client(url, waitPongs=8, **MODES["upgrade"])  # 1.6 s, twice the deadline
    assert ev["disconnect"]["reason"] == "io server disconnect"
    assert [r for _, r in seen["disconnect"]] == ["server disconnect"]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_v3_refused_by_default(served):
    _, url = await served()
    status, body = await asyncio.to_thread(_get, url + "/socket.io/?EIO=3&transport=polling")
    assert status == 400
    assert json.loads(body) == {"code": 5, "message": "Unsupported protocol version"}


async def test_v3_handshake_payload(served):
    _, url = await served(allow_eio3=True, ping_interval=25, ping_timeout=20)
    status, body = await asyncio.to_thread(_get, url + "/socket.io/?EIO=3&transport=polling")
    assert status == 200
    # <length>:<packet>...: the open packet, then the Socket.IO CONNECT to "/" (sent unasked)
    # and the greeting the connect handler emitted; lengths count UTF-16 code units.
    text = body.decode()
    packets = []
    while text:
        head, _, text = text.partition(":")
        packets.append(text[:int(head)])
        text = text[int(head):]
    assert packets[0][0] == "0"
    info = json.loads(packets[0][1:])
    assert info["pingInterval"] == 25000 and info["pingTimeout"] == 20000
    assert info["upgrades"] == ["websocket"]
    assert sorted(packets[1:]) == ["40", '42["greet","hi","%s"]' % info["sid"]]


async def test_v4_client_on_a_v3_server(served, node_ready):
    seen, url = await served(allow_eio3=True)
    proc = UnorderedNodeProcess("sio_client.mjs", {"url": url, "transports": ["polling", "websocket"],
                                          "upgrade": True, "timeoutMs": 30000})
    await proc.start()
    try:
        ev = await proc.expect("connect", socket="/")
        assert ev["id"] == seen["connect"]
        await proc.expect("upgrade", transport="websocket")
    finally:
        await proc.aclose()


# -----------------------------------------------------------------------------
# the payload codec against Node's v3 parser (engine.io-parser 2.x)
# -----------------------------------------------------------------------------

_TYPES = ["open", "close", "ping", "pong", "message", "upgrade", "noop"]
# (type, data): text (with characters outside the BMP, whose UTF-16 length differs), binary.
CODEC_PACKETS = [
    [(4, "plain")],
    [(4, TEXT), (2, None), (4, "\U0001F600" * 3), (6, None)],
    [(4, "x"), (4, BLOB), (4, TEXT), (4, b"")],
    [(4, bytes(range(256)) * 40), (3, "probe")],
]


async def run_parser(config: dict[str, Any]) -> dict[str, Any]:
    argv = [node_executable(), str(script_path("eio3_parser.mjs")), json.dumps(config)]
    _, out, err = await run_to_exit(argv, 30)
    for line in out.decode().splitlines():
        ev = json.loads(line)
        if ev["event"] == "result":
            return ev
    raise AssertionError(out.decode() + err.decode())


def _wire_packet(ptype: int, data: Any) -> dict[str, Any]:
    if isinstance(data, bytes):
        return {"type": _TYPES[ptype], "data": {"$bin": base64.b64encode(data).decode()}}
    return {"type": _TYPES[ptype]} if data is None else {"type": _TYPES[ptype], "data": data}


def _v4_body(packets: list[tuple[int, Any]]) -> bytes:
    # What a v3 session's queue holds: v4 packets, binary as b<base64>.
    from fastio._core.eio import encode_payload, encode_packet, poll_binary
    return encode_payload([poll_binary(d) if isinstance(d, bytes) else encode_packet(t, d)
                           for t, d in packets])


def _as_decoded(packets: list[tuple[int, Any]]) -> list[tuple[int, bytes, bool]]:
    return [(t, d, True) if isinstance(d, bytes) else (t, (d or "").encode(), False) for t, d in packets]


@pytest.mark.parametrize("supports_binary", [True, False])
async def test_v3_payloads_match_node_parser(node_ready, supports_binary):
    from fastio.engineio.eio3 import decode_payload_v3, encode_payload_v3

    ours = [encode_payload_v3(_v4_body(p), supports_binary) for p in CODEC_PACKETS]
    result = await run_parser({
        "encode": [{"packets": [_wire_packet(t, d) for t, d in p], "supportsBinary": supports_binary}
                   for p in CODEC_PACKETS],
        "decode": [{"$bin": base64.b64encode(body).decode()} if binary else body.decode()
                   for body, binary in ours],
    })
    for packets, (body, binary), theirs, decoded in zip(CODEC_PACKETS, ours, result["encoded"],
                                                        result["decoded"]):
        has_binary = any(isinstance(d, bytes) for _, d in packets)
        assert binary == (supports_binary and has_binary)
        # Node encodes exactly as fastio does ...
        theirs_bytes = base64.b64decode(theirs["$bin"]) if isinstance(theirs, dict) else theirs.encode()
        assert theirs_bytes == body
        # ... decodes what fastio sends into the packets sent ...
        assert decoded == [_wire_packet(t, d if d is not None else "") if t == 4 or d is not None
                           else {"type": _TYPES[t]} for t, d in packets]
        # ... and fastio decodes what Node sends.
        assert decode_payload_v3(theirs_bytes) == _as_decoded(packets)



async def test_v3_session_expires_without_client_pings(node_ready):
    # A v3 client that stops pinging is closed once interval + timeout pass, and the server
    # sends it no ping meanwhile: its long poll ends with the close packet alone.
    closed: asyncio.Future = asyncio.get_running_loop().create_future()
    eio = fastio.engineio.AsyncServer(allow_eio3=True, ping_interval=0.2, ping_timeout=0.2)

    @eio.on("disconnect")
    def disconnect(sid, reason):
        if not closed.done():
            closed.set_result((sid, reason, asyncio.get_running_loop().time()))

    server = await fastio.serve(eio, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.port}/engine.io/?EIO=3&transport=polling"
        started = asyncio.get_running_loop().time()
        status, body = await asyncio.to_thread(_get, base)
        assert status == 200
        head, _, rest = body.partition(b":")
        sid = json.loads(rest[1:int(head)])["sid"]
        status, body = await asyncio.to_thread(_get, base + "&sid=" + sid)
        assert (status, body) == (200, b"1:1")
        csid, reason, at = await asyncio.wait_for(closed, 5)
        assert (csid, reason) == (sid, "ping timeout")
        assert at - started >= 0.4
    finally:
        await asyncio.wait_for(server.close(), 10)


@pytest.mark.parametrize("mode", ["polling", "upgrade"])
async def test_v2_client_through_asgi(node_ready, mode):
    # Under uvicorn the framework frames the WebSocket and hands fastio whole messages: the
    # v3 type byte on binary messages must be added and taken off there too.
    import uvicorn

    seen: dict[str, Any] = {}
    app = fastio.ASGIApp(build_server(seen, allow_eio3=True))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio",
                                           lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.01)  # uvicorn has no started event to await
        port = server.servers[0].sockets[0].getsockname()[1]
        ev = await run_v2_client(f"http://127.0.0.1:{port}", **MODES[mode])
        assert ev["transport"]["name"] == ("websocket" if mode == "upgrade" else "polling")
        assert unwire(ev["bin"]["reply"]) == [BLOB[::-1], {"inner": [BLOB]}]
        assert unwire(ev["binback"]["args"]) == [{"data": BLOB[::-1]}]
        assert seen["bin"] == (BLOB, {"inner": [BLOB]})
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
