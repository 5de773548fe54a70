"""A Flask-SocketIO app on fastio: ``fastio.sync.flask.patch_flask_socketio()`` makes its
``SocketIO`` build fastio's sync ``Server``; served by Werkzeug (what ``socketio.run(app)``
does) and by fastio's native server (``fastio.sync.flask.start``/``run``)."""
from __future__ import annotations

import logging
import queue
import threading
import urllib.request
from typing import Any, Iterator

import pytest

import fastio
from fastio.sync.flask import patch_flask_socketio, start

flask_socketio = pytest.importorskip("flask_socketio", reason="Flask-SocketIO is in the test extra")
TIMEOUT = 10.0


def build() -> tuple[Any, Any]:
    from flask import Flask, request, session

    patch_flask_socketio()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    socketio = flask_socketio.SocketIO(app)
    assert isinstance(socketio.server, fastio.Server)

    @app.route("/")
    def index() -> str:
        return "flask index"

    @socketio.on("connect")
    def on_connect(auth: Any) -> None:
        session["name"] = (auth or {}).get("name")
        flask_socketio.emit("welcome", {"sid": request.sid, "name": session["name"]})

    @socketio.on("join")
    def on_join(room: str) -> list[str]:
        flask_socketio.join_room(room)
        return sorted(r for r in flask_socketio.rooms() if r != request.sid)

    @socketio.on("say")
    def on_say(room: str, text: str) -> None:
        flask_socketio.emit("said", {"text": text, "by": session["name"]}, to=room)

    @socketio.on("bye")
    def on_bye() -> None:
        flask_socketio.disconnect()

    class Shop(flask_socketio.Namespace):
        def on_buy(self, item: str) -> str:
            flask_socketio.emit("bought", {"item": item, "sid": request.sid})
            return "buying " + item

    socketio.on_namespace(Shop("/shop"))
    return app, socketio


@pytest.fixture(params=["werkzeug", "native"])
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    app, socketio = build()
    if request.param == "native":
        server = start(socketio, app, "127.0.0.1", 0)
        try:
            yield "http://127.0.0.1:%d" % server.port
        finally:
            socketio.server.close()
        return
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    wz = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=wz.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % wz.server_port
    finally:
        socketio.server.close()
        wz.shutdown()
        thread.join(5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_flask_socketio_app(served: str, transport: str) -> None:
    url = served
    assert urllib.request.urlopen(url + "/", timeout=TIMEOUT).read() == b"flask index"
    inbox: queue.Queue[Any] = queue.Queue()
    gone = threading.Event()
    c = fastio.Client()
    c.on("welcome", lambda data: inbox.put(("welcome", data)))
    c.on("said", lambda data: inbox.put(("said", data)))
    c.on("disconnect", lambda *a: gone.set())
    c.on("bought", lambda data: inbox.put(("bought", data)), namespace="/shop")
    c.connect(url, namespaces=["/", "/shop"], transports=[transport], auth={"name": "flo"},
              wait_timeout=TIMEOUT)
    try:
        name, data = inbox.get(timeout=TIMEOUT)
        assert name == "welcome" and data == {"sid": c.get_sid("/"), "name": "flo"}
        assert c.call("join", "room1", timeout=TIMEOUT) == ["room1"]
        c.emit("say", ("room1", "hi"))
        assert inbox.get(timeout=TIMEOUT) == ("said", {"text": "hi", "by": "flo"})
        # a class-based Flask-SocketIO namespace
        assert c.call("buy", "milk", namespace="/shop", timeout=TIMEOUT) == "buying milk"
        assert inbox.get(timeout=TIMEOUT) == ("bought", {"item": "milk", "sid": c.get_sid("/shop")})
        c.emit("bye")
        assert gone.wait(TIMEOUT)
    finally:
        if c.connected:
            c.disconnect()


@pytest.mark.timeout(60)
def test_flask_socketio_message_queue() -> None:
    """``SocketIO(app, message_queue=redis_url)`` gets fastio's RedisManager, and an external
    ``SocketIO(message_queue=redis_url)`` (a write-only emitter, e.g. in a Celery worker) reaches
    the server's clients."""
    import uuid

    from flask import Flask

    url, channel = "redis://127.0.0.1:6379/0", "fastio-test-" + uuid.uuid4().hex
    patch_flask_socketio()
    app = Flask(__name__)
    socketio = flask_socketio.SocketIO(app, message_queue=url, channel=channel)
    assert isinstance(socketio.server.sync_manager, fastio.RedisManager)
    server = start(socketio, app, "127.0.0.1", 0)
    c = fastio.Client()
    try:
        socketio.server.sync_manager.ready(timeout=TIMEOUT)
        inbox: queue.Queue[Any] = queue.Queue()
        c.on("news", inbox.put)
        c.connect("http://127.0.0.1:%d" % server.port, transports=["websocket"], wait_timeout=TIMEOUT)
        external = flask_socketio.SocketIO(message_queue=url, channel=channel)
        external.emit("news", {"n": 1})
        assert inbox.get(timeout=TIMEOUT) == {"n": 1}
        external.server.close()
    finally:
        if c.connected:
            c.disconnect()
        socketio.server.close()
