"""The ``fastio`` command: ``fastio run module:attr``, ``fastio demo``, ``fastio --version``."""
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastio`` console script."""
    parser = argparse.ArgumentParser(prog="fastio", description="fastio Socket.IO server")
    parser.add_argument("--version", action="version", version="fastio " + __version__)
    sub = parser.add_subparsers(dest="command")
    run_p = sub.add_parser("run", help="serve an AsyncServer given as module:attr")
    run_p.add_argument("app", help="module:attr of a fastio AsyncServer (or an ASGIApp wrapping one)")
    run_p.add_argument("--reload", action="store_true", help="restart when a .py file under the current directory changes")
    run_p.add_argument("--workers", type=int, default=1,
                       help="worker processes behind the port (sticky long-polling; one with --reload)")
    demo_p = sub.add_parser("demo", help="run the chat demo")
    for p in (run_p, demo_p):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    if args.command == "run" and args.reload:
        if args.workers > 1:
            print("fastio: --reload runs a single worker; --workers ignored", file=sys.stderr, flush=True)
        child_args = ["run", args.app, "--host", args.host, "--port", str(args.port), "--log-level", args.log_level]
        return _run_with_reload(child_args)
    if args.command == "run":
        from fastio.hosting.native import run
        run(load_app(args.app), args.host, args.port, log_level=args.log_level, workers=args.workers)
    elif args.command == "demo":
        from fastio.demo import main as demo_main
        demo_main(args.host, args.port, args.log_level)
    else:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
