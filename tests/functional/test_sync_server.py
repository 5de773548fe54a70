"""The sync server (``fastio.Server`` + ``fastio.WSGIApp``) running python-socketio's sync example
app (Flask, rooms, broadcasts, a background thread, disconnect on request), served three ways:
fastio's native server (``start_server(app=flask)``), Werkzeug's threaded server and gunicorn's
gthread worker; driven by fastio's sync ``Client`` and python-socketio's ``Client`` over WebSocket
and long-polling."""
from __future__ import annotations

import queue
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import socketio

import fastio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sync_example_app import HOSTS, serve_gunicorn  # noqa: E402

TIMEOUT = 10.0


class Peer:
    """A sync client (fastio's or python-socketio's) whose received events land in a queue."""

    def __init__(self, cls: type, name: str) -> None:
        self.client = cls()
        self.name = name
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.disconnected = threading.Event()
        for event in ("my_response", "tick"):
            self.client.on(event, lambda data, event=event: self.events.put((event, data)))
        self.client.on("question", lambda q: "answer to " + q)
        self.client.on("disconnect", lambda *reason: self.disconnected.set())

    def connect(self, url: str, transport: str) -> None:
        self.client.connect(url, transports=[transport], auth={"name": self.name}, wait_timeout=TIMEOUT)

    def next(self, event: str = "my_response", skip: tuple[str, ...] = ("tick",)) -> Any:
        """The next event named ``event`` (ticks in between are skipped)."""
        while True:
            name, data = self.events.get(timeout=TIMEOUT)
            if name == event:
                return data
            assert name in skip, (name, data)

    def marker(self, text: str) -> None:
        """Round-trip a marker through the server: every earlier emit to this client has
        arrived once the marker has, so what has not arrived was never sent."""
        self.client.emit("my_event", {"data": text})
        assert self.next() == {"data": text}

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


CLIENTS = {"fastio": fastio.Client, "python-socketio": socketio.Client}


@pytest.fixture(params=list(HOSTS))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    with HOSTS[request.param]() as served:
        yield served


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_example_app(served: tuple[Any, str], peers: list[Peer], client: str, transport: str) -> None:
    example, url = served
    assert urllib.request.urlopen(url + "/", timeout=TIMEOUT).read() == b"sync example"
    alice, bob = Peer(CLIENTS[client], "alice"), Peer(CLIENTS[client], "bob")
    peers += [alice, bob]
    alice.connect(url, transport)
    assert alice.next() == {"data": "Connected", "count": 0}
    bob.connect(url, transport)
    assert bob.next() == {"data": "Connected", "count": 0}
    # the background thread's ticks reach every client
    alice.next("tick", skip=())
    bob.next("tick", skip=())

    alice.marker("hello")
    assert alice.client.call("join", {"room": "lobby"}, timeout=TIMEOUT) == ["lobby"]
    assert bob.client.call("join", {"room": "lobby"}, timeout=TIMEOUT) == ["lobby"]
    assert bob.client.call("join", {"room": "extra"}, timeout=TIMEOUT) == ["extra", "lobby"]
    assert bob.client.call("leave", {"room": "extra"}, timeout=TIMEOUT) == ["lobby"]

    # to a room, skipping the sender
    alice.client.emit("my_room_event", {"room": "lobby", "data": "to the lobby"})
    assert bob.next() == {"data": "to the lobby"}
    alice.marker("after room event")

    # a broadcast, with the sender's session
    bob.client.emit("my_broadcast_event", {"data": "everyone"})
    assert alice.next() == {"data": "everyone", "from": "bob"}
    assert bob.next() == {"data": "everyone", "from": "bob"}

    # an emit from a Flask view (a WSGI thread) to a room
    assert urllib.request.urlopen(url + "/notify/lobby", timeout=TIMEOUT).read() == b"sent"
    assert alice.next() == {"data": "from flask"}
    assert bob.next() == {"data": "from flask"}

    # a handler calling back into its client and returning the answer as its ack
    assert alice.client.call("ask", "why?", timeout=TIMEOUT) == "answer to why?"

    # closing the room
    bob.client.emit("close_room", {"room": "lobby"})
    assert alice.next() == {"data": "Room lobby is closing."}
    assert bob.next() == {"data": "Room lobby is closing."}
    alice.client.emit("my_room_event", {"room": "lobby", "data": "nobody hears this"})
    bob.marker("after close")

    # disconnect on request: the server ends it
    bob.client.emit("disconnect_request")
    assert bob.disconnected.wait(TIMEOUT)
    alice.marker("still here")
    if example is not None:
        assert example.disconnected.wait(TIMEOUT)
        assert [(reason, name) for _, reason, name in example.disconnects] == [("server disconnect", "bob")]
    alice.client.disconnect()
    assert alice.disconnected.wait(TIMEOUT)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_blocking_handler_does_not_delay_other_clients(served: tuple[Any, str], peers: list[Peer],
                                                       transport: str) -> None:
    _, url = served
    slow, quick = Peer(fastio.Client, "slow"), Peer(socketio.Client, "quick")
    peers += [slow, quick]
    for peer in (slow, quick):
        peer.connect(url, transport)
        assert peer.next() == {"data": "Connected", "count": 0}
    released: queue.Queue[Any] = queue.Queue()
    slow.client.emit("block", callback=released.put)
    # The blocked handler holds one thread; the other client is served meanwhile, and so are
    # the slow client's own further events.
    quick.marker("served while another handler blocks")
    slow.marker("own events go on too")
    assert released.empty()
    assert quick.client.call("unblock", timeout=TIMEOUT) == "ok"
    assert released.get(timeout=TIMEOUT) == "released"


@pytest.mark.timeout(60)
def test_gunicorn_preload(peers: list[Peer]) -> None:
    """With --preload the app (and its Server) is built in gunicorn's master process; the event
    loop thread starts in the worker after the fork."""
    with serve_gunicorn("--preload") as url:
        peer = Peer(fastio.Client, "pre")
        peers.append(peer)
        peer.connect(url, "websocket")
        assert peer.next() == {"data": "Connected", "count": 0}
        assert peer.client.call("join", {"room": "r"}, timeout=TIMEOUT) == ["r"]
        peer.marker("after fork")
        peer.close()


def test_async_mode() -> None:
    sio = fastio.Server(async_mode="threading")
    assert sio.async_mode == "threading" and not sio.is_asyncio_based()
    sio.close()
    for mode in ("eventlet", "gevent", "gevent_uwsgi"):
        with pytest.raises(ValueError, match="not supported by fastio.*threading"):
            fastio.Server(async_mode=mode)
    with pytest.raises(ValueError, match="Invalid async_mode"):
        fastio.Server(async_mode="asgi")
