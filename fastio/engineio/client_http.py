"""Engine.IO client: a small HTTP/1.1 client on asyncio streams, for the long-polling transport.

One :class:`HTTPConnection` is one keep-alive connection that runs its requests one at a time
(the polling transport uses one for its GETs and one for its POSTs, as ``engine.io-client``
does). It reads ``Content-Length`` and chunked bodies and bodies that end with the connection,
skips ``1xx`` interim responses, and turns every failure below HTTP into :class:`HTTPError`.
:class:`Requests` is what the polling transport needs from it, so that an aiohttp client
object can stand in (``fastio.engineio.client_aiohttp``).
"""
from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any, Protocol

from fastio._core.packet import json_module
from fastio.engineio.client_endpoint import Endpoint

__all__ = ["HTTPConnection", "HTTPError", "Requests", "Response", "HEAD_LIMIT", "json_body"]

#: A response: status, headers (lower-cased name -> values in order), body.
Response = tuple[int, dict[str, list[str]], bytes]

#: The longest status line, header line or chunk-size line accepted (asyncio's stream limit).
HEAD_LIMIT = 64 * 1024


class HTTPError(Exception):
    """A request failed below HTTP: connection refused or lost, timeout, malformed response."""


class Requests(Protocol):
    """Something that sends HTTP requests to one server."""

    async def request(self, method: str, url: str, headers: list[tuple[str, str]],
                      body: bytes | None, timeout: float | None) -> Response:
        """Send a request and read its whole response; :class:`HTTPError` on failure."""

    def close(self) -> None:
        """Release the connection, if it owns one."""


class HTTPConnection:
    """One keep-alive HTTP/1.1 connection to ``endpoint``; requests run one at a time.

    A request on a reused connection that the server closed while it was idle is retried once
    on a new connection, as long as no byte of a response had arrived.
    """

    def __init__(self, endpoint: Endpoint, ssl_context: ssl_module.SSLContext | None = None) -> None:
        self.endpoint = endpoint
        self.ssl_context = ssl_context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._got_head = False

    async def _open(self) -> None:
        kwargs: dict[str, Any] = {"limit": HEAD_LIMIT}
        if self.ssl_context is not None:
            kwargs["ssl"] = self.ssl_context
            kwargs["server_hostname"] = self.endpoint.host
        self.reader, self.writer = await asyncio.open_connection(
            self.endpoint.host, self.endpoint.port, **kwargs)

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()

    async def request(self, method: str, url: str, headers: list[tuple[str, str]],
                      body: bytes | None, timeout: float | None) -> Response:
        """Send ``method url`` and read the whole response within ``timeout`` seconds.

        ``url`` is absolute; its path and query are the request target. :class:`HTTPError`
        names the cause when the request fails.
        """
        resource = url.split("://", 1)[1]
        resource = resource[resource.index("/"):]
        lines = [f"{method} {resource} HTTP/1.1", f"Host: {self.endpoint.hostport}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        message = head + body if body else head
        where = f"{method} request to {self.endpoint.hostport}"
        for attempt in range(2):
            reused = self.writer is not None
            if reused and (self.reader.at_eof() or self.writer.is_closing()):  # type: ignore[union-attr]
                self.close()
                reused = False
            self._got_head = False
            try:
                return await asyncio.wait_for(self._exchange(message, method), timeout)
            except asyncio.TimeoutError:
                self.close()
                raise HTTPError(f"{method} request timed out after {timeout} s") from None
            except asyncio.IncompleteReadError as exc:
                self.close()
                if reused and attempt == 0 and not self._got_head:
                    continue
                raise HTTPError(f"{where} failed: the connection closed mid-response "
                                f"({len(exc.partial)} of {exc.expected or 'more'} bytes read)") from None
            except asyncio.LimitOverrunError:
                self.close()
                raise HTTPError(f"{where} failed: a response line is longer than "
                                f"{HEAD_LIMIT} bytes") from None
            except (OSError, ValueError) as exc:
                self.close()
                if reused and attempt == 0 and not self._got_head:
                    continue
                raise HTTPError(f"{where} failed: {exc!r}") from None
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, message: bytes, method: str) -> Response:
        if self.writer is None:
            await self._open()
        assert self.writer is not None and self.reader is not None
        self.writer.write(message)
        reader = self.reader
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            self._got_head = True
            lines = head.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            status = int(rest.split(" ", 1)[0])
            headers: dict[str, list[str]] = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers.setdefault(name.strip().lower(), []).append(value.strip())
            if 100 <= status < 200:
                continue
            break
        tokens = {t.strip().lower() for v in headers.get("connection", ()) for t in v.split(",")}
        keep_alive = ("close" not in tokens) if version == "HTTP/1.1" else ("keep-alive" in tokens)
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif any("chunked" in v.lower() for v in headers.get("transfer-encoding", ())):
            chunks = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(chunks)
        elif "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"][0]))
        else:
            body = await reader.read()
            keep_alive = False
        if not keep_alive:
            self.close()
        return status, headers, body


def json_body(body: bytes | None) -> Any:
    """The JSON document in a refusing server's response body (Node's ``{"code", "message"}``),
    or None when there is none."""
    if not body:
        return None
    try:
        return json_module().loads(body)
    except Exception:
        return None
