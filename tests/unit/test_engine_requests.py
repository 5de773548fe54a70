"""Engine.IO request handling without sockets: fake requests in, recorded responses out.

Each test builds a ``fastio.engineio.AsyncServer`` and calls its public entry point,
``handle_request(req)``, with ``FakeRequest`` objects that implement the request interface of
``fastio/_core/protocol.pyi`` (``Request``) and record what the server answered.  Nothing
listens on a port and nothing here depends on the server's private attributes: only
``handle_request``, ``on()``, ``send()``, ``disconnect()``, ``sockets`` and ``shutdown()``.

The server binds to the running loop on its first request, so the tests are coroutines.  They
drive their event loops themselves (``on_each_loop``), once on uvloop and once on asyncio's loop,
rather than through pytest-asyncio: the unit tests also run against every built wheel
(cibuildwheel's test-command), where only pytest, hypothesis and the wheel's dependencies are
installed.
"""
from __future__ import annotations

import asyncio
import functools
import gzip
import inspect
import json
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import pytest

from fastio.engineio import AsyncServer

TIMEOUT = 5.0
PATH = "/engine.io/"
SEP = b"\x1e"  # the record separator between packets of a polling payload


class Response:
    """What the server answered: status, headers (names lower-cased, as str) and body."""

    def __init__(self, status: int, headers: list[tuple[Any, Any]], body: bytes | str) -> None:
        self.status = status
        self.header_list = [(_text(k).lower(), _text(v)) for k, v in headers]
        self.body = body.encode() if isinstance(body, str) else bytes(body)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.header_list if k == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times: {self.header_list}"
        return values[0] if values else None

    def json(self) -> Any:
        assert self.header("content-type") == "application/json", self.header_list
        return json.loads(self.body)

    def open_packet(self) -> dict[str, Any]:
        assert self.status == 200, (self.status, self.body)
        assert self.body[:1] == b"0", self.body
        return json.loads(self.body[1:])

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.header_list}, {self.body!r})"


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


class FakeRequest:
    """A ``Request`` (fastio/_core/protocol.pyi) that records the response instead of writing it.

    ``await req.response()`` waits for the server's answer; ``req.abort()`` is the client going
    away while the request is pending (what the native protocol does on connection loss)."""

    def __init__(
        self,
        method: str = "GET",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        path: str = PATH,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = urlencode(query or {}).encode()
        self.url = path.encode() + (b"?" + self.query_string if self.query_string else b"")
        hdrs = {"host": "localhost:5000", "user-agent": "fake/1.0", **(headers or {})}
        if body:
            hdrs.setdefault("content-length", str(len(body)))
        self.headers = [(k.lower().encode(), v.encode()) for k, v in hdrs.items()]
        self.body = body
        self.keep_alive = True
        self.upgrade = False
        self.http_version = "1.1"
        self.responded = False
        self.streaming = False
        self.ended = False
        self.on_abort = None
        self.environ = None
        self.closed = False
        self.websocket_accepts: list[tuple[Any, bool, Any]] = []
        self._response: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

    # -- the Request interface -------------------------------------------------------------------

    def header(self, name: bytes, default: Any = None) -> Any:
        for k, v in self.headers:
            if k == name:
                return v
        return default

    @property
    def client(self) -> tuple[str, int]:
        return ("127.0.0.1", 54321)

    @property
    def server(self) -> tuple[str, int]:
        return ("127.0.0.1", 5000)

    @property
    def protocol(self) -> Any:
        raise AssertionError("the Engine.IO server should not need the connection's protocol")

    def respond(self, status: int, headers: list[tuple[Any, Any]], body: bytes | str = b"") -> None:
        assert not self.responded, f"a second response to one request: {status} {body!r}"
        assert not self.closed, "a response after the client went away"
        self.responded = True
        self.ended = True
        self._response.set_result(Response(status, headers, body))

    def start_response(self, status: int, headers: list[tuple[Any, Any]]) -> None:
        raise AssertionError("Engine.IO responses are never chunked")

    def write(self, data: bytes) -> None:
        raise AssertionError("Engine.IO responses are never chunked")

    def end(self) -> None:
        raise AssertionError("Engine.IO responses are never chunked")

    def accept_websocket(self, conn: Any, probe: bool, extra_headers: list[Any] | None = None) -> Any:
        # No WebSocket here: None is what the native protocol returns when it cannot switch.
        self.websocket_accepts.append((conn, probe, extra_headers))
        return None

    # -- test helpers ----------------------------------------------------------------------------

    def abort(self) -> None:
        """The client disconnects before the response."""
        self.closed = True
        if self.on_abort is not None:
            self.on_abort(self)

    async def response(self, timeout: float = TIMEOUT) -> Response:
        try:
            return await asyncio.wait_for(asyncio.shield(self._response), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no response to {self.method} {self.url!r} within {timeout} s") from None


class Events:
    """The server's connect/message/disconnect handler calls, awaitable."""

    def __init__(self, eio: AsyncServer) -> None:
        self.connects: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[tuple[str, Any]] = []
        self.disconnects: list[tuple[str, str]] = []
        self._changed = asyncio.Event()

        @eio.on("connect")
        async def connect(sid, environ):
            self.connects.append((sid, environ))
            self._changed.set()

        @eio.on("message")
        async def message(sid, data):
            self.messages.append((sid, data))
            self._changed.set()

        @eio.on("disconnect")
        async def disconnect(sid, reason):
            self.disconnects.append((sid, reason))
            self._changed.set()

    async def wait_for(self, what: str, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        calls = getattr(self, what)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(calls) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(calls)} {what} within {timeout} s, expected {count}: {calls}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return calls


def _loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {}
    try:
        import uvloop
    except ImportError:  # Windows: uvloop has no build there, and fastio falls back to asyncio's loop
        pass
    else:
        loops["uvloop"] = uvloop.new_event_loop
    loops["asyncio"] = asyncio.new_event_loop
    return loops


LOOPS = _loop_factories()
TEST_TIMEOUT = 30.0


@pytest.fixture(params=list(LOOPS))
def loop_factory(request) -> Callable[[], asyncio.AbstractEventLoop]:
    return LOOPS[request.param]


class ServerFactory:
    """``make_server(**options)``: an AsyncServer and its Events; all are shut down after the test."""

    def __init__(self) -> None:
        self.made: list[AsyncServer] = []

    def __call__(self, **options: Any) -> tuple[AsyncServer, Events]:
        eio = AsyncServer(**options)
        self.made.append(eio)
        return eio, Events(eio)


@pytest.fixture
def make_server() -> ServerFactory:
    return ServerFactory()


def _run(loop_factory: Callable[[], asyncio.AbstractEventLoop], main: Awaitable[Any]) -> Any:
    """``asyncio.run`` with a loop factory (asyncio.Runner is 3.11+, fastio supports 3.10)."""
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def on_each_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Make the coroutine function ``test`` a plain test that runs it on a new event loop of the
    ``loop_factory`` parameter, then shuts down the servers it made with ``make_server``.

    Use it as the innermost decorator (below ``pytest.mark.parametrize``)."""
    signature = inspect.signature(test)

    @functools.wraps(test)
    def run_test(*args: Any, loop_factory: Callable[[], asyncio.AbstractEventLoop], **kwargs: Any) -> None:
        async def main() -> None:
            try:
                await asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT)
            finally:
                factory = kwargs.get("make_server")
                for eio in factory.made if factory is not None else ():
                    await eio.shutdown()

        _run(loop_factory, main())

    # pytest reads the fixtures a test needs from its signature: the test's own plus the loop.
    del run_test.__wrapped__
    run_test.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
        *signature.parameters.values(),
        inspect.Parameter("loop_factory", inspect.Parameter.KEYWORD_ONLY)])
    return run_test


def polling(sid: str | None = None, **extra: str) -> dict[str, str]:
    query = {"EIO": "4", "transport": "polling", **extra}
    if sid is not None:
        query["sid"] = sid
    return query


async def request(eio: AsyncServer, *args: Any, **kwargs: Any) -> Response:
    req = FakeRequest(*args, **kwargs)
    eio.handle_request(req)
    return await req.response()


def open_poll(eio: AsyncServer, sid: str) -> FakeRequest:
    """A long poll of session ``sid``, handed to the server; its response is not awaited."""
    poll = FakeRequest("GET", polling(sid))
    eio.handle_request(poll)
    return poll


async def handshake(eio: AsyncServer, **kwargs: Any) -> str:
    res = await request(eio, "GET", polling(t="abc"), **kwargs)
    return res.open_packet()["sid"]


async def post(eio: AsyncServer, sid: str, body: bytes, **kwargs: Any) -> Response:
    return await request(eio, "POST", polling(sid), body=body, **kwargs)


def assert_error(res: Response, status: int, code: int, message: str) -> None:
    assert res.status == status, res
    assert res.json() == {"code": code, "message": message}


# ---------------------------------------------------------------------------------------- handshake


@on_each_loop
async def test_handshake_open_packet_fields(make_server):
    eio, events = make_server(ping_interval=10, ping_timeout=7, max_http_buffer_size=5000)
    res = await request(eio, "GET", polling(t="Nx1"))
    assert res.header("content-type") == "text/plain; charset=UTF-8"
    assert res.header("set-cookie") is None  # no cookie option
    opened = res.open_packet()
    assert set(opened) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert opened["upgrades"] == ["websocket"]
    assert (opened["pingInterval"], opened["pingTimeout"], opened["maxPayload"]) == (10000, 7000, 5000)
    sid = opened["sid"]
    assert isinstance(sid, str) and len(sid) >= 20
    assert list(eio.sockets) == [sid]
    assert eio.transport(sid) == "polling"
    # the connect handler saw the session and the request's environ
    [(connect_sid, environ)] = events.connects
    assert connect_sid == sid
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["PATH_INFO"] == PATH
    assert environ["QUERY_STRING"] == "EIO=4&transport=polling&t=Nx1"
    assert environ["HTTP_USER_AGENT"] == "fake/1.0"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


@on_each_loop
async def test_handshake_defaults_and_a_new_sid_each_time(make_server):
    eio, _ = make_server()
    first = (await request(eio, "GET", polling())).open_packet()
    second = (await request(eio, "GET", polling())).open_packet()
    assert (first["pingInterval"], first["pingTimeout"], first["maxPayload"]) == (25000, 20000, 1_000_000)
    assert first["sid"] != second["sid"]
    assert set(eio.sockets) == {first["sid"], second["sid"]}


@pytest.mark.parametrize("options", [{"allow_upgrades": False}, {"transports": ["polling"]}])
@on_each_loop
async def test_handshake_without_upgrades(make_server, options):
    eio, _ = make_server(**options)
    assert (await request(eio, "GET", polling())).open_packet()["upgrades"] == []


@on_each_loop
async def test_handshake_with_ping_interval_grace_period(make_server):
    eio, _ = make_server(ping_interval=(10, 2), ping_timeout=3)
    opened = (await request(eio, "GET", polling())).open_packet()
    assert (opened["pingInterval"], opened["pingTimeout"]) == (12000, 3000)


@on_each_loop
async def test_handshake_must_be_a_get(make_server):
    eio, events = make_server()
    res = await request(eio, "POST", polling(), body=b"4hello")
    assert_error(res, 400, 2, "Bad handshake method")
    assert eio.sockets == {} and events.connects == []


@on_each_loop
async def test_connect_handler_refusal_answers_401(make_server):
    eio, _ = make_server()

    @eio.on("connect")
    async def connect(sid, environ):
        return False

    res = await request(eio, "GET", polling())
    assert res.status == 401
    assert res.json() == "Unauthorized"
    assert eio.sockets == {}


# ---------------------------------------------------------------------------- request validation


@on_each_loop
async def test_unknown_sid(make_server):
    eio, _ = make_server()
    await handshake(eio)  # a session exists, just not this one
    for method, body in (("GET", b""), ("POST", b"4hi")):
        res = await request(eio, method, polling("no-such-session"), body=body)
        assert_error(res, 400, 1, "Session ID unknown")


@pytest.mark.parametrize("transport", ["carrier-pigeon", "", "POLLING"])
@on_each_loop
async def test_unknown_transport(make_server, transport):
    eio, events = make_server()
    res = await request(eio, "GET", {"EIO": "4", "transport": transport})
    assert_error(res, 400, 0, "Transport unknown")
    assert eio.sockets == {} and events.connects == []


@on_each_loop
async def test_missing_transport(make_server):
    eio, _ = make_server()
    assert_error(await request(eio, "GET", {"EIO": "4"}), 400, 0, "Transport unknown")


@on_each_loop
async def test_transport_not_enabled(make_server):
    eio, _ = make_server(transports=["websocket"])
    assert_error(await request(eio, "GET", polling()), 400, 0, "Transport unknown")


@pytest.mark.parametrize("version", ["3", "5", "", None])
@on_each_loop
async def test_unsupported_protocol_version(make_server, version):
    eio, events = make_server()
    query = {"transport": "polling"}
    if version is not None:
        query["EIO"] = version
    res = await request(eio, "GET", query)
    assert_error(res, 400, 5, "Unsupported protocol version")
    assert eio.sockets == {} and events.connects == []


@on_each_loop
async def test_websocket_transport_without_upgrade_headers(make_server):
    eio, _ = make_server()
    res = await request(eio, "GET", {"EIO": "4", "transport": "websocket"})
    assert_error(res, 400, 3, "Bad request")
    assert eio.sockets == {}


@on_each_loop
async def test_unsupported_method_on_a_session(make_server):
    eio, _ = make_server()
    sid = await handshake(eio)
    assert_error(await request(eio, "PUT", polling(sid), body=b"4x"), 400, 3, "Bad request")


# ---------------------------------------------------------------------------------- long polling


@on_each_loop
async def test_long_poll_is_answered_when_a_message_is_sent(make_server):
    eio, _ = make_server()
    sid = await handshake(eio)
    poll = open_poll(eio, sid)
    await asyncio.sleep(0)  # one loop turn: nothing to send, so the poll stays open
    assert not poll.responded
    await eio.send(sid, "hello ✓")
    res = await poll.response()
    assert res.status == 200
    assert res.header("content-type") == "text/plain; charset=UTF-8"
    assert res.body == "4hello ✓".encode()


@on_each_loop
async def test_messages_sent_between_polls_arrive_in_one_payload(make_server):
    eio, _ = make_server()
    sid = await handshake(eio)
    await eio.send(sid, "one")
    await eio.send(sid, b"\x01\x02\x03")
    await eio.send(sid, "three")
    res = await request(eio, "GET", polling(sid))
    assert res.body.split(SEP) == [b"4one", b"bAQID", b"4three"]


@on_each_loop
async def test_large_poll_response_is_compressed_when_accepted(make_server):
    eio, _ = make_server(compression_threshold=100)
    sid = await handshake(eio)
    await eio.send(sid, "x" * 500)
    res = await request(eio, "GET", polling(sid), headers={"accept-encoding": "gzip, deflate"})
    assert res.header("content-encoding") == "gzip"
    assert gzip.decompress(res.body) == b"4" + b"x" * 500


@on_each_loop
async def test_post_payload_is_dispatched_in_order(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    body = SEP.join([b"4one", b"4two", b"bAQID", "4fünf".encode(), b"4"])
    res = await post(eio, sid, body)
    assert res.status == 200
    assert res.body == b"ok"
    await events.wait_for("messages", 5)
    assert events.messages == [(sid, "one"), (sid, "two"), (sid, b"\x01\x02\x03"), (sid, "fünf"), (sid, "")]
    assert sid in eio.sockets


@on_each_loop
async def test_post_dispatches_to_a_sync_handler_too(make_server):
    eio, _ = make_server()
    seen: list[Any] = []
    eio.on("message", lambda sid, data: seen.append(data))
    sid = await handshake(eio)
    assert (await post(eio, sid, b"4a\x1e4b")).status == 200
    assert seen == ["a", "b"]


@pytest.mark.parametrize("body, error", [
    (b"9x", "unknown packet type b'9'"),
    (b"4ok\x1e", "empty packet in payload"),
    (b"b!!!", "bad base64: invalid character"),
])
@on_each_loop
async def test_post_of_an_invalid_packet(make_server, body, error):
    eio, events = make_server()
    sid = await handshake(eio)
    res = await post(eio, sid, body)
    assert_error(res, 400, 3, f"Bad request: {error}")
    # the whole payload is refused: not even its valid packets are dispatched
    assert events.messages == []
    assert await events.wait_for("disconnects") == [(sid, "transport error")]
    assert sid not in eio.sockets


@on_each_loop
async def test_empty_post(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    assert_error(await post(eio, sid, b""), 400, 3, "Bad request: empty payload")
    assert await events.wait_for("disconnects") == [(sid, "transport error")]


@on_each_loop
async def test_second_concurrent_poll_closes_the_session(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    first = open_poll(eio, sid)
    second = await request(eio, "GET", polling(sid))
    assert_error(second, 400, 3, "Bad request")
    assert await events.wait_for("disconnects") == [(sid, "transport error")]
    assert sid not in eio.sockets
    # the waiting poll is not left hanging: it gets the close packet
    assert (await first.response()).body == b"1"


@on_each_loop
async def test_aborted_long_poll_closes_the_session(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    poll = open_poll(eio, sid)
    assert poll.on_abort is not None, "a pending poll must watch for the client going away"
    poll.abort()
    assert await events.wait_for("disconnects") == [(sid, "transport close")]
    assert sid not in eio.sockets


@on_each_loop
async def test_max_http_buffer_size(make_server):
    eio, events = make_server(max_http_buffer_size=100)
    sid = await handshake(eio)
    at_limit = b"4" + b"a" * 99
    assert (await post(eio, sid, at_limit)).status == 200
    assert await events.wait_for("messages") == [(sid, "a" * 99)]
    res = await post(eio, sid, at_limit + b"a")
    assert_error(res, 413, 3, "Payload too large")
    assert await events.wait_for("disconnects") == [(sid, "transport error")]
    assert sid not in eio.sockets
    assert len(events.messages) == 1


# ------------------------------------------------------------------------------- closing sessions


@on_each_loop
async def test_close_packet_via_post_ends_the_session(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    res = await post(eio, sid, b"4bye\x1e1\x1e4after close")
    assert res.status == 200
    assert await events.wait_for("disconnects") == [(sid, "client disconnect")]
    # packets after the close packet are not dispatched
    assert events.messages == [(sid, "bye")]
    assert sid not in eio.sockets
    assert_error(await request(eio, "GET", polling(sid)), 400, 1, "Session ID unknown")


@on_each_loop
async def test_close_packet_answers_the_waiting_poll(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    poll = open_poll(eio, sid)
    assert (await post(eio, sid, b"1")).status == 200
    await events.wait_for("disconnects")
    res = await poll.response()
    # Node's engine.io ends the waiting poll with a noop; the session is gone at once
    assert res.status == 200 and res.body == b"6"
    assert_error(await request(eio, "GET", polling(sid)), 400, 1, "Session ID unknown")


@on_each_loop
async def test_server_disconnect_sends_a_close_packet(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    poll = open_poll(eio, sid)
    await eio.disconnect(sid)
    assert (await poll.response()).body == b"1"
    assert await events.wait_for("disconnects") == [(sid, "server disconnect")]
    assert sid not in eio.sockets


@on_each_loop
async def test_close_packet_waits_for_the_next_poll(make_server):
    eio, events = make_server()
    sid = await handshake(eio)
    await eio.send(sid, "last words")
    await eio.disconnect(sid)
    await events.wait_for("disconnects")
    # the client polls after the session ended and still gets what was queued, then the close
    res = await request(eio, "GET", polling(sid))
    assert res.body.split(SEP) == [b"4last words", b"1"]


# ------------------------------------------------------------------------------------------- CORS

ORIGIN = "https://app.example"


@on_each_loop
async def test_cors_unset_allows_only_the_same_origin(make_server):
    eio, _ = make_server()
    same = await request(eio, "GET", polling(), headers={"origin": "http://localhost:5000"})
    assert same.header("access-control-allow-origin") == "http://localhost:5000"
    assert same.header("access-control-allow-credentials") == "true"
    same.open_packet()
    other = await request(eio, "GET", polling(), headers={"origin": ORIGIN})
    assert_error(other, 400, 3, "Not an accepted origin.")
    assert other.header("access-control-allow-origin") is None
    # no Origin header: not a cross-origin request, nothing to check or to answer
    plain = await request(eio, "GET", polling())
    assert plain.header("access-control-allow-origin") is None
    plain.open_packet()


@on_each_loop
async def test_cors_unset_honours_forwarded_host(make_server):
    eio, _ = make_server()
    res = await request(eio, "GET", polling(), headers={
        "origin": "https://public.example", "x-forwarded-proto": "https", "x-forwarded-host": "public.example"})
    assert res.header("access-control-allow-origin") == "https://public.example"
    res.open_packet()


@on_each_loop
async def test_cors_allowed_origins_list(make_server):
    eio, _ = make_server(cors_allowed_origins=[ORIGIN, "https://other.example"])
    ok = await request(eio, "GET", polling(), headers={"origin": ORIGIN})
    assert ok.header("access-control-allow-origin") == ORIGIN
    assert ok.header("access-control-allow-credentials") == "true"
    sid = ok.open_packet()["sid"]
    # every answer on the session carries the headers, errors included
    posted = await post(eio, sid, b"4x", headers={"origin": ORIGIN})
    assert posted.header("access-control-allow-origin") == ORIGIN
    unknown = await request(eio, "GET", polling("nope"), headers={"origin": ORIGIN})
    assert unknown.status == 400 and unknown.header("access-control-allow-origin") == ORIGIN
    refused = await request(eio, "GET", polling(), headers={"origin": "http://localhost:5000"})
    assert_error(refused, 400, 3, "Not an accepted origin.")
    assert refused.header("access-control-allow-origin") is None


@on_each_loop
async def test_cors_any_origin(make_server):
    eio, _ = make_server(cors_allowed_origins="*", cors_credentials=False)
    res = await request(eio, "GET", polling(), headers={"origin": "http://anywhere.example"})
    assert res.header("access-control-allow-origin") == "http://anywhere.example"
    assert res.header("access-control-allow-credentials") is None
    res.open_packet()


@on_each_loop
async def test_cors_disabled_with_an_empty_list(make_server):
    eio, _ = make_server(cors_allowed_origins=[])
    res = await request(eio, "GET", polling(), headers={"origin": "http://anywhere.example"})
    assert [k for k, _ in res.header_list if k.startswith("access-control-")] == []
    res.open_packet()


@on_each_loop
async def test_cors_allowed_origins_callable(make_server):
    eio, _ = make_server(cors_allowed_origins=lambda origin: origin.endswith(".trusted.example"))
    ok = await request(eio, "GET", polling(), headers={"origin": "https://a.trusted.example"})
    assert ok.header("access-control-allow-origin") == "https://a.trusted.example"
    ok.open_packet()
    assert (await request(eio, "GET", polling(), headers={"origin": ORIGIN})).status == 400


@on_each_loop
async def test_cors_preflight(make_server):
    eio, events = make_server(cors_allowed_origins=[ORIGIN])
    res = await request(eio, "OPTIONS", polling(), headers={
        "origin": ORIGIN, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-token"})
    assert res.status == 200
    assert res.header("access-control-allow-origin") == ORIGIN
    assert res.header("access-control-allow-methods") == "OPTIONS, GET, POST"
    assert res.header("access-control-allow-headers") == "content-type, x-token"
    assert res.header("access-control-allow-credentials") == "true"
    assert eio.sockets == {} and events.connects == []  # a preflight opens no session


# ----------------------------------------------------------------------------------------- cookie


@on_each_loop
async def test_cookie_name(make_server):
    eio, _ = make_server(cookie="io")
    res = await request(eio, "GET", polling())
    sid = res.open_packet()["sid"]
    assert res.header("set-cookie") == f"io={sid}; path=/; SameSite=Lax"
    # only the handshake sets it
    await eio.send(sid, "x")
    assert (await request(eio, "GET", polling(sid))).header("set-cookie") is None


@on_each_loop
async def test_cookie_attributes(make_server):
    eio, _ = make_server(cookie={"name": "eio", "path": "/chat", "httpOnly": True, "SameSite": "Strict",
                                 "Max-Age": lambda: 60})
    res = await request(eio, "GET", polling())
    sid = res.open_packet()["sid"]
    assert res.header("set-cookie") == f"eio={sid}; path=/chat; httpOnly; SameSite=Strict; Max-Age=60"


@on_each_loop
async def test_no_cookie_by_default(make_server):
    eio, _ = make_server()
    res = await request(eio, "GET", polling())
    assert res.header("set-cookie") is None
    res.open_packet()


# ------------------------------------------------------------------------ under a Socket.IO server


@on_each_loop
async def test_socketio_server_engine_answers_fake_requests():
    """fastio.AsyncServer's engine (``.eio``) takes the same requests: a Socket.IO connect over
    long-polling, an event, and the server's emit in the next poll."""
    import fastio

    sio = fastio.AsyncServer()
    connected: list[str] = []
    events: list[Any] = []
    got_event = asyncio.Event()

    @sio.on("connect")
    async def connect(sid, environ, auth):
        connected.append(auth)

    @sio.on("hello")
    async def hello(sid, data):
        events.append(data)
        got_event.set()
        await sio.emit("welcome", {"n": data["n"] + 1}, to=sid)

    try:
        sid = await handshake(sio.eio)
        assert (await post(sio.eio, sid, b'40{"token":"t"}')).status == 200
        connect_ack = await request(sio.eio, "GET", polling(sid))
        assert connect_ack.body.startswith(b'40{"sid":'), connect_ack
        assert connected == [{"token": "t"}]
        assert (await post(sio.eio, sid, b'42["hello",{"n":1}]')).status == 200
        await asyncio.wait_for(got_event.wait(), TIMEOUT)
        assert events == [{"n": 1}]
        assert (await request(sio.eio, "GET", polling(sid))).body == b'42["welcome",{"n":2}]'
    finally:
        await sio.shutdown()


# -- Engine.IO v3 (allow_eio3=True): the handshake, the binary and base64 forms of a poll, v3 POST bodies --


def _v3_packets(body: bytes) -> list[str]:
    text = body.decode()
    out = []
    while text:
        head, _, text = text.partition(":")
        out.append(text[:int(head)])
        text = text[int(head):]
    return out


async def _v3_handshake(eio, **query):
    req = FakeRequest(query={"EIO": "3", "transport": "polling", **query})
    eio.handle_request(req)
    resp = await req.response()
    assert resp.status == 200
    assert resp.header("content-type") == "text/plain; charset=UTF-8"
    packets = _v3_packets(resp.body)
    assert packets[0][0] == "0"
    return json.loads(packets[0][1:])["sid"]


@on_each_loop
async def test_v3_refused_unless_allowed(make_server):
    eio, _ = make_server()
    req = FakeRequest(query={"EIO": "3", "transport": "polling"})
    eio.handle_request(req)
    resp = await req.response()
    assert resp.status == 400
    assert resp.json() == {"code": 5, "message": "Unsupported protocol version"}


@on_each_loop
async def test_v3_poll_binary_payload_or_base64(make_server):
    eio, events = make_server(allow_eio3=True)
    for query, binary in (({}, True), ({"b64": "1"}, False)):
        sid = await _v3_handshake(eio, **query)
        await eio.send(sid, "t\u00e9xt \U0001F600")
        await eio.send(sid, b"\x00\xff")
        req = FakeRequest(query={"EIO": "3", "transport": "polling", "sid": sid})
        eio.handle_request(req)
        resp = await req.response()
        if binary:
            assert resp.header("content-type") == "application/octet-stream"
            text = "4t\u00e9xt \U0001F600".encode()
            assert resp.body == (b"\x00" + bytes(int(d) for d in str(len(text))) + b"\xff" + text
                                 + b"\x01\x03\xff\x04\x00\xff")
        else:
            assert resp.header("content-type") == "text/plain; charset=UTF-8"
            # 8 UTF-16 code units: the emoji counts 2.
            assert resp.body == "8:4t\u00e9xt \U0001F6006:b4AP8=".encode()


@on_each_loop
async def test_v3_post_bodies_and_ping(make_server):
    eio, events = make_server(allow_eio3=True)
    sid = await _v3_handshake(eio)
    for body in ("3:4h\u00e9" "6:b4AQ==".encode(), b"\x00\x03\xff4hi\x01\x02\xff\x04\x07"):
        req = FakeRequest("POST", query={"EIO": "3", "transport": "polling", "sid": sid}, body=body)
        eio.handle_request(req)
        assert (await req.response()).status == 200
    await events.wait_for("messages", 4)
    assert events.messages == [(sid, "h\u00e9"), (sid, b"\x01"), (sid, "hi"), (sid, b"\x07")]
    # The client pings, the server answers.
    req = FakeRequest("POST", query={"EIO": "3", "transport": "polling", "sid": sid}, body=b"1:2")
    eio.handle_request(req)
    assert (await req.response()).status == 200
    req = FakeRequest(query={"EIO": "3", "transport": "polling", "sid": sid})
    eio.handle_request(req)
    assert (await req.response()).body == b"1:3"
    # A malformed v3 body is a 400 and ends the session.
    req = FakeRequest("POST", query={"EIO": "3", "transport": "polling", "sid": sid}, body=b"9:4")
    eio.handle_request(req)
    assert (await req.response()).status == 400
    await events.wait_for("disconnects", 1)
