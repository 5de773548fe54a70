"""Timing and a broadcast room on fake WebSockets, shared by the benchmarks of fastio's compiled
core (micro.py, compression_bench.py)."""
from __future__ import annotations

import gc
import time
from typing import Any, Callable


def timeit(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            best = min(best, (time.perf_counter() - t0) / number)
    finally:
        if gc_was:
            gc.enable()
    return best


class FakeLoop:
    """The one event-loop method a Flusher uses; ``run`` runs what it scheduled."""

    def __init__(self) -> None:
        self.cbs: list[Callable[[], Any]] = []

    def call_soon(self, cb: Callable[[], Any], *args: Any) -> None:
        self.cbs.append(cb)

    def run(self) -> None:
        """Run the callbacks scheduled so far."""
        cbs = self.cbs
        self.cbs = []
        for cb in cbs:
            cb()


def fake_room(n: int, messages: bool = False, deflate_wbits: int = 0,
              deflate_threshold: int = 1024) -> tuple[Any, FakeLoop, list[Any]]:
    """A RoomTable with ``n`` connections in the namespace ``/``, each carried by a fake
    WebSocket that takes frames (counting the bytes in ``written``) or, with ``messages``, whole
    messages (as a framework's: counting the batches in ``batches``); with ``deflate_wbits``,
    permessage-deflate negotiated.  Returns the table, the loop its writes are flushed on and
    the transports."""
    from fastio._core.conn import Conn, Flusher, WSTransport
    from fastio._core.rooms import RoomTable

    class FakeWS(WSTransport):
        def __init__(self):
            self.written = 0
            self.batches = 0
            self.ws_messages = messages
            if deflate_wbits:
                self.deflate_wbits = deflate_wbits
                self.deflate_threshold = deflate_threshold

        def ws_write(self, data):
            self.written += len(data)

        def ws_send_messages(self, msgs):
            self.batches += 1

        def ws_close(self, code=1000, reason=""):
            pass

    class Handler:
        heartbeat_interval = 25.0

        def message_sink(self, conn, data, binary):
            pass

        def overflow(self, conn):
            pass

        def conn_closed(self, conn, reason):
            pass

    loop = FakeLoop()
    flusher = Flusher(loop)
    handler = Handler()
    table = RoomTable()
    transports = []
    for i in range(n):
        c = Conn("s%d" % i, handler, flusher)
        ws = FakeWS()
        transports.append(ws)
        c.upgrade(ws)
        table.enter("/", None, "s%d" % i, c)
    return table, loop, transports


def broadcaster(table: Any, loop: FakeLoop, data: list[Any]) -> Callable[[], None]:
    """One broadcast of the event ``data`` to every connection of the room :func:`fake_room`
    made, encoded and written out: a function for :func:`timeit`."""
    from fastio._core.packet import EVENT, encode

    def one() -> None:
        table.fanout("/", None, None, encode(EVENT, "/", data))
        loop.run()

    return one
