"""python-socketio (ASGI) under uvicorn: uvloop, httptools, and the WebSocket library uvicorn
picks by itself ("auto": websockets if installed, else wsproto)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402

from _common import add_bench_handlers, serve_with_uvicorn  # noqa: E402

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
app = socketio.ASGIApp(sio)

add_bench_handlers(sio)


if __name__ == "__main__":
    serve_with_uvicorn(app, "pysio_uvicorn", __doc__)
