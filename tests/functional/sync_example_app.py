"""python-socketio's sync example app (Flask + ``socketio.Server``), written for
``import fastio as socketio``: rooms, broadcasts, a background thread, disconnect on request, and a
handler that blocks until another client releases it.

``create_app()`` builds a fresh one; gunicorn loads ``sync_example_app:create_wsgi()``.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

from flask import Flask

import fastio as socketio


class ExampleApp:
    """The Socket.IO server, the Flask app, and the WSGIApp joining them."""

    def __init__(self, async_mode: str = "threading") -> None:
        self.sio = sio = socketio.Server(async_mode=async_mode, logger=False)
        self.flask = flask = Flask(__name__)
        self.wsgi = socketio.WSGIApp(sio, flask)
        self.release = threading.Event()
        self.ticker: threading.Thread | None = None
        self.ticker_lock = threading.Lock()
        self.disconnects: list[tuple[str, str, Any]] = []
        self.disconnected = threading.Event()

        @flask.route("/")
        def index() -> str:
            return "sync example"

        @flask.route("/notify/<room>")
        def notify(room: str) -> str:
            # An emit from a Flask view, i.e. from a WSGI thread.
            sio.emit("my_response", {"data": "from flask"}, to=room)
            return "sent"

        @sio.event
        def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
            with self.ticker_lock:
                if self.ticker is None:
                    self.ticker = sio.start_background_task(self.background)
            with sio.session(sid) as session:
                session["name"] = (auth or {}).get("name", "anonymous")
            sio.emit("my_response", {"data": "Connected", "count": 0}, room=sid)

        @sio.event
        def disconnect(sid: str, reason: str) -> None:
            self.disconnects.append((sid, reason, sio.get_session(sid).get("name")))
            self.disconnected.set()

        @sio.event
        def my_event(sid: str, message: dict[str, Any]) -> None:
            sio.emit("my_response", {"data": message["data"]}, room=sid)

        @sio.event
        def my_broadcast_event(sid: str, message: dict[str, Any]) -> None:
            sio.emit("my_response", {"data": message["data"], "from": sio.get_session(sid)["name"]})

        @sio.event
        def join(sid: str, message: dict[str, Any]) -> list[Any]:
            sio.enter_room(sid, message["room"])
            return sorted(r for r in sio.rooms(sid) if r != sid)

        @sio.event
        def leave(sid: str, message: dict[str, Any]) -> list[Any]:
            sio.leave_room(sid, message["room"])
            return sorted(r for r in sio.rooms(sid) if r != sid)

        @sio.event
        def close_room(sid: str, message: dict[str, Any]) -> None:
            sio.emit("my_response", {"data": "Room " + message["room"] + " is closing."}, room=message["room"])
            sio.close_room(message["room"])

        @sio.event
        def my_room_event(sid: str, message: dict[str, Any]) -> None:
            sio.emit("my_response", {"data": message["data"]}, room=message["room"], skip_sid=sid)

        @sio.event
        def disconnect_request(sid: str) -> None:
            sio.disconnect(sid)

        @sio.event
        def block(sid: str) -> str:
            # Blocks its thread until another client sends "unblock".
            self.release.wait(30)
            return "released"

        @sio.event
        def unblock(sid: str) -> str:
            self.release.set()
            return "ok"

        @sio.event
        def ask(sid: str, question: str) -> Any:
            # A blocking call back to the client from a handler thread.
            return sio.call("question", question, to=sid, timeout=10)

    def background(self) -> None:
        """The example's background thread: a tick every 50 ms to every client."""
        count = 0
        while True:
            self.sio.sleep(0.05)
            count += 1
            try:
                self.sio.emit("tick", {"count": count})
            except RuntimeError:  # the server was closed
                return


def create_app() -> ExampleApp:
    """A fresh example app."""
    return ExampleApp()


def create_wsgi() -> Any:
    """A fresh example app's WSGI application (gunicorn's application factory)."""
    return create_app().wsgi


@contextlib.contextmanager
def serve_gunicorn(*options: str) -> Iterator[str]:
    """A fresh example app under gunicorn's gthread worker (a subprocess, port 0, more gunicorn
    ``options`` if given); yields its URL and stops it (by its PID) on exit."""
    import pytest

    here = Path(__file__).resolve().parent
    gunicorn = Path(sys.executable).with_name("gunicorn")
    if not gunicorn.exists():
        pytest.fail("gunicorn is not installed in the test virtualenv (pip install -e .[test])", pytrace=False)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [str(gunicorn), "-k", "gthread", "--threads", "32", "-w", "1", "-b", "127.0.0.1:0",
         "--chdir", str(here), "--log-level", "info", *options, "sync_example_app:create_wsgi()"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    try:
        assert proc.stderr is not None
        port = None
        seen = []
        for line in iter(proc.stderr.readline, b""):
            seen.append(line.decode(errors="replace"))
            match = re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
            if b"Booting worker" in line:
                break
        assert port, "gunicorn did not start:\n" + "".join(seen)
        stderr = proc.stderr
        # Keep draining its log so it never blocks on a full pipe.
        threading.Thread(target=stderr.read, daemon=True).start()
        yield "http://127.0.0.1:%d" % port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve_native() -> Iterator[tuple[ExampleApp, str]]:
    """A fresh example app on fastio's own server (``start_server(app=flask)``, port 0); yields
    the app and its URL, and closes it on exit."""
    example = create_app()
    server = example.sio.start_server("127.0.0.1", 0, app=example.flask)
    try:
        yield example, "http://127.0.0.1:%d" % server.port
    finally:
        example.sio.close()


@contextlib.contextmanager
def serve_werkzeug() -> Iterator[tuple[ExampleApp, str]]:
    """A fresh example app as a WSGI application under Werkzeug's threaded server (port 0, its
    request log quiet); yields the app and its URL, and stops both on exit."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    example = create_app()
    server = make_server("127.0.0.1", 0, example.wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield example, "http://127.0.0.1:%d" % server.server_port
    finally:
        example.sio.close()
        server.shutdown()
        thread.join(5)


@contextlib.contextmanager
def serve_gunicorn_app() -> Iterator[tuple[ExampleApp | None, str]]:
    """:func:`serve_gunicorn` shaped like the other hosts: the app (``None``: it lives in
    gunicorn's worker) and the URL."""
    with serve_gunicorn() as url:
        yield None, url


#: the ways to serve the example app, by name: each a context manager yielding (app, URL)
HOSTS = {"native": serve_native, "werkzeug": serve_werkzeug, "gunicorn": serve_gunicorn_app}
