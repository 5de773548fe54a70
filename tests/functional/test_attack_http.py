"""The native server's HTTP and connection layer under attack: every connection bounded in time
and memory (docs/reliability.md, "HTTP and connections").

Each test sets small limits and timeouts through ``fastio.serve``'s options and checks the
behaviour: the status code, the connection closed, the server's count of open connections back
to where it was.  None measures a duration.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest

import fastio

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0  # upper bound for an awaited outcome; the tests finish long before it


@pytest.fixture
async def serve():
    """Factory: ``srv = await serve(sio=None, **options)``, closed at teardown."""
    servers: list[Any] = []

    async def factory(sio: Any = None, **options: Any) -> Any:
        if sio is None:
            sio = fastio.AsyncServer(cors_allowed_origins="*")
        options.setdefault("shutdown_timeout", 2.0)
        srv = await fastio.serve(sio, "127.0.0.1", 0, **options)
        servers.append(srv)
        return srv

    yield factory
    for srv in reversed(servers):
        await asyncio.wait_for(srv.close(), WAIT)


async def connections_drop_to(srv: Any, n: int) -> None:
    """Wait until the server has ``n`` open connections (it is told of a connection's end one
    loop iteration after the transport closes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while srv.connections != n:
        assert loop.time() < deadline, f"{srv.connections} connections open, expected {n}"
        await asyncio.sleep(0.01)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionError):
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), WAIT)
            if not chunk:
                break
            data += chunk
    return data


async def send_forever(writer: asyncio.StreamWriter, chunk: bytes, total: int, progress: list[int]) -> None:
    """Send ``chunk`` until ``total`` bytes went out or the server hung up (``progress[0]``:
    bytes sent so far)."""
    with contextlib.suppress(ConnectionError):
        while progress[0] < total:
            writer.write(chunk)
            await writer.drain()
            progress[0] += len(chunk)


# -- 1. a request head that never ends ---------------------------------------------------------------


@pytest.mark.parametrize("start, status", [
    (b"GET /x HTTP/1.1\r\nHost: x\r\nX-Long: ", 431),        # a header value
    (b"GET /x HTTP/1.1\r\nHost: x\r\nX-", 431),              # a header name
    (b"GET /x HTTP/1.1\r\nX-Long: ", 431),                   # the first header's value
    (b"GET /", 414),                                         # the URL
])
async def test_endless_request_head_is_refused_while_it_arrives(serve, start, status):
    srv = await serve(max_header_size=8192)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(start)
    # 64 MiB would be sent if the server waited for the head to end; it answers long before.
    progress = [0]
    sender = asyncio.ensure_future(send_forever(writer, b"a" * 4096, 64 << 20, progress))
    data = await asyncio.wait_for(reader.readuntil(b"\r\n"), WAIT)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:80]
    assert progress[0] < 64 << 20
    # The server drops what the client still sends (up to a bound), then the connection ends.
    await read_to_eof(reader)
    await asyncio.wait_for(sender, WAIT)
    writer.close()
    await connections_drop_to(srv, 0)


async def test_complete_head_under_the_limit_is_served(serve):
    srv = await serve(max_header_size=8192)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 6000 + b"\r\nConnection: close\r\n\r\n")
    data = await read_to_eof(reader)
    assert data.startswith(b"HTTP/1.1 404 "), data[:80]
    writer.close()


# -- 4. timeouts before any session exists ------------------------------------------------------------


async def test_silent_connections_are_closed_after_headers_timeout(serve):
    srv = await serve(headers_timeout=0.3)
    conns = [await asyncio.open_connection("127.0.0.1", srv.port) for _ in range(20)]
    assert srv.connections == 20
    for reader, writer in conns:
        assert await read_to_eof(reader) == b""
        writer.close()
    await connections_drop_to(srv, 0)


async def test_slowloris_gets_408_after_headers_timeout(serve):
    srv = await serve(headers_timeout=0.4)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: x\r\n")

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError):
            for i in range(1000):
                writer.write(b"X-%d: y\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.02)

    task = asyncio.ensure_future(trickle())
    data = await read_to_eof(reader)
    task.cancel()
    assert data.startswith(b"HTTP/1.1 408 "), data[:80]
    writer.close()
    await connections_drop_to(srv, 0)


async def test_body_that_never_comes_is_ended_by_request_timeout(serve):
    srv = await serve(request_timeout=0.4)
    conns = []
    for _ in range(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000\r\n\r\nabc")
        conns.append((reader, writer))
    for reader, writer in conns:
        data = await read_to_eof(reader)
        assert data.startswith(b"HTTP/1.1 408 "), data[:80]
        writer.close()
    await connections_drop_to(srv, 0)


async def test_too_large_content_length_gets_413_before_the_body(serve):
    srv = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 1000000000000\r\n\r\n")
    data = await read_to_eof(reader)
    assert data.startswith(b"HTTP/1.1 413 "), data[:80]
    writer.close()
    await connections_drop_to(srv, 0)


async def test_idle_keep_alive_connection_is_closed(serve):
    srv = await serve(keep_alive_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    data = await read_to_eof(reader)
    assert data.startswith(b"HTTP/1.1 404 ") and data.count(b"HTTP/1.1") == 1, data[:80]
    writer.close()
    await connections_drop_to(srv, 0)


async def test_unfinished_websocket_upgrade_is_closed(serve, raw_ws):
    srv = await serve(upgrade_timeout=0.3)
    reader, writer = await raw_ws.tcp(srv.port)
    # A polling session, then an upgrade probe that never sends "2probe".
    writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), WAIT)
    sid = body.split(b'"sid":"')[1].split(b'"')[0].decode()
    ws_reader, ws_writer = await raw_ws.tcp(srv.port)
    ws_writer.write(raw_ws.upgrade_request(f"/socket.io/?EIO=4&transport=websocket&sid={sid}"))
    head = await asyncio.wait_for(ws_reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 101 "), head
    await read_to_eof(ws_reader)
    ws_writer.close()
    await connections_drop_to(srv, 1)  # the polling connection stays (keep-alive 5 s)


# -- 2 and 8. pipelining -----------------------------------------------------------------------------


async def test_many_pipelined_requests_in_one_write_are_all_answered(serve):
    srv = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    n = 3000
    writer.write(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" * n
                 + b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
    data = await read_to_eof(reader)
    assert data.count(b"HTTP/1.1 404 ") == n + 1
    writer.close()
    await connections_drop_to(srv, 0)


class _Transport:
    """A transport whose peer reads nothing: writes pile up, and past 64 KiB the protocol is
    told to pause writing (as asyncio's transports do)."""

    def __init__(self) -> None:
        self.buffered = 0
        self.responses = 0
        self.reading = True
        self.pauses = 0
        self.proto: Any = None
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1)

    def write(self, data: bytes) -> None:
        self.responses += data.count(b"HTTP/1.1 ")
        before = self.buffered
        self.buffered += len(data)
        if before <= 65536 < self.buffered:
            self.proto.pause_writing()

    def drain(self) -> None:
        self.buffered = 0
        self.proto.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


class _NotFound:
    """The host a protocol calls: every request is a 404 of ``size`` bytes."""
    local_addr = None

    def __init__(self, size: int) -> None:
        self.body = b"x" * size
        self.handled = 0

    def handle_request(self, req: Any) -> None:
        self.handled += 1
        req.respond(404, [("Content-Type", "text/plain")], self.body)

    def connection_opened(self, proto: Any) -> None:
        pass

    def connection_closed(self, proto: Any) -> None:
        pass


async def test_pipelined_requests_stop_reading_while_responses_are_unread():
    from fastio._core.protocol import HttpProtocol, Limits

    host = _NotFound(2000)
    proto = HttpProtocol(host, 1_000_000, 1_000_000, Limits(max_write_buffer=1 << 20))
    transport = _Transport()
    transport.proto = proto
    proto.connection_made(transport)
    n = 2000
    proto.data_received(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" * n)
    # 64 KiB of responses and the server stops: no more requests served, no more read.
    assert not transport.reading
    assert 32 <= host.handled <= 34
    assert transport.buffered < 70_000
    answered = host.handled
    # The peer reads: the rest is served, in bounded batches, until all are answered.
    while host.handled < n:
        transport.drain()
        for _ in range(5):
            await asyncio.sleep(0)
        assert host.handled > answered, "no progress after the peer read"
        answered = host.handled
    assert transport.responses == n
    assert transport.reading and not transport.aborted


class _Streamer(_NotFound):
    """A host whose response streams ``chunks`` chunks at once, ignoring backpressure."""

    def __init__(self, size: int, chunks: int) -> None:
        super().__init__(size)
        self.chunks = chunks

    def handle_request(self, req: Any) -> None:
        self.handled += 1
        req.start_response(200, [("Content-Type", "text/plain")])
        for _ in range(self.chunks):
            req.write(self.body)
        req.end()


async def test_unread_responses_past_the_write_budget_abort_the_connection():
    from fastio._core.protocol import HttpProtocol, Limits

    host = _Streamer(100_000, 10)
    proto = HttpProtocol(host, 1_000_000, 1_000_000, Limits(max_write_buffer=500_000))
    transport = _Transport()
    transport.proto = proto
    proto.connection_made(transport)
    proto.data_received(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert host.handled == 1 and transport.aborted
    assert transport.buffered < 700_000


# -- 5. a client dropped for not reading loses its socket at once --------------------------------------


async def test_client_dropped_for_not_reading_is_closed_at_once(serve, raw_ws):
    sio = fastio.AsyncServer(cors_allowed_origins="*", max_write_buffer=256 * 1024)
    srv = await serve(sio, close_timeout=60, keep_alive_timeout=60, headers_timeout=60)
    dropped = asyncio.Event()

    @sio.event
    def disconnect(sid, reason):
        dropped.set()

    slow = await raw_ws.open_non_reading(srv.port)
    assert srv.connections == 1
    blob = "x" * 16384
    for _ in range(200):  # 3 MiB for a client that reads nothing
        await sio.emit("blob", blob, to=slow.sid)
        await asyncio.sleep(0)
        if dropped.is_set():
            break
    await asyncio.wait_for(dropped.wait(), WAIT)
    # The peer still holds its socket and reads nothing; the server's end is gone.
    await connections_drop_to(srv, 0)


# -- graceful shutdown -----------------------------------------------------------------------------------


async def test_shutdown_flushes_readers_and_aborts_non_readers(serve, raw_ws):
    sio = fastio.AsyncServer(cors_allowed_origins="*")
    srv = await serve(sio, shutdown_timeout=0.5)
    reader_ws = await raw_ws.open(srv.port)
    await reader_ws.sio_connect()
    slow = await raw_ws.open_non_reading(srv.port)
    blob = "y" * 16384
    for i in range(40):
        await sio.emit("n", i)
    for _ in range(400):  # 6 MiB, more than the kernel's buffers hold for a peer that reads nothing
        await sio.emit("blob", blob, to=slow.sid)

    got: list[int] = []

    async def read_all() -> None:
        with contextlib.suppress(raw_ws.WSClosed):
            while True:
                text = await reader_ws.recv_text()
                if text.startswith("42"):
                    got.append(int(text.split(",")[1].rstrip("]")))

    reading = asyncio.ensure_future(read_all())
    await asyncio.wait_for(srv.close(), WAIT)
    await asyncio.wait_for(reading, WAIT)
    assert got == list(range(40))
    assert srv.connections == 0


async def test_unknown_server_option_is_refused():
    with pytest.raises(TypeError, match="header_timeout"):
        await fastio.serve(fastio.AsyncServer(), "127.0.0.1", 0, header_timeout=1)


async def test_large_body_and_pipelined_request_after_it_are_parsed_across_slices(serve):
    srv = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    body = b"4" + b"z" * 300_000
    writer.write(b"POST /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body
                 + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await read_to_eof(reader)
    assert data.startswith(b"HTTP/1.1 400 ") and b'"code":1' in data, data[:200]
    assert data.count(b"HTTP/1.1 404 ") == 1
    writer.close()


def test_raise_fd_limit_moves_the_soft_limit_to_the_hard_limit():
    import resource

    from fastio.hosting.tuning import raise_fd_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    try:
        if soft == hard and hard > 256:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        assert raise_fd_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
