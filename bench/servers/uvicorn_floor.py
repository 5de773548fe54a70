"""uvicorn's own floor: a bare ASGI app under the same uvicorn settings as the ASGI servers.

It does no Socket.IO work of its own.  It accepts the WebSocket, sends the Engine.IO OPEN
packet, answers CONNECT, and answers the benchmark events by string surgery on the message
(no JSON, no Engine.IO or Socket.IO state, no rooms):

* ``42["echo",ARGS]``       -> ``42["echo",ARGS]``
* ``42<id>["echo",ARGS]``   -> ``42["echo",ARGS]`` and ``43<id>[ARGS]``
* ``451-["echo",...]`` + one binary message -> the same two messages back
* ``42["broadcast",X]``     -> the same message to every connection

Whatever an ASGI Socket.IO server costs beyond this is its own; what this costs, uvicorn spends
for any app (HTTP parsing, the WebSocket handshake and framing, one ASGI message per frame).
"""
from __future__ import annotations

import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import serve_with_uvicorn  # noqa: E402

OPEN = '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
CONNECTED: dict[str, object] = {}


async def app(scope, receive, send) -> None:  # noqa: ANN001 - a plain ASGI callable
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    sid = base64.urlsafe_b64encode(os.urandom(12)).decode()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": OPEN % sid})
    pending_binary = None
    try:
        while True:
            msg = await receive()
            if msg["type"] != "websocket.receive":
                return
            p = msg.get("text")
            if p is None:
                if pending_binary is not None:
                    await send({"type": "websocket.send", "text": pending_binary})
                    await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})
                    pending_binary = None
                continue
            if p.startswith("42"):
                if p[2] == "[":
                    out = {"type": "websocket.send", "text": p}
                    if p.startswith('42["broadcast"'):
                        for peer in list(CONNECTED.values()):
                            await peer(out)  # type: ignore[operator]
                    else:
                        await send(out)
                    continue
                i = p.index("[")
                body = p[i:]
                await send({"type": "websocket.send", "text": "42" + body})
                comma = body.find(",")
                args = body[comma + 1:] if comma >= 0 else "]"
                await send({"type": "websocket.send", "text": "43" + p[2:i] + "[" + args})
            elif p.startswith("451"):
                pending_binary = p
            elif p.startswith("40"):
                CONNECTED[sid] = send
                await send({"type": "websocket.send", "text": '40{"sid":"%s"}' % sid})
            elif p.startswith("41") or p.startswith("1"):
                await send({"type": "websocket.close", "code": 1000})
                return
    finally:
        CONNECTED.pop(sid, None)


if __name__ == "__main__":
    serve_with_uvicorn(app, "uvicorn_floor", __doc__)
