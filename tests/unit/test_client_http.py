"""The Engine.IO client's HTTP/1.1 client (fastio.engineio.client_http) against a scripted
asyncio server on port 0: body framings, keep-alive, and the errors it reports."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

import pytest

from fastio.engineio.client_endpoint import Endpoint
from fastio.engineio.client_http import HEAD_LIMIT, HTTPConnection, HTTPError

#: (request head, request body) -> (response bytes, close the connection after writing them)
Script = Callable[[bytes, bytes], "tuple[bytes, bool]"]


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
    LOOPS["uvloop"] = uvloop.new_event_loop
except ImportError:  # no uvloop on Windows
    pass


def on_both_loops(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[str], None]:
    """Run ``test`` once on the stdlib loop and once on uvloop: their streams differ in details."""
    def run(loop_name: str) -> None:
        loop = LOOPS[loop_name]()
        try:
            loop.run_until_complete(test())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return pytest.mark.parametrize("loop_name", sorted(LOOPS))(run)  # type: ignore[no-any-return]


def ok(body: bytes, *headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Server:
    """Answers each request as ``script`` says; counts connections and keeps the requests."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.closed = asyncio.Event()
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()
        # every test closes its client first, so each handler sees EOF and returns
        await asyncio.gather(*self.handlers)

    def connection(self) -> HTTPConnection:
        return HTTPConnection(Endpoint(f"http://127.0.0.1:{self.port}", "engine.io"))

    @property
    def url(self) -> str:
        return Endpoint(f"http://127.0.0.1:{self.port}", "engine.io").url("polling", "abc")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                response, close = self.script(head, body)
                writer.write(response)
                await writer.drain()
                if close:
                    return
        finally:
            writer.close()
            await writer.wait_closed()
            self.closed.set()


@on_both_loops
async def test_content_length_body_and_headers():
    reply = ok(b"4hello", "Set-Cookie: a=1; Path=/", "Set-Cookie: b=2", "X-Thing:  spaced ")
    async with Server(lambda head, body: (reply, False)) as server:
        http = server.connection()
        status, headers, body = await http.request("GET", server.url, [("Accept", "*/*")], None, 5)
        http.close()
    assert (status, body) == (200, b"4hello")
    assert headers["set-cookie"] == ["a=1; Path=/", "b=2"]
    assert headers["x-thing"] == ["spaced"]
    head = server.requests[0][0].decode()
    assert head.startswith("GET /engine.io/?EIO=4&transport=polling&t=")
    assert "&sid=abc HTTP/1.1\r\n" in head
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head and "Accept: */*\r\n" in head


@on_both_loops
async def test_chunked_body_with_extension_and_trailer():
    reply = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n6;name=value\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    async with Server(lambda head, body: (reply, False)) as server:
        http = server.connection()
        first = await http.request("GET", server.url, [], None, 5)
        second = await http.request("GET", server.url, [], None, 5)
        http.close()
    assert first[2] == second[2] == b"hello world"
    assert server.connections == 1  # the trailer was consumed: the connection stayed usable


@on_both_loops
async def test_keep_alive_reuses_the_connection_for_posts():
    async with Server(lambda head, body: (ok(b"ok"), False)) as server:
        http = server.connection()
        for n in range(3):
            status, _, body = await http.request("POST", server.url, [], b"4msg%d" % n, 5)
            assert (status, body) == (200, b"ok")
        http.close()
    assert server.connections == 1
    assert [body for _, body in server.requests] == [b"4msg0", b"4msg1", b"4msg2"]
    assert all(b"Content-Length: 5\r\n" in head for head, _ in server.requests)


@on_both_loops
async def test_connection_close_opens_a_new_connection():
    async with Server(lambda head, body: (ok(b"x", "Connection: close"), False)) as server:
        http = server.connection()
        for _ in range(2):
            assert (await http.request("GET", server.url, [], None, 5))[2] == b"x"
        http.close()
    assert server.connections == 2


@on_both_loops
async def test_body_until_the_connection_closes():
    async with Server(lambda head, body: (b"HTTP/1.0 200 OK\r\n\r\nall of it", True)) as server:
        http = server.connection()
        assert (await http.request("GET", server.url, [], None, 5))[2] == b"all of it"
        assert http.writer is None  # not reused: the body ended with the connection


@on_both_loops
async def test_interim_responses_are_skipped_and_empty_bodies_read_nothing():
    replies = iter([b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final"),
                    b"HTTP/1.1 204 No Content\r\n\r\n",
                    ok(b"after")])
    async with Server(lambda head, body: (next(replies), False)) as server:
        http = server.connection()
        assert (await http.request("POST", server.url, [], b"x", 5))[::2] == (200, b"final")
        assert (await http.request("GET", server.url, [], None, 5))[::2] == (204, b"")
        assert (await http.request("GET", server.url, [], None, 5))[2] == b"after"
        http.close()
    assert server.connections == 1


@on_both_loops
async def test_a_connection_the_server_closed_while_idle_is_replaced():
    replies = iter([(ok(b"one"), True), (ok(b"two"), False)])
    async with Server(lambda head, body: next(replies)) as server:
        http = server.connection()
        assert (await http.request("GET", server.url, [], None, 5))[2] == b"one"
        await server.closed.wait()
        assert (await http.request("GET", server.url, [], None, 5))[2] == b"two"
        http.close()
    assert server.connections == 2


@on_both_loops
async def test_closed_mid_body_is_a_clear_error():
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"
    async with Server(lambda head, body: (reply, True)) as server:
        http = server.connection()
        with pytest.raises(HTTPError, match=r"closed mid-response \(5 of 10 bytes read\)"):
            await http.request("GET", server.url, [], None, 5)
    assert server.connections == 1  # a response had begun: no retry


@on_both_loops
async def test_closed_mid_chunked_body_is_a_clear_error():
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"
    async with Server(lambda head, body: (reply, True)) as server:
        with pytest.raises(HTTPError, match="closed mid-response"):
            await server.connection().request("GET", server.url, [], None, 5)


@on_both_loops
async def test_closed_before_the_head_ends_is_a_clear_error():
    async with Server(lambda head, body: (b"HTTP/1.1 200 OK\r\nContent-Le", True)) as server:
        with pytest.raises(HTTPError, match="closed mid-response"):
            await server.connection().request("GET", server.url, [], None, 5)


@on_both_loops
async def test_oversized_response_head_is_rejected():
    reply = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (HEAD_LIMIT + 1) + b"\r\n\r\n"
    async with Server(lambda head, body: (reply, False)) as server:
        http = server.connection()
        with pytest.raises(HTTPError, match=f"longer than {HEAD_LIMIT} bytes"):
            await http.request("GET", server.url, [], None, 5)
        assert http.writer is None


@on_both_loops
async def test_oversized_chunk_size_line_is_rejected():
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * (HEAD_LIMIT + 8)
    async with Server(lambda head, body: (reply, False)) as server:
        with pytest.raises(HTTPError, match="longer than"):
            await server.connection().request("GET", server.url, [], None, 5)


@on_both_loops
async def test_malformed_status_line_is_an_error():
    async with Server(lambda head, body: (b"HTTP/1.1 OK\r\n\r\n", False)) as server:
        with pytest.raises(HTTPError, match="failed: ValueError"):
            await server.connection().request("GET", server.url, [], None, 5)


@on_both_loops
async def test_no_answer_times_out():
    accepted: list[asyncio.StreamWriter] = []

    def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    endpoint = Endpoint(f"http://127.0.0.1:{port}", "engine.io")
    http = HTTPConnection(endpoint)
    try:
        with pytest.raises(HTTPError, match="GET request timed out after 0.05 s"):
            await http.request("GET", endpoint.url("polling", None), [], None, 0.05)
        assert http.writer is None
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@on_both_loops
async def test_refused_connection_is_an_error():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    endpoint = Endpoint(f"http://127.0.0.1:{port}", "engine.io")
    with pytest.raises(HTTPError, match=f"GET request to 127.0.0.1:{port} failed"):
        await HTTPConnection(endpoint).request("GET", endpoint.url("polling", None), [], None, 5)
