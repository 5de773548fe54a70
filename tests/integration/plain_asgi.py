"""Pieces of the plain ASGI applications that the integration tests mount beside fastio."""

from __future__ import annotations

from typing import Any, Awaitable, Callable


async def complete_lifespan(receive: Callable[[], Awaitable[dict[str, Any]]],
                            send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Answer each ASGI lifespan message with its ``.complete`` message, until the shutdown."""
    while True:
        msg = await receive()
        await send({"type": msg["type"] + ".complete"})
        if msg["type"] == "lifespan.shutdown":
            return
