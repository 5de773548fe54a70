"""The sync servers compared: fastio's ``Server`` against python-socketio's ``Server`` in threading
mode, over real WebSocket connections on 127.0.0.1, driven by ``bench/loadgen.py``.

Servers (identical ``echo`` and ``broadcast`` handlers, plain functions):

  fastio_native    fastio.Server on fastio's native server (``start_server``), handlers in its pool
  fastio_gthread   fastio.WSGIApp under gunicorn's gthread worker (1 worker)
  pysio_gthread    python-socketio Server(async_mode="threading") + WSGIApp under gunicorn gthread

Each server is a subprocess; the load generator reads the server's CPU time from /proc (the
gunicorn worker's, not its master's).  Prints one table row per run and the machine, Python and
git revision, and writes the JSON results to bench/results/sync-<stamp>.json.

    .venv/bin/python bench/sync_bench.py                  # echo and ack, every server
    .venv/bin/python bench/sync_bench.py --quick          # smoke test, ~20 s
    .venv/bin/python bench/sync_bench.py --servers fastio_native,pysio_gthread --scenarios echo,broadcast
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import free_port, stop_process  # noqa: E402

ROOT = HERE.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))
SERVERS = ("fastio_native", "fastio_gthread", "pysio_gthread")
SCENARIOS = ("echo", "ack", "broadcast")


# -- the applications (imported by gunicorn as sync_bench:fastio_app() / sync_bench:pysio_app()) --

def _handlers(sio: Any) -> None:
    @sio.event
    def echo(sid: str, *args: Any) -> Any:
        sio.emit("echo", args if len(args) != 1 else args[0], to=sid)
        return args

    @sio.event
    def broadcast(sid: str, data: Any) -> None:
        sio.emit("broadcast", data)


def fastio_app() -> Any:
    """fastio's sync server in a WSGIApp."""
    import fastio

    sio = fastio.Server(cors_allowed_origins="*")
    _handlers(sio)
    return fastio.WSGIApp(sio)


def pysio_app() -> Any:
    """python-socketio's sync server (threading mode) in a WSGIApp."""
    import socketio

    sio = socketio.Server(async_mode="threading", cors_allowed_origins="*")
    _handlers(sio)
    return socketio.WSGIApp(sio)


def serve_native(port: int) -> None:
    """The fastio_native server process."""
    # Blocked before any thread starts, so only sigwait() below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    import fastio

    sio = fastio.Server(cors_allowed_origins="*")
    _handlers(sio)
    server = sio.start_server("127.0.0.1", port)
    print("READY fastio_native port=%d pid=%d" % (server.port, os.getpid()), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sio.close()


# -- the runner -------------------------------------------------------------------------------------

def start(name: str, threads: int) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start server ``name``; returns (process, port, PID whose CPU is measured)."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if name == "fastio_native":
        proc = subprocess.Popen([PYTHON, str(Path(__file__)), "--serve", str(port)],
                                stdout=subprocess.PIPE, env=env, cwd=str(ROOT))
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"pid=(\d+)", line)
        assert match, "server did not start: %r" % line
        return proc, port, int(match.group(1))
    factory = "sync_bench:fastio_app()" if name == "fastio_gthread" else "sync_bench:pysio_app()"
    proc = subprocess.Popen([GUNICORN, "-k", "gthread", "--threads", str(threads), "-w", "1",
                             "-b", "127.0.0.1:%d" % port, "--chdir", str(HERE), "--log-level", "warning",
                             "--timeout", "120", factory], env=env, cwd=str(ROOT))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    children = Path("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read_text().split()
    assert children, "gunicorn has no worker"
    return proc, port, int(children[0])


def run_one(name: str, scenario: str, a: argparse.Namespace) -> dict[str, Any]:
    conns = a.conns if scenario != "broadcast" else a.broadcast_conns
    threads = max(64, conns + 16)  # a gthread WebSocket holds one thread for its whole life
    proc, port, pid = start(name, threads)
    try:
        cmd = [PYTHON, str(HERE / "loadgen.py"), "--port", str(port), "--scenario", scenario,
               "--server-pid", str(pid), "--conns", str(conns)]
        if a.quick:
            cmd.append("--quick")
        if a.duration:
            cmd += ["--duration", str(a.duration)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return {"server": name, "scenario": scenario, "error": out.stderr[-2000:]}
        result: dict[str, Any] = json.loads(out.stdout)
        result.update(server=name, scenario=scenario)
        return result
    finally:
        stop_process(proc, 15)


def describe() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=str(ROOT)).stdout.strip()
    except OSError:
        rev = "?"
    cpu = platform.processor() or platform.machine()
    return "%s, %d CPUs, Python %s, git %s" % (cpu, os.cpu_count() or 0, platform.python_version(), rev)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--scenarios", default="echo,ack")
    p.add_argument("--conns", type=int, default=50, help="echo/ack connections")
    p.add_argument("--broadcast-conns", type=int, default=200)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.serve is not None:
        serve_native(a.serve)
        return 0
    if a.quick:
        a.conns, a.broadcast_conns = 10, 50
    print(describe(), flush=True)
    print("%-16s %-10s %14s %16s %10s" % ("server", "scenario", "ops/s", "server CPU us/op", "p50 ms"))
    results = []
    for scenario in a.scenarios.split(","):
        for name in a.servers.split(","):
            r = run_one(name, scenario, a)
            results.append(r)
            if "error" in r:
                print("%-16s %-10s failed: %s" % (name, scenario, r["error"].strip().splitlines()[-1:]), flush=True)
                continue
            print("%-16s %-10s %14.0f %16.1f %10s" % (
                name, scenario, r.get("throughput", 0), r.get("server_cpu_us_per_op") or 0,
                ("%.2f" % r["p50_ms"]) if r.get("p50_ms") is not None else "-"), flush=True)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / ("sync-%s.json" % time.strftime("%Y%m%d-%H%M%S"))
    path.write_text(json.dumps({"machine": describe(), "results": results}, indent=1))
    print("results:", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
