"""fastio on its native server (compiled HTTP/WebSocket protocol on uvloop)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import fastio  # noqa: E402

from _common import add_bench_handlers, announce_when_listening, parse_args  # noqa: E402

sio = fastio.AsyncServer(cors_allowed_origins="*")

add_bench_handlers(sio)


if __name__ == "__main__":
    a = parse_args(__doc__)
    announce_when_listening("fastio_native", a.host, a.port)
    fastio.run(sio, a.host, a.port)
