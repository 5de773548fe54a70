"""What the interop and integration tests of the Node clients share: how a client connects,
how binary values cross its JSON lines, and the server handlers whose answers it checks.

A client runs in one of three modes: polling only, WebSocket only, or polling upgraded to
WebSocket. Binary values travel in the JSON lines of sio_client.mjs as ``{"$bin": base64}``,
at any depth, in both directions.
"""

from __future__ import annotations

import base64
from typing import Any

from eventlog import EventLog

MODES = ["polling", "websocket", "upgrade"]
#: the ``transports`` a client of each mode is given
TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}
#: the transport a client of each mode ends on
FINAL_TRANSPORT = {"polling": "polling", "websocket": "websocket", "upgrade": "websocket"}


def client_config(url: str, mode: str, timeout_ms: int, **config: Any) -> dict[str, Any]:
    """The config of a Node client of ``mode`` for the server at ``url``, stopping by itself
    after ``timeout_ms``; ``config`` adds to it or overrides it."""
    return {
        "url": url,
        "transports": TRANSPORTS[mode],
        "upgrade": mode == "upgrade",
        "timeoutMs": timeout_ms,
        **config,
    }


def to_wire(value: Any) -> Any:
    """``value`` with every bytes value (at any depth) as ``{"$bin": base64}``."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bin": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(value: Any) -> Any:
    """``value`` with every ``{"$bin": base64}`` (at any depth) decoded to bytes."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


def answer_clients(sio: Any, log: EventLog, *, three: str, echo: str, shout: tuple[str, str]) -> None:
    """Register on the AsyncServer ``sio`` the handlers whose answers the client scenarios
    check: "add" returns a + b; ``three`` returns its argument and two more values; ``echo``
    logs its argument (event ``echo``) and returns it; ``shout[0]`` logs its text (event
    ``shout[0]``) and emits it upper-cased back to the sender as ``shout[1]``."""
    asks, reply = shout

    @sio.on("add")
    async def add(sid, a, b):
        return a + b

    @sio.on(three)
    async def three_values(sid, x):
        return x, "second", {"third": 3}

    @sio.on(echo)
    async def echo_back(sid, data):
        log.add(echo, sid=sid, data=data)
        return data

    @sio.on(asks)
    async def shout_back(sid, text):
        log.add(asks, sid=sid, text=text)
        await sio.emit(reply, text.upper(), to=sid)
