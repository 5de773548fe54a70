"""Flask-SocketIO on fastio.

Flask-SocketIO builds python-socketio's ``socketio.Server`` itself, through the name ``socketio``
in its own module.  ``patch_flask_socketio()`` points that name at fastio's sync server API, so
every ``SocketIO(app)`` made afterwards runs on fastio; nothing else in the process changes
(python-socketio stays importable and untouched).  Then either

- ``socketio.run(app)`` as usual (Werkzeug's threaded server, with fastio's ``WSGIApp``), or
- ``fastio.sync.flask.run(socketio, app)``: fastio's native server for Socket.IO and the Flask
  app in a thread pool (the fast way).
"""
from __future__ import annotations

from typing import Any

import fastio.sync as sync_api

__all__ = ["patch_flask_socketio", "run"]


def patch_flask_socketio() -> None:
    """Make Flask-SocketIO's ``SocketIO`` create fastio's ``Server`` (and its managers).

    Call it before ``SocketIO(app)`` / ``socketio.init_app(app)``."""
    import flask_socketio

    flask_socketio.socketio = sync_api  # type: ignore[attr-defined]


def run(socketio: Any, app: Any, host: str = "127.0.0.1", port: int = 5000, wsgi_threads: int = 32) -> None:
    """Serve a Flask-SocketIO app on fastio's native server until SIGINT/SIGTERM: Socket.IO on
    the event loop, the Flask app (routes, static files) in a pool of ``wsgi_threads`` threads."""
    server = socketio.server
    # Flask-SocketIO finds its Flask app in each connection's environ.
    server.extra_environ["flask.app"] = app
    server.run_native(host, port, app=app, wsgi_threads=wsgi_threads)


def start(socketio: Any, app: Any, host: str = "127.0.0.1", port: int = 0, wsgi_threads: int = 32) -> Any:
    """Like ``run`` but returns at once with the running ``fastio.HTTPServer`` (tests, embedding);
    ``socketio.server.close()`` stops it."""
    server = socketio.server
    server.extra_environ["flask.app"] = app
    return server.start_server(host, port, app=app, wsgi_threads=wsgi_threads)
