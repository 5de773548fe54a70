"""Shared bits of the benchmark servers: command line and the READY announcement.

Every server prints ``READY <name> port=<port> pid=<pid>`` on stdout once its port accepts
connections, so the runner knows when to start the load.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    return p.parse_args()


def announce_when_listening(name: str, host: str, port: int, timeout: float = 30.0) -> None:
    """Print the READY line from a helper thread once ``host:port`` accepts a TCP connection.

    Used by servers whose ``run`` call blocks before we could print anything ourselves.
    The thread polls every 10 ms and ends after the first successful connect (or the timeout).
    """

    def probe() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.01)
                continue
            print("READY %s port=%d pid=%d" % (name, port, os.getpid()), flush=True)
            return
        print("NOT READY %s: port %d never accepted a connection" % (name, port), file=sys.stderr, flush=True)

    threading.Thread(target=probe, name="ready-probe", daemon=True).start()


def serve_with_uvicorn(app, name: str, description: str, **options) -> None:
    """Serve ``app`` under uvicorn on the ``--host``/``--port`` of the command line (described
    by ``description``) and print the READY line as ``name`` once it listens.  Every uvicorn
    server of the benchmark has the same settings: uvloop, httptools, the WebSocket library
    uvicorn picks by itself, no access log, no lifespan, a backlog of 4096; ``options``
    override them (e.g. ``ws``)."""
    import uvicorn

    a = parse_args(description)
    announce_when_listening(name, a.host, a.port)
    settings = dict(loop="uvloop", http="httptools", ws="auto", log_level="warning", access_log=False,
                    lifespan="off", backlog=4096)
    settings.update(options)
    uvicorn.run(app, host=a.host, port=a.port, **settings)


def add_bench_handlers(sio) -> None:
    """The two handlers every Python benchmark server has, the same code on fastio and
    python-socketio: ``echo`` emits its arguments back to the sender and returns them as the
    ack; ``broadcast`` emits its argument to everyone."""

    @sio.event
    async def echo(sid, *args):
        await sio.emit("echo", args if len(args) != 1 else args[0], to=sid)
        return args

    @sio.event
    async def broadcast(sid, data):
        await sio.emit("broadcast", data)
