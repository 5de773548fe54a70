"""python-socketio on aiohttp's web server (uvloop event loop)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import socketio  # noqa: E402
import uvloop  # noqa: E402
from aiohttp import web  # noqa: E402

from _common import add_bench_handlers, announce_when_listening, parse_args  # noqa: E402

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
app = web.Application()
sio.attach(app)

add_bench_handlers(sio)


if __name__ == "__main__":
    a = parse_args(__doc__)
    announce_when_listening("pysio_aiohttp", a.host, a.port)
    web.run_app(app, host=a.host, port=a.port, access_log=None, print=None, backlog=4096,
                loop=uvloop.new_event_loop())
