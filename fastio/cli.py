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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastio`` console script."""
    parser = argparse.ArgumentParser(prog="fastio", description="fastio Socket.IO server")
    parser.add_argument("--version", action="version", version="fastio " + __version__)
    sub = parser.add_subparsers(dest="command")
    run_p = sub.add_parser("run", help="serve an AsyncServer given as module:attr")
    run_p.add_argument("app", help="module:attr of a fastio AsyncServer")
    demo_p = sub.add_parser("demo", help="run the chat demo")
    for p in (run_p, demo_p):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    if args.command == "run":
        from fastio.native import run
        run(load_app(args.app), args.host, args.port, log_level=args.log_level)
    elif args.command == "demo":
        from fastio.demo import main as demo_main
        demo_main(args.host, args.port, args.log_level)
    else:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
