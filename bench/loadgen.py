"""The benchmark's load generator: one scenario per invocation, one JSON result on stdout.

The generator itself is ``fastio.loadgen`` (the same code as ``fastio bench URL``); this script
is the command line bench/run.py drives: a server on 127.0.0.1 at ``--port`` whose process
``--server-pid`` is measured (CPU time split into user and system, RSS).

    python bench/loadgen.py --port 8000 --server-pid 1234 --scenario echo --window 1
    python bench/loadgen.py --port 8000 --scenario echo --window 8 --pipeline

See fastio/loadgen.py for the scenarios and what one operation is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastio import loadgen  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Socket.IO load generator (raw WebSocket on uvloop)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--scenario", required=True, choices=sorted(loadgen.SCENARIOS))
    p.add_argument("--server-pid", type=int, default=0, help="PID whose CPU time and RSS are measured")
    p.add_argument("--quick", action="store_true", help="tiny counts for a smoke test")
    p.add_argument("--duration", type=float, default=None, help="measured seconds (default 3, quick 0.3)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first (default 1, quick 0.1)")
    p.add_argument("--drain", type=float, default=10.0, help="longest wait for answers in flight")
    p.add_argument("--max-ops", type=int, default=5_000_000, help="operation budget (bounds every loop)")
    p.add_argument("--conns", type=int, default=None)
    p.add_argument("--window", type=int, default=None, help="messages in flight per connection")
    p.add_argument("--pipeline", action="store_true", help="coalesce the messages in flight into one write")
    p.add_argument("--clients", type=int, default=None, help="idle/connect: number of clients")
    p.add_argument("--concurrency", type=int, default=None, help="handshakes in progress at once")
    p.add_argument("--warmup-clients", type=int, default=None)
    p.add_argument("--settle", type=float, default=None, help="idle: seconds before each RSS reading")
    p.add_argument("--rate", type=float, default=None, help="latency: offered echo events per second")
    p.add_argument("--out", default="-", help="where the JSON result goes (- for stdout)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    opts = loadgen.Options(
        scenario=a.scenario, target=loadgen.Target(a.host, a.port), server_pid=a.server_pid,
        conns=a.conns, window=a.window, clients=a.clients, concurrency=a.concurrency,
        warmup_clients=a.warmup_clients, settle=a.settle, rate=a.rate, duration=a.duration,
        warmup=a.warmup, drain=a.drain, max_ops=a.max_ops, pipeline=a.pipeline, quick=a.quick)
    try:
        out = loadgen.run(opts)
        status = 0
    except Exception as exc:  # reported in the JSON so the runner can show it
        out = {"scenario": a.scenario, "error": "%s: %s" % (type(exc).__name__, exc)}
        status = 1
    text = json.dumps(out)
    if a.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
