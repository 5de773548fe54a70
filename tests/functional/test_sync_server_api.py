"""The sync ``fastio.Server`` API beyond the example app: class-based ``fastio.Namespace``,
``call`` with and without an answer, ``send``, emit callbacks, sessions, ``transport``,
catch-all handlers, refused connections, ``Manager``, ``Middleware`` and ``handle_request`` under a
WSGI server, and the renamed ``fastio.HTTPServer``."""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

import pytest
import socketio

import fastio
from fastio.exceptions import ConnectionRefusedError as Refused, TimeoutError as CallTimeout

TIMEOUT = 10.0


class Chat(fastio.Namespace):
    def on_connect(self, sid: str, environ: dict[str, Any]) -> None:  # the older form, no auth
        self.enter_room(sid, "chat-room")

    def on_hello(self, sid: str, name: str) -> str:
        with self.session(sid) as session:
            session["name"] = name
        self.emit("greeting", "hello " + name, room="chat-room")
        return "ok"

    def on_whoami(self, sid: str) -> Any:
        return self.get_session(sid)["name"], self.rooms(sid)


@pytest.fixture
def server() -> Iterator[tuple[fastio.Server, str]]:
    sio = fastio.Server(client_manager=fastio.Manager(), namespaces="*")
    sio.register_namespace(Chat("/chat"))
    server = sio.start_server("127.0.0.1", 0)
    assert isinstance(server, fastio.HTTPServer)
    try:
        yield sio, "http://127.0.0.1:%d" % server.port
    finally:
        sio.close()


def test_namespace_and_api(server: tuple[fastio.Server, str]) -> None:
    sio, url = server
    seen: queue.Queue[Any] = queue.Queue()
    joined = threading.Event()

    @sio.on("connect")
    def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if auth == {"bad": True}:
            raise Refused("go away", {"code": 7})
        seen.put(("connect", sid, threading.current_thread().name))
        joined.set()

    @sio.on("*")
    def any_event(event: str, sid: str, *args: Any) -> Any:
        return ["caught", event, *args]

    c = fastio.Client()
    answers: queue.Queue[Any] = queue.Queue()
    c.on("greeting", lambda text: answers.put(("greeting", text), False), namespace="/chat")
    c.on("message", lambda data: answers.put(("message", data)))
    answer_late = threading.Event()
    c.on("slow_question", lambda: answer_late.wait(TIMEOUT))  # acknowledges once released
    c.on("question", lambda x: x * 2)
    c.connect(url, namespaces=["/", "/chat"], transports=["websocket"], wait_timeout=TIMEOUT)
    try:
        name, sid, thread = seen.get(timeout=TIMEOUT)
        assert thread.startswith("fastio-handler")  # handlers run in the pool, not on the loop
        assert sid == c.get_sid("/")
        assert sio.transport(sid) == "websocket"
        assert sio.get_environ(sid)["REQUEST_METHOD"] == "GET"

        # class-based namespace: rooms, emit to a room, the session context manager
        assert c.call("hello", "nina", namespace="/chat", timeout=TIMEOUT) == "ok"
        assert answers.get(timeout=TIMEOUT) == ("greeting", "hello nina")
        chat_sid = c.get_sid("/chat")
        assert c.call("whoami", namespace="/chat", timeout=TIMEOUT) == ("nina", [chat_sid, "chat-room"])
        assert sorted(sio.rooms(chat_sid, namespace="/chat")) == sorted([chat_sid, "chat-room"])

        # a catch-all handler
        assert c.call("anything", 1, timeout=TIMEOUT) == ["caught", "anything", 1]

        # server -> client calls, answered and not
        assert sio.call("question", 21, to=sid, timeout=TIMEOUT) == 42
        with pytest.raises(CallTimeout):
            sio.call("slow_question", to=sid, timeout=0.2)
        answer_late.set()
        with pytest.raises(ValueError):
            sio.call("question", 1)

        # emit with a callback (called in the pool), send
        got: queue.Queue[Any] = queue.Queue()
        sio.emit("question", 5, to=sid, callback=lambda answer: got.put(answer))
        assert got.get(timeout=TIMEOUT) == 10
        sio.send({"m": 1}, to=sid)
        assert answers.get(timeout=TIMEOUT) == ("message", {"m": 1})

        # sessions
        sio.save_session(sid, {"k": "v"})
        assert sio.get_session(sid) == {"k": "v"}
        with pytest.raises(KeyError):
            sio.get_session("no-such-sid")
        assert sio.manager.get_rooms(sid, "/") == [sid]

        # a refused connection carries the handler's reason
        other = socketio.Client()
        refusals: list[Any] = []
        other.on("connect_error", refusals.append)
        with pytest.raises(socketio.exceptions.ConnectionError):
            other.connect(url, auth={"bad": True}, transports=["polling"], wait_timeout=TIMEOUT)
        assert refusals == [{"message": "go away", "data": {"code": 7}}]

        # room management from outside a handler
        sio.enter_room(sid, "extra")
        assert "extra" in sio.rooms(sid)
        sio.leave_room(sid, "extra")
        assert "extra" not in sio.rooms(sid)

        # server-side disconnect of one namespace
        gone = threading.Event()
        c.on("disconnect", lambda *a: gone.set(), namespace="/chat")
        sio.disconnect(chat_sid, namespace="/chat")
        assert gone.wait(TIMEOUT)
    finally:
        c.disconnect()


def test_background_task_and_sleep() -> None:
    sio = fastio.Server()
    try:
        done = threading.Event()
        thread = sio.start_background_task(lambda x: (sio.sleep(0), done.set()), 1)
        thread.join(TIMEOUT)
        assert done.is_set()
    finally:
        sio.close()


def test_middleware_under_wsgi() -> None:
    from werkzeug.serving import make_server

    sio = fastio.Server()
    sio.on("echo", lambda sid, data: data)
    app = fastio.Middleware(sio, None, socketio_path="/custom/")
    wz = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=wz.serve_forever, daemon=True)
    thread.start()
    c = socketio.Client()
    try:
        c.connect("http://127.0.0.1:%d" % wz.server_port, socketio_path="custom", transports=["websocket"],
                  wait_timeout=TIMEOUT)
        assert c.call("echo", {"x": b"\x00bin"}, timeout=TIMEOUT) == {"x": b"\x00bin"}
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen("http://127.0.0.1:%d/other" % wz.server_port, timeout=TIMEOUT)
        assert info.value.code == 404
    finally:
        c.disconnect()
        sio.close()
        wz.shutdown()
        thread.join(5)


@pytest.mark.parametrize("host", ["native", "werkzeug"])
def test_wsgi_app_static_files(tmp_path: Any, host: str) -> None:
    import urllib.error
    import urllib.request

    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.js").write_text("console.log(1)")
    sio = fastio.Server()
    app = fastio.WSGIApp(sio, static_files={
        "/": str(tmp_path / "index.html"),
        "/static": str(tmp_path / "static"),
        "/data": {"filename": str(tmp_path / "static" / "app.js"), "content_type": "text/x-custom"},
    })
    if host == "native":
        url = "http://127.0.0.1:%d" % app.start_server("127.0.0.1", 0).port
    else:
        from werkzeug.serving import make_server

        wz = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=wz.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d" % wz.server_port
    try:
        r = urllib.request.urlopen(url + "/", timeout=TIMEOUT)
        assert r.read() == b"<h1>home</h1>" and r.headers["Content-Type"] == "text/html"
        r = urllib.request.urlopen(url + "/static/app.js", timeout=TIMEOUT)
        assert r.read() == b"console.log(1)"
        r = urllib.request.urlopen(url + "/data", timeout=TIMEOUT)
        assert r.headers["Content-Type"] == "text/x-custom"
        for missing in ("/static/nope.js", "/static/../index.html", "/elsewhere"):
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(url + missing, timeout=TIMEOUT)
            assert info.value.code == 404, missing
    finally:
        sio.close()
        if host == "werkzeug":
            wz.shutdown()


@pytest.mark.parametrize("async_handlers", [True, False])
def test_async_handlers(async_handlers: bool) -> None:
    """True: a client's next event runs while its previous handler blocks (here, it releases
    it); False: the client's handlers run one at a time, so the release comes too late."""
    sio = fastio.Server(async_handlers=async_handlers)
    release = threading.Event()
    order: list[str] = []

    @sio.event
    def slow(sid: str) -> str:
        outcome = "released" if release.wait(10 if async_handlers else 0.3) else "timed out"
        order.append("slow")
        return outcome

    @sio.event
    def fast(sid: str) -> str:
        release.set()
        order.append("fast")
        return "ok"

    url = "http://127.0.0.1:%d" % sio.start_server("127.0.0.1", 0).port
    c = fastio.Client()
    try:
        c.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
        results: queue.Queue[Any] = queue.Queue()
        c.emit("slow", callback=lambda r: results.put(("slow", r)))
        c.emit("fast", callback=lambda r: results.put(("fast", r)))
        got = {results.get(timeout=TIMEOUT), results.get(timeout=TIMEOUT)}
        if async_handlers:
            assert got == {("slow", "released"), ("fast", "ok")}
            assert order == ["fast", "slow"]
        else:
            assert got == {("slow", "timed out"), ("fast", "ok")}
            assert order == ["slow", "fast"]
    finally:
        c.disconnect()
        sio.close()


def test_wsgi_polling_body_limit() -> None:
    """A polling POST larger than the engine accepts is refused before its body is read."""
    import io

    sio = fastio.Server(max_http_buffer_size=1000)
    try:
        statuses: list[str] = []
        body = io.BytesIO(b"x" * 10)
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/socket.io/", "QUERY_STRING": "EIO=4&transport=polling&sid=x",
                   "CONTENT_LENGTH": str(50_000_000), "wsgi.input": body, "SERVER_NAME": "t", "SERVER_PORT": "80"}
        out = sio.handle_request(environ, lambda status, headers: statuses.append(status))
        assert statuses == ["413 Request Entity Too Large"] and b"".join(out) == b"Payload Too Large"
        assert body.tell() == 0
        # an ordinary request goes to the engine: an unknown session is a 400
        environ.update(CONTENT_LENGTH="0", REQUEST_METHOD="GET")
        out = sio.handle_request(environ, lambda status, headers: statuses.append(status))
        assert statuses[-1] == "400 Bad Request"
    finally:
        sio.close()
    # after close, a request is answered 503 (the WSGI server may still be running)
    out = sio.handle_request(environ, lambda status, headers: statuses.append(status))
    assert statuses[-1] == "503 Service Unavailable"


def test_decorated_handlers_get_the_arguments_they_take() -> None:
    """A pass-through ``functools.wraps`` decorator is measured by the function it wraps (the
    older ``disconnect(sid)`` form works through it); a wrapper with a signature of its own, like
    Flask-SocketIO's ``(sid, *args)``, is given every argument."""
    import functools

    def passthrough(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)
        return wrapper

    def own_signature(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(sid: str, *args: Any) -> Any:
            return fn(list(args))
        return wrapper

    sio = fastio.Server()
    seen: queue.Queue[Any] = queue.Queue()

    @sio.event
    @own_signature
    def connect(args: list[Any]) -> None:
        seen.put(("connect", args[1]))

    @sio.event
    @passthrough
    def disconnect(sid: str) -> None:
        seen.put(("disconnect", sid))

    url = "http://127.0.0.1:%d" % sio.start_server("127.0.0.1", 0).port
    c = fastio.Client()
    try:
        c.connect(url, auth={"token": 1}, transports=["websocket"], wait_timeout=TIMEOUT)
        assert seen.get(timeout=TIMEOUT) == ("connect", {"token": 1})
        sid = c.get_sid("/")
        c.disconnect()
        assert seen.get(timeout=TIMEOUT) == ("disconnect", sid)
    finally:
        sio.close()


async def test_serve_refuses_a_sync_server() -> None:
    """``await fastio.serve(sync_sio)`` would run it on the wrong loop: refused, saying what to use."""
    sio = fastio.Server()
    try:
        with pytest.raises(TypeError, match="start_server"):
            await fastio.serve(sio, "127.0.0.1", 0)
        with pytest.raises(TypeError, match="start_server"):
            await fastio.serve(fastio.WSGIApp(sio), "127.0.0.1", 0)
    finally:
        sio.close()


def test_native_wsgi_host_streams_and_buffers() -> None:
    """On the native server a Flask response with a length is sent whole; a streamed one goes out
    chunk by chunk while the generator still runs."""
    import http.client

    from flask import Flask

    flask_app = Flask(__name__)
    release = threading.Event()
    finished = threading.Event()

    @flask_app.route("/plain")
    def plain() -> str:
        return "whole"

    @flask_app.route("/stream")
    def stream() -> Any:
        def parts() -> Iterator[str]:
            yield "first\n"
            release.wait(TIMEOUT)
            yield "second\n"
            finished.set()
        return flask_app.response_class(parts(), mimetype="text/plain")

    @flask_app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    sio = fastio.Server()
    port = sio.start_server("127.0.0.1", 0, app=flask_app, wsgi_threads=2).port
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", "/plain")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Length") == "5" and r.read() == b"whole"
        conn.request("GET", "/stream")
        r = conn.getresponse()
        assert r.getheader("Transfer-Encoding") == "chunked"
        assert r.readline() == b"first\n"
        assert not finished.is_set()  # the first part arrived while the generator still runs
        release.set()
        assert r.read() == b"second\n"
        conn.request("GET", "/boom")  # the same connection, kept alive
        r = conn.getresponse()
        assert r.status == 500
        r.read()
        conn.close()
    finally:
        sio.close()


def test_instrument_admin_ui() -> None:
    """``instrument()`` serves the Admin UI's protocol on /admin: an admin client logs in, gets
    the config and the connected sockets, and sees a sync handler's events."""
    sio = fastio.Server()
    sio.on("hello", lambda sid, data: "hi " + data)
    admin = sio.instrument(auth={"username": "admin", "password": "secret"})
    assert admin is not None
    url = "http://127.0.0.1:%d" % sio.start_server("127.0.0.1", 0).port
    user, watcher = fastio.Client(), socketio.Client()
    seen: queue.Queue[Any] = queue.Queue()
    for name in ("config", "all_sockets", "event_received"):
        watcher.on(name, lambda *args, name=name: seen.put((name, args)), namespace="/admin")
    try:
        user.connect(url, transports=["websocket"], wait_timeout=TIMEOUT)
        watcher.connect(url, namespaces=["/admin"], auth={"username": "admin", "password": "secret"},
                        transports=["websocket"], wait_timeout=TIMEOUT)
        got: dict[str, Any] = {}
        while "config" not in got or "all_sockets" not in got:
            name, args = seen.get(timeout=TIMEOUT)
            got[name] = args
        assert "ALL_EVENTS" in got["config"][0]["supportedFeatures"]
        assert user.get_sid("/") in [s["id"] for s in got["all_sockets"][0]]
        assert user.call("hello", "there", timeout=TIMEOUT) == "hi there"
        while True:
            name, args = seen.get(timeout=TIMEOUT)
            if name == "event_received":
                break
        assert args[1] == user.get_sid("/") and args[2][0] == "hello"
    finally:
        user.disconnect()
        watcher.disconnect()
        sio.close()
