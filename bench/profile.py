"""Profile a Python server under one benchmark scenario with py-spy.

    python bench/profile.py --scenario echo                    # fastio_native, echo
    python bench/profile.py --server pysio_aiohttp --scenario broadcast --duration 5

Starts the server pinned to CPU 0, starts ``py-spy record --native`` on it, drives it with
bench/loadgen.py pinned to CPU 1, then prints where the samples landed: the hottest leaf
functions (self time) and the functions that were on the stack the most (inclusive time),
with line numbers folded away. The raw collapsed stacks are kept in bench/results/ for
flamegraph tools (``py-spy record --format raw``).

Needs py-spy (``pip install py-spy``) and permission to ptrace the server (root, or
kernel.yama.ptrace_scope = 0).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run as runner  # noqa: E402

LINE_RE = re.compile(r":\d+\)$")


def find_py_spy() -> str | None:
    cand = os.path.join(os.path.dirname(runner.PY), "py-spy")
    return cand if os.path.exists(cand) else shutil.which("py-spy")


def fold(frame: str) -> str:
    """``name (path/file.py:123)`` -> ``name (file.py)``."""
    frame = LINE_RE.sub(")", frame.strip())
    name, _, where = frame.partition(" (")
    return "%s (%s" % (name, os.path.basename(where)) if where else name


def summarize(raw_path: str, top: int) -> str:
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [fold(x) for x in stack.split(";")]
            self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + n
    if not total:
        return "no samples"
    out = ["%d samples" % total, "", "SELF (leaf frame)"]
    for fr, n in sorted(self_t.items(), key=lambda kv: -kv[1])[:top]:
        out.append("  %5.1f%%  %s" % (100.0 * n / total, fr))
    out += ["", "INCLUSIVE (on the stack)"]
    for fr, n in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        out.append("  %5.1f%%  %s" % (100.0 * n / total, fr))
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="fastio_native",
                   choices=[s for s in runner.SERVERS if not s.startswith("node_")] + [runner.REFERENCE])
    p.add_argument("--scenario", default="echo", choices=list(runner.SCENARIOS),
                   help="a benchmark scenario of bench/run.py (default echo: 100 conns x 1 in flight)")
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds of load")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--no-native", action="store_true", help="Python frames only (lower overhead)")
    a = p.parse_args()
    spy = find_py_spy()
    if spy is None:
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    spec = runner.REFERENCE_SPEC if a.server == runner.REFERENCE else runner.SERVERS[a.server]
    pinned = runner.have_taskset()
    os.makedirs(runner.RESULTS, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = os.path.join(runner.RESULTS, "profile-%s-%s-%s.txt" % (a.server, a.scenario, stamp))
    srv = runner.ServerProcess(a.server, spec, pinned, raw[:-4] + "-server.log")
    spy_proc = None
    try:
        if not srv.wait_ready(60):
            print("server did not start", file=sys.stderr)
            return 1
        warmup = 1.0
        spy_cmd = runner.pin(1, pinned) + [spy, "record", "--pid", str(srv.pid), "--rate", str(a.rate),
                                           "--duration", str(int(a.duration + warmup + 2)),
                                           "--format", "raw", "-o", raw]
        if not a.no_native:
            spy_cmd.append("--native")
        spy_proc = subprocess.Popen(spy_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        lg = runner.pin(1, pinned) + [runner.PY, os.path.join(runner.BENCH, "loadgen.py"), "--port", str(srv.port),
                                      "--server-pid", str(srv.pid)]
        lg += runner.loadgen_args(argparse.Namespace(quick=False, duration=a.duration, warmup=warmup,
                                                     idle_clients=None, rate=None), a.scenario)
        res = subprocess.run(lg, capture_output=True, text=True, timeout=120 + 3 * a.duration)
        try:
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print("%s on %s: %s ops/s, %s us server CPU per op (slowed down by the sampling)"
                  % (a.scenario, a.server, runner.fmt(r.get("throughput")), runner.fmt(r.get("server_cpu_us_per_op"))))
        except (IndexError, ValueError):
            print("loadgen failed: %s" % res.stderr[-500:])
        spy_out, _ = spy_proc.communicate(timeout=60)
        print(spy_out.strip().splitlines()[-2] if spy_out.strip() else "")
    finally:
        if spy_proc is not None and spy_proc.poll() is None:
            spy_proc.terminate()
            spy_proc.wait(10)
        srv.stop()
    if os.path.exists(raw):
        print(summarize(raw, a.top))
        print("\nraw collapsed stacks: %s" % os.path.relpath(raw, os.getcwd()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
