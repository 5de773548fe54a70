"""The ``fastio`` command: ``fastio run module:attr``, ``fastio demo``, ``fastio bench URL``,
``fastio --version``."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from fastio._version import __version__


def load_app(spec: str) -> Any:
    """Import ``module:attr`` (attr may be dotted); the current directory is importable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit("expected module:attribute, got %r" % spec)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _snapshot(root: str) -> dict[str, float]:
    """Modification times of the Python files under ``root`` (virtualenvs and caches skipped)."""
    times: dict[str, float] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "node_modules", "build")]
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                try:
                    times[path] = os.stat(path).st_mtime
                except OSError:
                    pass
    return times


def _run_with_reload(argv: list[str], interval: float = 0.5) -> int:
    """Run ``fastio <argv>`` in a child process and restart it when a .py file changes."""
    import signal
    import subprocess
    import time

    root = os.getcwd()
    stop = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while True:
        before = _snapshot(root)
        child = subprocess.Popen([sys.executable, "-m", "fastio.cli", *argv])
        changed = False
        while not stop and child.poll() is None:
            time.sleep(interval)
            if _snapshot(root) != before:
                changed = True
                break
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if stop or not changed:
            return 0 if stop else (child.returncode or 0)
        print("fastio: change detected, restarting", flush=True)


BENCH_SCENARIOS = "echo,ack,broadcast,connect,idle"

BENCH_EPILOG = """\
The server needs two handlers for the echo, ack and broadcast scenarios (names are options):
  echo(sid, *args)     emit 'echo' back to the sender with the same arguments; return them (the ack)
  broadcast(sid, data) emit 'broadcast' with data to every client
connect and idle need no handler. Clients use the WebSocket transport directly (no polling).
The URL's path is the namespace (http://host:8000/chat -> /chat), as in socket.io-client.
With --server-pid PID (a server on this machine) the table adds the server's CPU time per
operation (user/system) and, for idle, its memory per client.
Several servers of one fleet (e.g. nodes sharing a Redis manager), broadcast only:
  fastio bench http://127.0.0.1:8001 http://127.0.0.1:8002 --server-pid 101 --server-pid 102
splits the receivers round-robin over the URLs (the sender is on the first), counts every
delivery on every node, and sums the CPU and memory of every --server-pid.
"""


def _add_bench_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="measure any Socket.IO server: echo, ack, broadcast, connect-storm, idle",
        description="Load-test a Socket.IO server (fastio, python-socketio, Node socket.io, ...) "
                    "over WebSocket and print rate, latency percentiles and errors.",
        epilog=BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", nargs="+",
                   help="server URL, e.g. http://127.0.0.1:8000 (https:// or wss:// for TLS); broadcast: "
                        "several URLs (nodes of one fleet) split the receivers round-robin, the sender on the first")
    p.add_argument("-s", "--scenarios", default=None,
                   help="comma-separated, from echo, ack, broadcast, connect, idle, latency, binary "
                        "(default %s; with several URLs broadcast)" % BENCH_SCENARIOS)
    p.add_argument("-c", "--conns", type=int, default=None,
                   help="connections for echo/ack (default 100) and broadcast receivers (default 1000)")
    p.add_argument("-w", "--window", type=int, default=None,
                   help="events in flight per connection (echo/ack default 1; broadcast: the sender's, default 4)")
    p.add_argument("--pipeline", action="store_true",
                   help="write each batch of in-flight events in one write instead of one write per event")
    p.add_argument("--clients", type=int, default=None, help="connect/idle: clients to open (default 5000)")
    p.add_argument("--concurrency", type=int, default=None, help="connect/idle: handshakes at once (default 64)")
    p.add_argument("-d", "--duration", type=float, default=None, help="measured seconds per scenario (default 3)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first (default 1)")
    p.add_argument("--settle", type=float, default=None, help="idle: seconds the clients stay idle (default 1)")
    p.add_argument("--rate", type=float, default=None, help="latency: offered events per second (default 2000)")
    p.add_argument("--max-ops", type=int, default=5_000_000, help="operation budget per scenario (default %(default)s)")
    p.add_argument("--echo-event", default="echo", help="event the echo/ack scenarios send (default %(default)s)")
    p.add_argument("--broadcast-event", default="broadcast",
                   help="event the broadcast scenario sends (default %(default)s)")
    p.add_argument("--namespace", default=None, help="namespace (default: the URL's path, else /)")
    p.add_argument("--path", default=None, help="Engine.IO path (default /socket.io/)")
    p.add_argument("--insecure", action="store_true", help="TLS: do not verify the server's certificate")
    p.add_argument("--server-pid", type=int, action="append", default=[],
                   help="PID of the server (same machine): add its CPU per operation and memory; "
                        "repeat it for the nodes of a fleet (the figures are the sums)")
    p.add_argument("--quick", action="store_true", help="tiny counts (10 conns, 0.3 s): a smoke test")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout instead of a table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")


def _bench(args: argparse.Namespace) -> int:
    """Run ``fastio bench``: each scenario in turn, then the table (or JSON)."""
    import json

    from fastio import loadgen

    try:
        targets = [loadgen.parse_url(url, args.namespace, args.path) for url in args.url]
    except ValueError as exc:
        print("fastio bench: %s" % exc, file=sys.stderr)
        return 2
    for t in targets:
        t.verify_tls = not args.insecure
    target, also = targets[0], targets[1:]
    chosen = args.scenarios if args.scenarios is not None else ("broadcast" if also else BENCH_SCENARIOS)
    scenarios = [s.strip() for s in chosen.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in loadgen.SCENARIOS]
    if unknown or not scenarios:
        print("fastio bench: unknown scenario %s (one of %s)" % (", ".join(unknown) or "''",
                                                                 ", ".join(loadgen.SCENARIOS)), file=sys.stderr)
        return 2
    if also and scenarios != ["broadcast"]:
        print("fastio bench: several URLs are for the broadcast scenario only (-s broadcast)", file=sys.stderr)
        return 2
    results = []
    for sc in scenarios:
        opts = loadgen.Options(
            scenario=sc, target=target, also=also, server_pid=args.server_pid, conns=args.conns, window=args.window,
            clients=args.clients, concurrency=args.concurrency, settle=args.settle, rate=args.rate,
            duration=args.duration, warmup=args.warmup, max_ops=args.max_ops, pipeline=args.pipeline,
            echo_event=args.echo_event, broadcast_event=args.broadcast_event, quick=args.quick)
        try:
            res = loadgen.run(opts, progress=None if args.quiet else sys.stderr)
        except Exception as exc:  # one failed scenario is reported, the others still run
            res = {"scenario": sc, "error": "%s: %s" % (type(exc).__name__, exc)}
        results.append(res)
    if args.json:
        print(json.dumps({"target": target.url(), "targets": [t.url() for t in targets], "results": results},
                         indent=1))
    else:
        print("fastio bench %s" % " ".join(t.url() for t in targets))
        print(loadgen.format_summary(results))
    return 1 if any("error" in r for r in results) else 0


# ``fastio run`` options passed to ``fastio.run`` as connection limits when given.
_LIMIT_ARGS = (
    ("max_header_size", int, "bytes of a request line and headers; 431 past it (default 65536)"),
    ("headers_timeout", float, "seconds for a request's head to arrive (default 60)"),
    ("request_timeout", float, "seconds for a whole request, or for a peer to read its responses (default 300)"),
    ("keep_alive_timeout", float, "seconds an idle keep-alive connection stays open (default 5)"),
    ("upgrade_timeout", float, "seconds for a WebSocket upgrade to complete (default 10)"),
    ("close_timeout", float, "seconds a closing connection may take to read what is left (default 5)"),
    ("shutdown_timeout", float, "seconds a graceful stop lets clients read what is queued (default 10)"),
)


def _limit_values(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name, _, _ in _LIMIT_ARGS if getattr(args, name) is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastio`` console script."""
    parser = argparse.ArgumentParser(prog="fastio", description="fastio Socket.IO server")
    parser.add_argument("--version", action="version", version="fastio " + __version__)
    sub = parser.add_subparsers(dest="command")
    run_p = sub.add_parser("run", help="serve a Socket.IO server given as module:attr")
    run_p.add_argument("app", help="module:attr of a fastio AsyncServer or Server, or an ASGIApp/WSGIApp wrapping one")
    run_p.add_argument("--wsgi-threads", type=int, default=32,
                       help="threads running the WSGI application of a WSGIApp (sync Server only)")
    run_p.add_argument("--reload", action="store_true", help="restart when a .py file under the current directory changes")
    run_p.add_argument("--workers", type=int, default=1,
                       help="worker processes behind the port (sticky long-polling; one with --reload)")
    limits = run_p.add_argument_group("connection limits and timeouts (docs/reliability.md)")
    for name, kind, text in _LIMIT_ARGS:
        limits.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    demo_p = sub.add_parser("demo", help="run the chat demo")
    _add_bench_parser(sub)
    for p in (run_p, demo_p):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    if args.command == "run" and args.reload:
        if args.workers > 1:
            print("fastio: --reload runs a single worker; --workers ignored", file=sys.stderr, flush=True)
        child_args = ["run", args.app, "--host", args.host, "--port", str(args.port), "--log-level", args.log_level,
                      "--wsgi-threads", str(args.wsgi_threads)]
        for name, value in _limit_values(args).items():
            child_args += ["--" + name.replace("_", "-"), str(value)]
        return _run_with_reload(child_args)
    if args.command == "run":
        from fastio.hosting.native import run
        run(load_app(args.app), args.host, args.port, log_level=args.log_level, workers=args.workers,
            wsgi_threads=args.wsgi_threads, **_limit_values(args))
    elif args.command == "demo":
        from fastio.demo import main as demo_main
        demo_main(args.host, args.port, args.log_level)
    else:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
