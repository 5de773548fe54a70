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

from _common import add_bench_handlers, serve_with_uvicorn  # noqa: E402

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
    sio = fastio.AsyncServer(cors_allowed_origins="*")
    app = fastio.ASGIApp(sio)
    add_bench_handlers(sio)
    serve_with_uvicorn(app, "fastio_uvicorn_ws" if native_ws else "fastio_uvicorn", __doc__,
                       ws=app.uvicorn_ws if native_ws else "auto")
