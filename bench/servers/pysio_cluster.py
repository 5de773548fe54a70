"""python-socketio (ASGI) under uvicorn as one node of a fleet on Redis (``AsyncRedisManager``),
for the cluster benchmark.  ``FASTIO_BENCH_REDIS`` is the Redis URL, ``FASTIO_BENCH_KEY`` the
channel; uvicorn settings and handlers as in pysio_uvicorn.py."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402
import uvicorn  # noqa: E402

from _common import add_bench_handlers, announce_when_listening, parse_args  # noqa: E402

URL = os.environ.get("FASTIO_BENCH_REDIS", "redis://127.0.0.1:6379/0")
KEY = os.environ.get("FASTIO_BENCH_KEY", "socketio")

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*",
                           client_manager=socketio.AsyncRedisManager(URL, channel=KEY))
app = socketio.ASGIApp(sio)

add_bench_handlers(sio)


if __name__ == "__main__":
    a = parse_args(__doc__)
    announce_when_listening("pysio_cluster", a.host, a.port)
    uvicorn.run(app, host=a.host, port=a.port, loop="uvloop", http="httptools", ws="auto",
                log_level="warning", access_log=False, lifespan="off", backlog=4096)
