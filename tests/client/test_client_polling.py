"""The Engine.IO client's long-polling transport (fastio.engineio.client_polling) with a fake
session and fake HTTP connections: no sockets."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from fastio import exceptions
from fastio._core import eio
from fastio.engineio.client_endpoint import Endpoint
from fastio.engineio.client_http import HTTPError, Response
from fastio.engineio.client_polling import Polling

OPEN = b'0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":100}'


class Session:
    state = "connected"
    current_transport: str | None = "polling"
    sid: str | None = "s1"
    ping_interval: float | None = 25.0
    ping_timeout: float | None = 20.0
    max_payload = 1_000_000
    request_timeout = 5.0
    logger = logging.getLogger("test_client_polling")


class FakeHTTP:
    """Each request waits for the test to answer it (a Response or an exception)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[tuple[str, str, bytes | None, asyncio.Future[Response]]] = \
            asyncio.Queue()
        self.closed = False

    async def request(self, method: str, url: str, headers: list[tuple[str, str]],
                      body: bytes | None, timeout: float | None) -> Response:
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        await self.incoming.put((method, url, body, answer))
        return await answer

    def close(self) -> None:
        self.closed = True

    async def next(self) -> tuple[str, str, bytes | None, asyncio.Future[Response]]:
        return await asyncio.wait_for(self.incoming.get(), 5)


class Harness:
    def __init__(self) -> None:
        self.session = Session()
        self.get = FakeHTTP()
        self.post = FakeHTTP()
        self.packets: list[tuple[int, bytes, bool]] = []
        self.errors: list[str] = []
        self.polling = Polling(self.session, Endpoint("http://h", "engine.io", timestamp=False),
                               self.get, self.post, self.on_packet, self.errors.append)

    def on_packet(self, ptype: int, data: bytes, binary: bool) -> None:
        self.packets.append((ptype, data, binary))


@pytest.fixture
async def harness() -> Any:
    h = Harness()
    yield h
    h.polling.stop()


async def test_handshake_returns_the_packets_and_keeps_cookies(harness):
    task = asyncio.ensure_future(harness.polling.handshake())
    method, url, body, answer = await harness.get.next()
    assert (method, url, body) == ("GET", "http://h/engine.io/?EIO=4&transport=polling", None)
    answer.set_result((200, {"set-cookie": ["lb=1"]}, OPEN + b"\x1e4hi"))
    assert await task == [(eio.OPEN, OPEN[1:], False), (eio.MESSAGE, b"hi", False)]
    assert harness.polling.endpoint.cookies == {"lb": "1"}


@pytest.mark.parametrize("response, message, body", [
    ((403, {}, b'{"code":4,"message":"no"}'), "Unexpected status code 403", {"code": 4, "message": "no"}),
    ((200, {}, b"4hi"), "OPEN packet not returned", None),
    ((200, {}, b"9x"), "Unexpected response", None),
])
async def test_handshake_refusals(harness, response, message, body):
    task = asyncio.ensure_future(harness.polling.handshake())
    (await harness.get.next())[3].set_result(response)
    with pytest.raises(exceptions.ConnectionError, match=message) as info:
        await task
    assert (info.value.args[1] if len(info.value.args) > 1 else None) == body


async def test_long_polls_deliver_packets_in_order(harness):
    harness.polling.start()
    method, url, _, answer = await harness.get.next()
    assert (method, url) == ("GET", "http://h/engine.io/?EIO=4&transport=polling&sid=s1")
    answer.set_result((200, {}, b"2\x1e4one\x1ebAQI="))
    (await harness.get.next())[3].set_result((200, {}, b"4two"))
    await harness.get.next()
    assert harness.packets == [(eio.PING, b"", False), (eio.MESSAGE, b"one", False),
                               (eio.MESSAGE, b"\x01\x02", True), (eio.MESSAGE, b"two", False)]


async def test_posts_are_split_at_the_servers_max_payload(harness):
    harness.session.max_payload = 13
    harness.polling.send([(b"4aaaa", False)] * 3 + [(b"\x00\x01\x02", True)])
    harness.polling.start()
    bodies = []
    for _ in range(2):
        method, _, body, answer = await harness.post.next()
        bodies.append(body)
        answer.set_result((200, {}, b"ok"))
    # 6 bytes per text packet with its separator: two fit in 13; "bAAEC" + separator is 6 more
    assert bodies == [b"4aaaa\x1e4aaaa", b"4aaaa\x1ebAAEC"]


async def test_close_posts_the_queue_then_close_alone(harness):
    harness.polling.start()
    harness.polling.send([(b"4last", False)])
    harness.session.state = "disconnecting"
    closing = asyncio.ensure_future(harness.polling.close(eio.encode_packet(eio.CLOSE), False, 5))
    for expected in (b"4last", b"1"):
        _, _, body, answer = await harness.post.next()
        assert body == expected
        answer.set_result((200, {}, b"ok"))
    await closing
    assert not harness.errors


async def test_pause_waits_for_the_requests_in_flight(harness):
    harness.polling.start()
    get_answer = (await harness.get.next())[3]
    harness.polling.send([(b"4x", False)])
    post_answer = (await harness.post.next())[3]
    pausing = asyncio.ensure_future(harness.polling.pause(5))
    harness.polling.send([(b"4queued", False)])
    get_answer.set_result((200, {}, b"6"))
    post_answer.set_result((200, {}, b"ok"))
    await pausing
    assert harness.get.incoming.empty() and harness.post.incoming.empty()  # nothing new started
    assert harness.polling.take_queued() == [(b"4queued", False)]


@pytest.mark.parametrize("failure, message", [
    (HTTPError("boom"), "polling POST failed: boom"),
    ((500, {}, b""), "Unexpected status code 500 in POST response"),
])
async def test_failed_post_is_reported(harness, failure, message):
    harness.polling.start()
    harness.polling.send([(b"4x", False)])
    answer = (await harness.post.next())[3]
    if isinstance(failure, Exception):
        answer.set_exception(failure)
    else:
        answer.set_result(failure)
    while not harness.errors:
        await asyncio.sleep(0)
    assert harness.errors[0].startswith(message)
