"""aiohttp integration: ``sio.attach(app)`` adds the Socket.IO routes to an aiohttp application.

aiohttp does HTTP and WebSocket framing; fastio does Engine.IO, Socket.IO, rooms and fan-out.
aiohttp is not a dependency of fastio: this module imports it when used.
"""
from __future__ import annotations

import asyncio
from typing import Any

from fastio.base.frameworks import register_attacher
from fastio.engineio.environ import build_environ
from fastio.hosting.bridge import BridgeRequest

__all__ = ["attach"]


def _environ(request: Any) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    return build_environ(request.method, request.path, request.query_string, request.raw_path,
                         "%d.%d" % request.version, peer, sock, request.headers.items(),
                         url_scheme=request.scheme, software="aiohttp", extra={"aiohttp.request": request})


def attach(server: Any, app: Any, socketio_path: str = "socket.io") -> None:
    """Route ``/<socketio_path>/`` of the aiohttp ``app`` to ``server``."""
    from aiohttp import WSMsgType, web

    engine = getattr(server, "eio", server)
    engine.engineio_path = socketio_path.strip("/")
    engine.async_mode = "aiohttp"

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else b""
        headers = [(k.lower(), v) for k, v in request.raw_headers]
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        peer = request.transport.get_extra_info("peername") if request.transport else None
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        req = BridgeRequest(request.method, request.path, request.query_string.encode("latin-1"), headers, body,
                            tuple(peer[:2]) if peer else None, tuple(sock[:2]) if sock else None,
                            upgrade, _environ(request), "%d.%d" % request.version, request.scheme)
        engine.handle_request(req)
        if not req.response.done():
            try:
                await req.response
            except asyncio.CancelledError:
                # aiohttp cancels the handler when the client goes away during a long poll.
                if req.on_abort is not None and not req.response.done():
                    req.on_abort(req)
                raise
        status, resp_headers, payload = req.response.result()
        if status != 101:
            return web.Response(status=status, body=payload,
                                headers=[(str(k), str(v)) for k, v in resp_headers])
        ws = req.websocket
        assert ws is not None
        wsr = web.WebSocketResponse(max_msg_size=engine.max_http_buffer_size, autoping=True)
        await wsr.prepare(request)
        ws.attach(wsr.send_str, wsr.send_bytes, lambda code: wsr.close(code=code))
        try:
            async for msg in wsr:
                if msg.type == WSMsgType.TEXT:
                    ws.receive_text(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    ws.receive_bytes(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
                if ws.closed:
                    break
        finally:
            ws.lost("transport close")
        if not ws.done.done():
            await ws.done
        return wsr

    path = "/" + engine.engineio_path + "/"
    app.router.add_route("GET", path, handler)
    app.router.add_route("POST", path, handler)
    app.router.add_route("OPTIONS", path, handler)


def _attach_aiohttp(engine: Any, app: Any, path: str) -> bool:
    """The attacher for ``AsyncServer.attach``: takes aiohttp applications only."""
    if not type(app).__module__.startswith("aiohttp"):
        return False
    attach(engine, app, path)
    return True


register_attacher(_attach_aiohttp)
