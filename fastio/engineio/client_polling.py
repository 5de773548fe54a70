"""Engine.IO client: the HTTP long-polling transport.

As ``engine.io-client`` does, one long-poll GET and at most one POST are in flight, each on its
own connection. Outgoing packets queue while a POST is in flight and go in the next one, split so
that no body exceeds the server's ``maxPayload``. For an upgrade the transport is paused (the
GET and the POST in flight finish, no new ones start) and its queue is handed to the WebSocket.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Protocol

from fastio import exceptions
from fastio._core import eio
from fastio.base.util import keep as keep_task
from fastio.engineio.client_endpoint import Endpoint
from fastio.engineio.client_http import HTTPError, Requests, json_body

__all__ = ["Polling", "PollingSession"]


class PollingSession(Protocol):
    """What the polling transport reads from the session it carries."""

    state: str
    current_transport: str | None
    sid: str | None
    ping_interval: float | None
    ping_timeout: float | None
    max_payload: int
    request_timeout: float
    logger: logging.Logger


class Polling:
    """The long-polling transport of one session.

    :param session: the session's state (``state``, ``sid``, the handshake's limits).
    :param endpoint: URLs, headers and cookies.
    :param get: the connection the handshake and the long polls go on.
    :param post: the connection the POSTs go on.
    :param on_packet: called with ``(type, data, binary)`` for each packet received.
    :param on_error: called with a description when a request fails or the server answers
                     with an error; the session closes with ``'transport error'``.
    """

    def __init__(self, session: PollingSession, endpoint: Endpoint, get: Requests, post: Requests,
                 on_packet: Callable[[int, bytes, bool], None],
                 on_error: Callable[[str], None]) -> None:
        self.session = session
        self.endpoint = endpoint
        self.get = get
        self.post = post
        self.on_packet = on_packet
        self.on_error = on_error
        #: Packets waiting for a POST, each ``(packet bytes, binary)``.
        self.queue: list[tuple[bytes, bool]] = []
        self.paused = False
        self._get_busy = False
        self._post_busy = False
        self._final_flush = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._reader: asyncio.Task[Any] | None = None
        self._writer: asyncio.Task[Any] | None = None

    def _active(self) -> bool:
        return self.session.state == "connected" and self.session.current_transport == "polling"

    # -- the handshake ---------------------------------------------------------------------

    async def handshake(self) -> list[tuple[int, bytes, bool]]:
        """The handshake GET: the packets of the server's answer, OPEN first.

        ``ConnectionError`` when the request fails or the server refuses (with its JSON body).
        """
        url = self.endpoint.url("polling", None)
        self.session.logger.info("Attempting polling connection to %s", url)
        try:
            status, headers, body = await self.get.request(
                "GET", url, self.endpoint.request_headers(), None, self.session.request_timeout)
        except HTTPError as exc:
            raise exceptions.ConnectionError(str(exc)) from None
        self.endpoint.store_cookies(headers)
        if not 200 <= status < 300:
            raise exceptions.ConnectionError(
                f"Unexpected status code {status} in server response", json_body(body))
        try:
            packets = eio.decode_payload(body, 0)
        except ValueError:
            raise exceptions.ConnectionError("Unexpected response from server") from None
        if not packets or packets[0][0] != eio.OPEN or packets[0][2]:
            raise exceptions.ConnectionError("OPEN packet not returned by server")
        return packets

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the long polls and the POST loop."""
        self._reader = keep_task(asyncio.ensure_future(self._poll_loop()))
        self._writer = keep_task(asyncio.ensure_future(self._post_loop()))

    def send(self, items: list[tuple[bytes, bool]]) -> None:
        """Queue packets, each ``(packet bytes, binary)``, for the next POST."""
        self.queue.extend(items)
        self._wake.set()

    def take_queued(self) -> list[tuple[bytes, bool]]:
        """Remove and return the packets not POSTed yet."""
        queued, self.queue = self.queue, []
        return queued

    async def pause(self, timeout: float) -> None:
        """Start no new request and wait until the GET and the POST in flight finish.

        ``asyncio.TimeoutError`` when they take longer than ``timeout`` each.
        """
        self.paused = True
        while self._get_busy or self._post_busy:
            self._idle.clear()
            await asyncio.wait_for(self._idle.wait(), timeout)

    def resume(self) -> None:
        """Undo :meth:`pause`: polling goes on (after a failed upgrade)."""
        self.paused = False
        if not self._active():
            return
        if self._reader is None or self._reader.done():
            self._reader = keep_task(asyncio.ensure_future(self._poll_loop()))
        self._wake.set()

    async def close(self, packet: bytes, abort: bool, timeout: float) -> None:
        """POST what is queued, then ``packet`` (CLOSE) in a POST of its own; with ``abort`` only
        queue it and wait for nothing. Best effort: errors and timeouts are ignored.

        The JavaScript client does the same: a server handles the Socket.IO packets of a payload
        only after its CLOSE.
        """
        writer = self._writer
        if writer is None or writer.done():
            return
        try:
            if not abort:
                await asyncio.wait_for(self._flushed(), timeout)
            self.queue.append((packet, False))
            self._final_flush = True
            self._wake.set()
            if not abort:
                await asyncio.wait_for(asyncio.shield(writer), timeout)
        except Exception:  # flushing is best effort; the connection ends anyway
            pass

    async def _flushed(self) -> None:
        """Wait until every queued item was POSTed (or the writer stopped)."""
        writer = self._writer
        while (self.queue or self._post_busy) and writer is not None and not writer.done():
            self._wake.set()
            self._idle.clear()
            await self._idle.wait()

    def stop(self) -> None:
        """Cancel the loops (not the calling task), close the connections, drop the queue."""
        current = asyncio.current_task()
        for task in (self._reader, self._writer):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._reader = self._writer = None
        self.get.close()
        self.post.close()
        self.queue = []

    # -- the loops -------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        session = self.session
        while self._active() and not self.paused:
            url = self.endpoint.url("polling", session.sid)
            timeout = (session.ping_interval or 25) + (session.ping_timeout or 20) + 5
            self._get_busy = True
            try:
                status, headers, body = await self.get.request(
                    "GET", url, self.endpoint.request_headers(), None, timeout)
            except HTTPError as exc:
                if self._active():
                    self.on_error(f"polling GET failed: {exc}")
                return
            finally:
                self._get_busy = False
                self._idle.set()
            if session.state != "connected":
                return
            if "set-cookie" in headers:
                self.endpoint.store_cookies(headers)
            if status != 200:
                self.on_error(f"Unexpected status code {status} in polling response, aborting")
                return
            try:
                packets = eio.decode_payload(body, 0)
            except ValueError:
                self.on_error("Unexpected payload from server, aborting")
                return
            for ptype, data, binary in packets:
                self.on_packet(ptype, data, binary)
                if session.state != "connected":
                    return

    def _take_batch(self) -> list[tuple[bytes, bool]]:
        """Queued items that fit in one POST (at least one)."""
        out = self.queue
        limit = self.session.max_payload
        size = 0
        count = 0
        for item, binary in out:
            # a binary item goes base64-encoded behind a "b"; each is followed by a separator
            n = (len(item) + 2) // 3 * 4 + 2 if binary else len(item) + 1
            if count and size + n > limit:
                break
            size += n
            count += 1
        batch = out[:count]
        del out[:count]
        return batch

    async def _post_loop(self) -> None:
        session = self.session
        while True:
            if not self.queue or self.paused:
                if self._final_flush and not self.queue:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if session.state not in ("connected", "disconnecting") or session.current_transport != "polling":
                return
            batch = self._take_batch()
            body = eio.encode_payload([eio.poll_binary(b) if binary else b for b, binary in batch])
            url = self.endpoint.url("polling", session.sid)
            self._post_busy = True
            try:
                status, _, _ = await self.post.request(
                    "POST", url, self.endpoint.request_headers(True), body, session.request_timeout)
            except HTTPError as exc:
                if session.state == "connected":
                    self.on_error(f"polling POST failed: {exc}")
                return
            finally:
                self._post_busy = False
                self._idle.set()
            if not 200 <= status < 300:
                if session.state == "connected":
                    self.on_error(f"Unexpected status code {status} in POST response, aborting")
                return
