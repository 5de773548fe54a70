"""Engine.IO client: where the server is, and what every request to it carries.

One :class:`Endpoint` per connection attempt: the transport URLs (``EIO=4``, ``transport=``,
``sid=``, the optional ``t=`` cache buster), the user's headers, and the cookies the server set
(sent back on every later request, as a browser would for a sticky-session load balancer).
"""
from __future__ import annotations

import ssl
import time
import urllib.parse

__all__ = ["Endpoint"]


class Endpoint:
    """The Engine.IO endpoint of a server and the headers of the requests sent to it.

    :param url: the server's URL (``http``, ``https``, ``ws`` or ``wss``); its query string is
                kept on every request.
    :param engineio_path: the endpoint's path (``"engine.io"``, ``"socket.io"``).
    :param headers: extra request headers; ``Cookie`` is merged with the stored cookies,
                    ``Host`` and ``Content-Length`` are ignored.
    :param timestamp: add a ``t=`` cache-busting parameter to every URL.
    """

    def __init__(self, url: str, engineio_path: str, headers: dict[str, str] | None = None,
                 timestamp: bool = True) -> None:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported URL scheme in {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in URL {url!r}")
        #: True for ``https``/``wss``.
        self.secure = scheme in ("https", "wss")
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        default_port = 443 if self.secure else 80
        #: The ``Host`` header: the port only when it is not the scheme's default.
        self.hostport = host if self.port == default_port else f"{host}:{self.port}"
        path = engineio_path.strip("/")
        self.path = f"/{path}/" if path else "/"
        self.query = parts.query
        self.headers = dict(headers or {})
        self.cookies: dict[str, str] = {}
        self.timestamp = timestamp

    def ssl_context(self, verify: bool = True) -> ssl.SSLContext | None:
        """A TLS context for a secure endpoint (any certificate accepted unless ``verify``)."""
        if not self.secure:
            return None
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def resource(self, transport: str, sid: str | None) -> str:
        """The request target (path and query) of ``transport`` for session ``sid``."""
        query = f"{self.query}&" if self.query else ""
        query += f"EIO=4&transport={transport}"
        if self.timestamp:
            query += f"&t={time.time()!r}"
        if sid is not None:
            query += "&sid=" + urllib.parse.quote(sid, safe="")
        return f"{self.path}?{query}"

    def url(self, transport: str, sid: str | None) -> str:
        """The absolute URL of ``transport`` (``ws``/``wss`` for ``'websocket'``)."""
        if transport == "websocket":
            scheme = "wss" if self.secure else "ws"
        else:
            scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.hostport}{self.resource(transport, sid)}"

    def request_headers(self, content_type: bool = False) -> list[tuple[str, str]]:
        """The headers of a request: the user's, the cookies, and for a POST the content type."""
        headers = [("Accept", "*/*")]
        cookie = None
        for name, value in self.headers.items():
            if name.lower() == "cookie":
                cookie = str(value)
            elif name.lower() not in ("host", "content-length"):
                headers.append((name, str(value)))
        if self.cookies:
            jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            cookie = f"{cookie}; {jar}" if cookie else jar
        if cookie:
            headers.append(("Cookie", cookie))
        if content_type:
            headers.append(("Content-Type", "text/plain;charset=UTF-8"))
        return headers

    def store_cookies(self, headers: dict[str, list[str]]) -> None:
        """Keep the name and value of every ``Set-Cookie`` in a response's (lower-cased) headers."""
        for value in headers.get("set-cookie", ()):
            pair = value.split(";", 1)[0]
            name, sep, val = pair.partition("=")
            if sep and name.strip():
                self.cookies[name.strip()] = val.strip()
