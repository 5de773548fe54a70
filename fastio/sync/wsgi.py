"""python-socketio's WSGI integration: ``WSGIApp`` and ``Middleware`` around a sync ``Server``."""
from __future__ import annotations

import mimetypes
import os
from typing import Any, Callable, Iterable

from fastio.hosting.wsgi import status_text

__all__ = ["WSGIApp", "Middleware", "StaticFiles"]


class StaticFiles:
    """python-engineio's ``static_files`` mapping, served on the native server or under WSGI.

    Keys are URL paths; a value is a file or directory name, or a dict with ``filename`` and
    ``content_type``.  A directory serves the files under it (``index.html`` for the directory
    itself).  Other paths go to ``other`` (a native-server host, when given).
    """

    def __init__(self, static_files: dict[str, Any], other: Any = None) -> None:
        self.static_files = static_files
        self.other = other

    def lookup(self, path: str) -> tuple[str, str] | None:
        """(file name, content type) for the URL ``path``, or None."""
        best = ""
        for prefix in self.static_files:
            if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and len(prefix) > len(best):
                best = prefix
        if not best and "" not in self.static_files:
            return None
        target = self.static_files[best]
        content_type = None
        if isinstance(target, dict):
            content_type = target.get("content_type")
            target = target["filename"]
        rest = path[len(best):].lstrip("/")
        if os.path.isdir(target):
            if ".." in rest.split("/"):
                return None
            target = os.path.join(target, rest or "index.html")
        elif rest:
            return None
        if not os.path.isfile(target):
            return None
        return target, content_type or mimetypes.guess_type(target)[0] or "application/octet-stream"

    def read(self, path: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """The response for ``path`` (status, headers, body), or None when it is not static."""
        found = self.lookup(path)
        if found is None:
            return None
        with open(found[0], "rb") as f:
            return 200, [("Content-Type", found[1])], f.read()

    def handle_request(self, req: Any) -> None:
        """A native-server request: a static file, else ``other``, else 404."""
        response = self.read(req.path) if req.method in ("GET", "HEAD") else None
        if response is not None:
            req.respond(*response)
        elif self.other is not None:
            self.other.handle_request(req)
        else:
            req.respond(404, [("Content-Type", "text/plain")], b"Not Found")


class WSGIApp:
    """A WSGI application serving Socket.IO under ``/<socketio_path>/``, static files, and
    another WSGI application (Flask, Django, ...) for every other path (python-socketio's
    ``socketio.WSGIApp``).

    Under a threaded WSGI server (Werkzeug's, gunicorn's gthread worker): long-polling, and
    WebSocket where the server exposes the connection's socket.  ``fastio.run(app)`` serves the
    same application on fastio's native server instead (WebSocket there needs no thread).
    """

    def __init__(self, socketio_app: Any, wsgi_app: Any = None, static_files: dict[str, Any] | None = None,
                 socketio_path: str = "socket.io") -> None:
        self.socketio_app = socketio_app
        self.engineio_app = socketio_app
        self.wsgi_app = wsgi_app
        self.static_files = static_files or {}
        self.statics = StaticFiles(self.static_files) if static_files else None
        self.socketio_path = socketio_path.strip("/")
        eio = getattr(socketio_app, "eio", None)
        if eio is not None and eio.engineio_path != self.socketio_path:
            eio.engineio_path = self.socketio_path

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one WSGI request."""
        path = environ.get("PATH_INFO", "/")
        prefix = "/" + self.socketio_path
        if path == prefix or path.startswith(prefix + "/"):
            return self.socketio_app.handle_request(environ, start_response)  # type: ignore[no-any-return]
        if self.statics is not None and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            response = self.statics.read(path)
            if response is not None:
                status, headers, body = response
                start_response(status_text(status), headers)
                return [body]
        if self.wsgi_app is not None:
            return self.wsgi_app(environ, start_response)  # type: ignore[no-any-return]
        return self.not_found(environ, start_response)

    def not_found(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The 404 answer."""
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found"]

    def run_native(self, host: str = "127.0.0.1", port: int = 5000, app: Any = None, **kwargs: Any) -> None:
        """``fastio.run(WSGIApp(sio, flask_app))``: the native server, the WSGI app in threads."""
        self.socketio_app.run_native(host, port, app if app is not None else self.wsgi_app,
                                     static_files=self.static_files or None, **kwargs)

    def start_server(self, host: str = "127.0.0.1", port: int = 5000, **kwargs: Any) -> Any:
        """Start the native server for this application (see ``Server.start_server``)."""
        return self.socketio_app.start_server(host, port, self.wsgi_app,
                                              static_files=self.static_files or None, **kwargs)


class Middleware(WSGIApp):
    """python-socketio's older name for ``WSGIApp``."""

    def __init__(self, socketio_app: Any, wsgi_app: Any = None, socketio_path: str = "socket.io") -> None:
        super().__init__(socketio_app, wsgi_app, socketio_path=socketio_path)
