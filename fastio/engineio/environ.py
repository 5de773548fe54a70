"""The WSGI-style ``environ`` a handler receives, built in one place for every host.

The native server, ASGI, aiohttp and the uvicorn WebSocket hook each pass what their request
carries to :func:`build_environ`; they differ only in what they add (``asgi.scope``,
``aiohttp.request``, ``SERVER_SOFTWARE``).  Header names become environ keys through a cache
(one shared ``str`` per header name, not one per connection), and header values that most
connections share are kept once.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable

__all__ = ["build_environ", "request_environ"]

_ENVIRON_KEYS: dict[Any, str] = {}

# Header values that most connections share (same host, client, protocol) are kept once.
_SHARED_VALUE_HEADERS = frozenset([
    b"", b"host", b"connection", b"upgrade", b"sec-websocket-version", b"sec-websocket-extensions",
    b"user-agent", b"accept", b"accept-encoding", b"accept-language", b"origin", b"cache-control",
    b"pragma", b"content-type",
])
_VALUES: dict[bytes, str] = {}


def _value(name: bytes, value: bytes) -> str:
    if name not in _SHARED_VALUE_HEADERS or len(value) > 256 or (
            not name and (b"sid=" in value or b"t=" in value)):  # per-session query strings
        return value.decode("latin-1")
    v = _VALUES.get(value)
    if v is None:
        v = value.decode("latin-1")
        if len(_VALUES) < 4096:
            _VALUES[value] = v
    return v


def _text(value: bytes | str) -> str:
    return _value(b"", value) if isinstance(value, bytes) else value


def _key(name: bytes | str) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        text = name.decode("latin-1") if isinstance(name, bytes) else name
        key = text.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        # Interned (immortal from Python 3.12) only when it joins the bounded cache: header
        # names come from clients, and distinct ones must not pile up for good.
        if len(_ENVIRON_KEYS) < 512 and len(key) <= 64:
            key = sys.intern(key)
            _ENVIRON_KEYS[name] = key
    return key


def build_environ(method: str, path: str, query_string: bytes | str, raw_uri: bytes | str,
                  http_version: str, client: tuple[Any, ...] | None, server: tuple[Any, ...] | None,
                  headers: Iterable[tuple[bytes, bytes] | tuple[str, str]], *, script_name: str = "",
                  url_scheme: str = "http", software: str | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A WSGI-style environ: the request line, the peer and local addresses, every header as
    ``HTTP_<NAME>`` (repeated headers joined with ``,``), then ``extra``.

    ``headers`` are ``(name, value)`` pairs, both bytes (decoded as latin-1) or both str;
    ``client`` and ``server`` are ``(host, port)`` or None; ``software`` sets
    ``SERVER_SOFTWARE`` when given."""
    client = client or ("", 0)
    server = server or ("", 0)
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": _text(query_string),
        "RAW_URI": _text(raw_uri),
        "SERVER_PROTOCOL": "HTTP/" + http_version,
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
    }
    if software is not None:
        env["SERVER_SOFTWARE"] = software
    env["wsgi.url_scheme"] = url_scheme
    if extra:
        env.update(extra)
    for name, value in headers:
        key = _key(name)
        v = _value(name, value) if isinstance(value, bytes) else value  # type: ignore[arg-type]
        env[key] = env[key] + "," + v if key in env else v
    return env


def request_environ(req: Any) -> dict[str, Any]:
    """The environ of a native ``Request`` (fastio's own HTTP server)."""
    return build_environ(req.method, req.path, req.query_string, req.url, req.http_version,
                         req.client, req.server, req.headers)
