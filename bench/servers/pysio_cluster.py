"""python-socketio (ASGI) under uvicorn as one node of a fleet on Redis (``AsyncRedisManager``),
for the cluster benchmark.  ``FASTIO_BENCH_REDIS`` is the Redis URL, ``FASTIO_BENCH_KEY`` the
channel; uvicorn settings and handlers as in pysio_uvicorn.py."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402

from _common import add_bench_handlers, serve_with_uvicorn  # noqa: E402

URL = os.environ.get("FASTIO_BENCH_REDIS", "redis://127.0.0.1:6379/0")
KEY = os.environ.get("FASTIO_BENCH_KEY", "socketio")

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*",
                           client_manager=socketio.AsyncRedisManager(URL, channel=KEY))
app = socketio.ASGIApp(sio)

add_bench_handlers(sio)


if __name__ == "__main__":
    serve_with_uvicorn(app, "pysio_cluster", __doc__)
