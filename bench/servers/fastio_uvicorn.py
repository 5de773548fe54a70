"""fastio under uvicorn through ``fastio.ASGIApp`` (same uvicorn settings as pysio_uvicorn).

With ``--native-ws`` uvicorn gets ``ws=app.uvicorn_ws``: Socket.IO WebSockets are then served by
fastio's compiled protocol instead of ASGI messages (HTTP stays on uvicorn).

Exits with status 3 and a SKIP line when this fastio build has no ``ASGIApp`` yet.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import fastio  # noqa: E402

from _common import announce_when_listening, parse_args  # noqa: E402

SKIP_STATUS = 3


def available() -> bool:
    return hasattr(fastio, "ASGIApp")


if __name__ == "__main__":
    native_ws = "--native-ws" in sys.argv
    if native_ws:
        sys.argv.remove("--native-ws")
    if "--check" in sys.argv:
        sys.exit(0 if available() else SKIP_STATUS)
    if not available():
        print("SKIP fastio_uvicorn: fastio.ASGIApp does not exist in this build", flush=True)
        sys.exit(SKIP_STATUS)
    import uvicorn

    sio = fastio.AsyncServer(cors_allowed_origins="*")
    app = fastio.ASGIApp(sio)

    @sio.event
    async def echo(sid, *args):
        await sio.emit("echo", args if len(args) != 1 else args[0], to=sid)
        return args

    @sio.event
    async def broadcast(sid, data):
        await sio.emit("broadcast", data)

    a = parse_args(__doc__)
    announce_when_listening("fastio_uvicorn_ws" if native_ws else "fastio_uvicorn", a.host, a.port)
    uvicorn.run(app, host=a.host, port=a.port, loop="uvloop", http="httptools",
                ws=app.uvicorn_ws if native_ws else "auto",
                log_level="warning", access_log=False, lifespan="off", backlog=4096)
