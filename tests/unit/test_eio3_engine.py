"""Engine.IO v3 requests (``allow_eio3=True``) without sockets, with the fake requests of
test_engine_requests.py: the handshake, the binary and base64 forms of a poll, v3 POST bodies."""
from __future__ import annotations

import json

from test_engine_requests import FakeRequest, loop_factory, make_server, on_each_loop  # noqa: F401


def _packets(body: bytes) -> list[str]:
    text = body.decode()
    out = []
    while text:
        head, _, text = text.partition(":")
        out.append(text[:int(head)])
        text = text[int(head):]
    return out


async def _handshake(eio, **query):
    req = FakeRequest(query={"EIO": "3", "transport": "polling", **query})
    eio.handle_request(req)
    resp = await req.response()
    assert resp.status == 200
    assert resp.header("content-type") == "text/plain; charset=UTF-8"
    packets = _packets(resp.body)
    assert packets[0][0] == "0"
    return json.loads(packets[0][1:])["sid"]


@on_each_loop
async def test_v3_refused_unless_allowed(make_server):
    eio, _ = make_server()
    req = FakeRequest(query={"EIO": "3", "transport": "polling"})
    eio.handle_request(req)
    resp = await req.response()
    assert resp.status == 400
    assert resp.json() == {"code": 5, "message": "Unsupported protocol version"}


@on_each_loop
async def test_v3_poll_binary_payload_or_base64(make_server):
    eio, events = make_server(allow_eio3=True)
    for query, binary in (({}, True), ({"b64": "1"}, False)):
        sid = await _handshake(eio, **query)
        await eio.send(sid, "t\u00e9xt \U0001F600")
        await eio.send(sid, b"\x00\xff")
        req = FakeRequest(query={"EIO": "3", "transport": "polling", "sid": sid})
        eio.handle_request(req)
        resp = await req.response()
        if binary:
            assert resp.header("content-type") == "application/octet-stream"
            text = "4t\u00e9xt \U0001F600".encode()
            assert resp.body == (b"\x00" + bytes(int(d) for d in str(len(text))) + b"\xff" + text
                                 + b"\x01\x03\xff\x04\x00\xff")
        else:
            assert resp.header("content-type") == "text/plain; charset=UTF-8"
            # 8 UTF-16 code units: the emoji counts 2.
            assert resp.body == "8:4t\u00e9xt \U0001F6006:b4AP8=".encode()


@on_each_loop
async def test_v3_post_bodies_and_ping(make_server):
    eio, events = make_server(allow_eio3=True)
    sid = await _handshake(eio)
    for body in ("3:4h\u00e9" "6:b4AQ==".encode(), b"\x00\x03\xff4hi\x01\x02\xff\x04\x07"):
        req = FakeRequest("POST", query={"EIO": "3", "transport": "polling", "sid": sid}, body=body)
        eio.handle_request(req)
        assert (await req.response()).status == 200
    await events.wait_for("messages", 4)
    assert events.messages == [(sid, "h\u00e9"), (sid, b"\x01"), (sid, "hi"), (sid, b"\x07")]
    # The client pings, the server answers.
    req = FakeRequest("POST", query={"EIO": "3", "transport": "polling", "sid": sid}, body=b"1:2")
    eio.handle_request(req)
    assert (await req.response()).status == 200
    req = FakeRequest(query={"EIO": "3", "transport": "polling", "sid": sid})
    eio.handle_request(req)
    assert (await req.response()).body == b"1:3"
    # A malformed v3 body is a 400 and ends the session.
    req = FakeRequest("POST", query={"EIO": "3", "transport": "polling", "sid": sid}, body=b"9:4")
    eio.handle_request(req)
    assert (await req.response()).status == 400
    await events.wait_for("disconnects", 1)
