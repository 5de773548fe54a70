"""The sync server's pub/sub managers on real brokers: ``fastio.RedisManager`` (Redis on
127.0.0.1:6379) and ``fastio.KombuManager`` (RabbitMQ on 127.0.0.1:5672, guest/guest).  Two
sync servers share emits and room operations; a write-only emitter (the Celery-worker case)
reaches their clients; python-socketio's own managers and fastio's read each other's messages."""
from __future__ import annotations

import queue
import uuid
from typing import Any, Callable, Iterator

import pytest
import socketio

import fastio

REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
TIMEOUT = 10.0

BACKENDS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "redis": (lambda channel, **kw: fastio.RedisManager(REDIS_URL, channel=channel, **kw),
              lambda channel, **kw: socketio.RedisManager(REDIS_URL, channel=channel, **kw)),
    "kombu": (lambda channel, **kw: fastio.KombuManager(AMQP_URL, channel=channel, **kw),
              lambda channel, **kw: socketio.KombuManager(AMQP_URL, channel=channel, **kw)),
}


def _server(make_manager: Callable[..., Any], channel: str) -> tuple[Any, str]:
    mgr = make_manager(channel)
    sio = fastio.Server(client_manager=mgr)

    @sio.event
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        sio.enter_room(sid, "r")

    @sio.event
    def shout(sid: str, data: Any) -> None:
        sio.emit("news", data, to="r", skip_sid=sid)

    @sio.event
    def close(sid: str) -> None:
        sio.close_room("r")
        return None

    server = sio.start_server("127.0.0.1", 0)
    try:
        mgr.ready(timeout=TIMEOUT)
    except Exception as exc:
        sio.close()
        pytest.fail("this test needs its broker (%s): %r" % (channel, exc))
    return sio, "http://127.0.0.1:%d" % server.port


def _client(url: str, inbox: "queue.Queue[Any]") -> Any:
    c = fastio.Client()
    c.on("news", inbox.put)
    c.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
    return c


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, Any]]:
    if request.param == "kombu":
        pytest.importorskip("kombu", reason="kombu is in the test extra")
    fastio_mgr, pysio_mgr = BACKENDS[request.param]
    yield "fastio-test-" + uuid.uuid4().hex, fastio_mgr, pysio_mgr


@pytest.mark.timeout(60)
def test_two_sync_servers_share_emits(backend: tuple[str, Any, Any]) -> None:
    channel, make_manager, make_pysio_manager = backend
    (sio1, url1), (sio2, url2) = _server(make_manager, channel), _server(make_manager, channel)
    inbox_a: queue.Queue[Any] = queue.Queue()
    inbox_b: queue.Queue[Any] = queue.Queue()
    a, b = _client(url1, inbox_a), _client(url2, inbox_b)
    try:
        # a room broadcast from server 1's handler reaches server 2's client, not the sender
        a.emit("shout", {"n": 1})
        assert inbox_b.get(timeout=TIMEOUT) == {"n": 1}
        # a write-only emitter outside the servers (a Celery worker, a script)
        emitter = make_manager(channel, write_only=True)
        try:
            emitter.emit("news", {"n": 2}, room="r")
        finally:
            emitter.close()
        assert inbox_a.get(timeout=TIMEOUT) == {"n": 2}
        assert inbox_b.get(timeout=TIMEOUT) == {"n": 2}
        # python-socketio's write-only emitter speaks the same messages
        pysio_emitter = make_pysio_manager(channel, write_only=True)
        pysio_emitter.emit("news", {"n": 3}, namespace="/", room="r")
        assert inbox_a.get(timeout=TIMEOUT) == {"n": 3}
        assert inbox_b.get(timeout=TIMEOUT) == {"n": 3}
        # close_room on server 1 empties the room on server 2 too: a shout to the room after
        # it reaches nobody, as a marker published after it through the same channel shows
        assert a.call("close", timeout=TIMEOUT) is None
        assert a.call("shout", {"n": 4}, timeout=TIMEOUT) is None
        sio1.emit("news", {"n": "marker"}, to=b.get_sid("/"))
        assert inbox_b.get(timeout=TIMEOUT) == {"n": "marker"}
    finally:
        a.disconnect()
        b.disconnect()
        sio1.close()
        sio2.close()
