"""Engine.IO client: polling requests through a user-supplied aiohttp client object.

Used instead of :class:`fastio.engineio.client_http.HTTPConnection` when ``http_session`` is given
(for proxies, custom certificates, or a shared connection pool). aiohttp is imported only here,
only when such an object is given.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any

from fastio.engineio.client_http import HTTPError, Response

__all__ = ["AiohttpRequests"]


class AiohttpRequests:
    """Requests through an aiohttp client object, or a callable (sync or async) returning one.

    A closed client object is replaced by calling the factory again. The object belongs to the
    caller: :meth:`close` leaves it open.
    """

    def __init__(self, source: Any, ssl_verify: bool = True) -> None:
        self.source = source
        self.http: Any = None if callable(source) else source
        self.ssl_verify = ssl_verify

    async def request(self, method: str, url: str, headers: list[tuple[str, str]],
                      body: bytes | None, timeout: float | None) -> Response:
        """Send a request and read its whole response; :class:`HTTPError` on failure."""
        import aiohttp  # only needed by whoever passes an aiohttp client object

        if self.http is None or getattr(self.http, "closed", False):
            http = self.source() if callable(self.source) else self.source
            if inspect.isawaitable(http):
                http = await http
            self.http = http
        kwargs: dict[str, Any] = {"headers": headers, "data": body,
                                  "timeout": aiohttp.ClientTimeout(total=timeout)}
        if not self.ssl_verify:
            kwargs["ssl"] = False
        try:
            async with self.http.request(method, url, **kwargs) as response:
                data = await response.read()
                out: dict[str, list[str]] = {}
                for name, value in response.headers.items():
                    out.setdefault(name.lower(), []).append(value)
                return response.status, out, data
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise HTTPError(f"{method} request failed: {exc!r}") from None

    def close(self) -> None:
        """Nothing to do: the aiohttp object belongs to the caller and stays open."""
