"""fastio on its native server (compiled HTTP/WebSocket protocol on uvloop)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import fastio  # noqa: E402

from _common import announce_when_listening, parse_args  # noqa: E402

sio = fastio.AsyncServer(cors_allowed_origins="*")


@sio.event
async def echo(sid, *args):
    await sio.emit("echo", args if len(args) != 1 else args[0], to=sid)
    return args


@sio.event
async def broadcast(sid, data):
    await sio.emit("broadcast", data)


if __name__ == "__main__":
    a = parse_args(__doc__)
    announce_when_listening("fastio_native", a.host, a.port)
    fastio.run(sio, a.host, a.port)
