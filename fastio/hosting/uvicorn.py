"""A uvicorn ``ws=`` protocol that serves Socket.IO WebSockets with fastio's compiled protocol.

uvicorn hands a WebSocket upgrade to the class given as ``ws``: it calls it with
``config=``, ``server_state=`` and ``app_state=``, then ``connection_made(transport)``, then
``data_received(the upgrade request)``, and makes the result the transport's protocol.  The
protocol made here reads the request line: an upgrade under the Engine.IO path goes to fastio's
native ``HttpProtocol`` (handshake, framing and Engine.IO in C, no ASGI message per frame);
any other upgrade goes to uvicorn's own WebSocket protocol, so the other app's WebSocket routes
work as before.  HTTP requests, long-polling included, stay on ASGI.
"""
from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

from fastio._core.protocol import HttpProtocol, Limits
from fastio.engineio.environ import build_environ
from fastio.hosting.router import Router
from fastio.hosting.tuning import tune_malloc

__all__ = ["UvicornWebSocketFactory"]

_MAX_HEAD = 65536


def _default_fallback() -> Any:
    try:
        from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
    except ImportError:  # pragma: no cover - uvicorn without its websockets module
        return None
    return AutoWebSocketsProtocol


class UvicornWebSocketFactory:
    """Pass as uvicorn's ``ws`` (``uvicorn.run(app, ws=asgi_app.uvicorn_ws)``, or on the command
    line ``--ws module:app.uvicorn_ws``).

    :param engine_app: the fastio ``AsyncServer`` (Socket.IO or Engine.IO) behind the ASGI app.
    :param fallback: the protocol class for other WebSocket paths (default: uvicorn's ``auto``).
    """

    def __init__(self, engine_app: Any, fallback: Any = None) -> None:
        tune_malloc()

        switches: dict[Any, _Switch] = {}

        factory = self

        class _TrackedRouter(Router):
            def handle_request(self, req: Any) -> None:
                if req.upgrade and self.engine.handles_path(req.path):
                    req.environ = factory.upgrade_environ(req)
                super().handle_request(req)

            def connection_closed(self, proto: HttpProtocol) -> None:
                super().connection_closed(proto)
                sw = switches.pop(proto, None)
                if sw is not None and sw.server_state is not None:
                    sw.server_state.connections.discard(sw)

        self._router = _TrackedRouter(engine_app)
        self._switches = switches
        self._config: Any = None
        self._proxy: Any = None
        self.engine = self._router.engine
        self._fallback = fallback

    @property
    def limits(self) -> Limits:
        """The connection limits and timeouts of the connections fastio serves under uvicorn
        (docs/reliability.md); change them before serving."""
        return self._router.limits

    @property
    def connections(self) -> set[Any]:
        """fastio's native connections opened through uvicorn and still open."""
        return self._router.connections

    def __call__(self, config: Any = None, server_state: Any = None, app_state: Any = None,
                 **kwargs: Any) -> asyncio.Protocol:
        """Make the protocol for one upgraded connection (uvicorn's calling convention)."""
        if config is not self._config:
            self._use_config(config)
        return _Switch(self, config, server_state, app_state, kwargs)

    def _use_config(self, config: Any) -> None:
        self._config = config
        self._proxy = None
        if config is not None and getattr(config, "proxy_headers", False):
            try:
                from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
            except ImportError:  # pragma: no cover - depends on uvicorn's layout
                return

            async def keep(scope: Any, receive: Any, send: Any) -> None:
                return None

            self._proxy = ProxyHeadersMiddleware(keep, trusted_hosts=config.forwarded_allow_ips)

    def upgrade_environ(self, req: Any) -> dict[str, Any]:
        """The environ of an upgrade request, as fastio.ASGIApp would build it under uvicorn: with
        an ``asgi.scope``, and the client and scheme from uvicorn's proxy-headers handling."""
        config = self._config
        scope: dict[str, Any] = {
            "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": req.http_version, "scheme": "wss" if getattr(config, "is_ssl", False) else "ws",
            "path": req.path,
            "raw_path": req.url.split(b"?", 1)[0], "query_string": req.query_string,
            "root_path": getattr(config, "root_path", "") or "", "headers": req.headers,
            "client": req.client, "server": req.server, "subprotocols": [], "state": {},
        }
        proxy = self._proxy
        if proxy is not None:
            # uvicorn's own middleware decides what X-Forwarded-* may change, as for ASGI apps.
            coro = proxy(scope, None, None)
            try:
                coro.send(None)
            except StopIteration:
                pass
            else:  # pragma: no cover - the middleware awaited something: keep the raw peer
                coro.close()
        return build_environ(req.method, req.path, req.query_string, req.url, req.http_version,
                             scope["client"], req.server, req.headers, script_name=scope["root_path"],
                             url_scheme=scope["scheme"], extra={"asgi.scope": scope})

    def native_protocol(self, switch: _Switch) -> HttpProtocol:
        """fastio's protocol for an upgrade under the Engine.IO path that ``switch`` read."""
        self.engine.ensure_started()
        proto = self._router.new_protocol()
        # Deadlines (a probe that never completes, a closing peer that does not read) need the
        # sweep; it stops by itself when the last of these connections ends.
        self._router.start_sweeper(until_idle=True)
        if switch.server_state is not None:
            # uvicorn's graceful shutdown calls shutdown() on what it tracks; the router forgets
            # this entry when the connection ends.
            switch.server_state.connections.add(switch)
            self._switches[proto] = switch
        return proto

    def other_protocol(self, config: Any, server_state: Any, app_state: Any, kwargs: dict[str, Any]) -> Any:
        """uvicorn's own protocol (or ``fallback``) for any other upgrade; None if there is none."""
        cls = self._fallback if self._fallback is not None else _default_fallback()
        if cls is None:
            return None
        return cls(config=config, server_state=server_state, app_state=app_state, **kwargs)


class _Switch(asyncio.Protocol):
    """Reads the upgrade request's line, then hands the connection to the protocol it needs."""

    __slots__ = ("_factory", "_config", "server_state", "_app_state", "_kwargs", "_transport",
                 "_head", "_inner", "_native")

    def __init__(self, factory: UvicornWebSocketFactory, config: Any, server_state: Any, app_state: Any,
                 kwargs: dict[str, Any]) -> None:
        self._factory = factory
        self._config = config
        self.server_state = server_state
        self._app_state = app_state
        self._kwargs = kwargs
        self._transport: Any = None
        self._head = b""
        self._inner: Any = None
        self._native = False

    # -- asyncio protocol -------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is not None:
            inner.data_received(data)
            return
        head = self._head + data
        end = head.find(b"\r\n")
        if end < 0:
            if len(head) > _MAX_HEAD:
                self._transport.close()
            self._head = head
            return
        self._head = b""
        parts = head[:end].split(b" ")
        path = unquote(parts[1].split(b"?", 1)[0].decode("latin-1")) if len(parts) == 3 else ""
        if self._factory.engine.handles_path(path):
            inner = self._factory.native_protocol(self)
            self._native = True
        else:
            inner = self._factory.other_protocol(self._config, self.server_state, self._app_state,
                                                 self._kwargs)
            if inner is None:
                self._transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self._transport.close()
                return
        self._inner = inner
        inner.connection_made(self._transport)
        inner.data_received(head)
        # uvicorn makes this object the transport's protocol when data_received returns; after
        # that the inner protocol takes the transport's callbacks directly.
        asyncio.get_running_loop().call_soon(self._hand_over)

    def _hand_over(self) -> None:
        t = self._transport
        if self._inner is not None and t is not None and not t.is_closing():
            t.set_protocol(self._inner)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def eof_received(self) -> bool | None:
        if self._inner is not None:
            return self._inner.eof_received()
        return None

    # -- uvicorn -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """uvicorn is shutting down: close the connection (a WebSocket with 1001 'going away')."""
        inner = self._inner
        if self._native and inner is not None:
            inner.close_transport()
