"""What a test server's handlers saw, recorded as events and awaited by the test."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

EVENT_TIMEOUT = 10.0


class EventLog:
    """Events recorded by handlers, as dicts with a ``kind`` key.

    :meth:`expect` returns (and consumes) the first not yet consumed event of a kind whose fields
    match, waiting for it if needed; :meth:`all` looks without consuming.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._consumed: set[int] = set()
        self._waiters: list[asyncio.Future] = []

    def add(self, kind: str, **fields: Any) -> None:
        self.events.append({"kind": kind, **fields})
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def all(self, kind: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())]

    def _find(self, kind: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        for i, e in enumerate(self.events):
            if i in self._consumed or e["kind"] != kind:
                continue
            if all(e.get(k) == v for k, v in fields.items()):
                self._consumed.add(i)
                return e
        return None

    async def expect(self, kind: str, timeout: float = EVENT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self._find(kind, fields)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"the server saw no {kind} {fields} within {timeout} s; events: {self.events}")
            fut = loop.create_future()
            self._waiters.append(fut)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(fut, remaining)
