"""What clients get when the server shuts down."""

from __future__ import annotations

import asyncio
import json

import pytest

pytestmark = pytest.mark.timeout(30)


async def test_polling_client_between_polls_gets_the_close_packet_at_shutdown(make_sio, serve_sio, event_log):
    """As from Node's engine.io: a long-polling client with no poll waiting when the server shuts
    down gets the close packet on its next poll, over its open connection, instead of a closed
    connection (a poll error on the client)."""
    sio = make_sio(ping_interval=300, ping_timeout=300)

    @sio.event
    async def disconnect(sid, reason):
        event_log.add("disconnect", sid=sid, reason=reason)

    srv = await serve_sio(sio)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)

    async def request(method: str, query: str, body: bytes = b"") -> tuple[int, bytes]:
        writer.write(b"%s /socket.io/?EIO=4&transport=polling%s HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                     % (method.encode(), query.encode(), len(body), body))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return int(head.split()[1]), await asyncio.wait_for(reader.readexactly(length), 10)

    status, body = await request("GET", "")
    assert status == 200
    eio_sid = json.loads(body[1:])["sid"]
    status, body = await request("POST", "&sid=" + eio_sid, b"40")
    assert (status, body) == (200, b"ok")
    status, body = await request("GET", "&sid=" + eio_sid)
    assert status == 200 and body.startswith(b"40")
    # No poll is waiting now: the server shuts down meanwhile.
    closing = asyncio.ensure_future(srv.stop())
    await event_log.expect("disconnect", reason="server disconnect")
    status, body = await request("GET", "&sid=" + eio_sid)
    assert (status, body) == (200, b"1")
    await asyncio.wait_for(closing, 10)
    writer.close()
