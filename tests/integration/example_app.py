"""An application for ``fastio run`` (tests/integration/test_cli.py).

``sio``: a bare fastio AsyncServer; ``app``: an ASGIApp wrapping another server, with a
FastAPI app for the other paths. Both answer ``add`` with the sum and ``whoami`` with which one
answered.
"""

from __future__ import annotations

from fastapi import FastAPI

import fastio

sio = fastio.AsyncServer(cors_allowed_origins="*")


@sio.event
async def add(sid, a, b):
    return a + b


@sio.event
async def whoami(sid):
    return "sio"


asgi_sio = fastio.AsyncServer(cors_allowed_origins="*")


@asgi_sio.event
async def add(sid, a, b):  # noqa: F811 (a handler of the other server)
    return a + b


@asgi_sio.event
async def whoami(sid):  # noqa: F811
    return "asgi"


api = FastAPI()


@api.get("/api/hello")
async def hello():
    return {"hello": "from fastio run", "clients": len(asgi_sio.eio.sockets)}


app = fastio.ASGIApp(asgi_sio, other_asgi_app=api)
