"""Hosting: the servers that carry Engine.IO/Socket.IO over the network.

The native server (uvloop + the compiled HTTP/WebSocket protocol), ASGI, aiohttp and uvicorn's
WebSocket hand-off. Imports every layer below it; nothing below imports this one.
"""
from fastio.hosting import aiohttp as _aiohttp  # noqa: F401  registers the aiohttp attacher
