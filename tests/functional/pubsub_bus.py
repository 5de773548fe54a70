"""An in-memory message bus for pub/sub manager tests: several servers in one process, each with a
``BusManager`` on the same ``Bus``, exchange python-socketio's pub/sub messages as over Redis."""
from __future__ import annotations

import asyncio
from typing import Any

import fastio


class Bus:
    """Every subscriber gets every message."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[Any]] = []


class BusManager(fastio.AsyncPubSubManager):
    """An ``AsyncPubSubManager`` publishing to, and listening on, a ``Bus``."""

    name = "bus"

    def __init__(self, bus: Bus, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bus = bus

    async def _publish(self, data: Any) -> None:
        body = self.json.dumps(data)
        for q in self.bus.queues:
            q.put_nowait(body)

    async def _listen(self):
        q: asyncio.Queue[Any] = asyncio.Queue()
        self.bus.queues.append(q)
        while True:
            yield await q.get()
