"""Profile a server under one benchmark scenario: py-spy, perf or strace.

    python bench/profile.py --scenario echo                    # fastio_native, echo, py-spy
    python bench/profile.py --server pysio_aiohttp --scenario bcast1000 --duration 5
    python bench/profile.py --tool perf --scenario echo        # compiled code and kernel (perf record -g)
    python bench/profile.py --tool strace --scenario bcast1000 # system calls per operation (strace -c -f)

Starts the server pinned to CPU 0, attaches the tool to it, drives it with bench/loadgen.py
pinned to CPU 1, then prints where the time went:

* ``py-spy`` (``record --native``): the hottest leaf functions (self time) and the functions that
  were on the stack the most (inclusive time), line numbers folded away. The raw collapsed stacks
  are kept in bench/results/ for flamegraph tools.
* ``perf`` (``perf record -g``): the share of samples per shared object (kernel, libpython, the
  compiled core, uvloop, Node) and the hottest symbols; works for the Node servers too.
* ``strace`` (``strace -c -f``): system calls by name, and per operation (calls divided by every
  operation the generator saw, warm-up included; the handshakes add a little).

All three slow the server down: use them to see where time goes, not for figures. py-spy needs
``pip install py-spy``; all need permission to ptrace/perf the server (root, or
kernel.yama.ptrace_scope = 0 and a low kernel.perf_event_paranoid).
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


def loadgen_cmd(srv, a, pinned: bool, warmup: float) -> list[str]:
    """The load generator's command line for the scenario against ``srv``."""
    lg = runner.pin(1, pinned) + [runner.PY, os.path.join(runner.BENCH, "loadgen.py"), "--port", str(srv.port),
                                  "--server-pid", str(srv.pid)]
    return lg + runner.loadgen_args(argparse.Namespace(quick=False, duration=a.duration, warmup=warmup,
                                                       idle_clients=None, rate=None), a.scenario)


def drive(srv, a, pinned: bool, warmup: float) -> dict:
    """Run the scenario against ``srv``; the generator's JSON result ({} if it failed)."""
    lg = loadgen_cmd(srv, a, pinned, warmup)
    res = subprocess.run(lg, capture_output=True, text=True, timeout=180 + 3 * a.duration)
    try:
        r = json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print("loadgen failed: %s" % res.stderr[-500:])
        return {}
    print("%s on %s: %s ops/s, %s us server CPU per op (slowed down by the tool)"
          % (a.scenario, a.server, runner.fmt(r.get("throughput")), runner.fmt(r.get("server_cpu_us_per_op"))))
    return r


def summarize_perf(data: str, top: int) -> str:
    """Samples per shared object, then the hottest symbols, from ``perf report``."""
    out = []
    for sort, limit in (("dso", "0.5"), ("dso,sym", "0.7")):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                              "--percent-limit", limit, "-g", "none"],
                             capture_output=True, text=True, timeout=300)
        lines = [ln for ln in rep.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        out.append("BY %s" % sort.upper())
        out += ["  " + ln.strip() for ln in lines[:top]]
        out.append("")
    return "\n".join(out)


def summarize_strace(path: str, ops: int, top: int) -> str:
    """strace -c's table with a calls-per-operation column."""
    rows = []
    total_calls = 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            # "% time  seconds  usecs/call  calls  [errors]  syscall"
            if len(parts) >= 5 and parts[0].replace(".", "").isdigit():
                if parts[-1] == "total":
                    total_calls = int(parts[3])
                else:
                    rows.append((parts[-1], int(parts[3]), float(parts[0])))
    rows.sort(key=lambda r: -r[1])
    out = ["%d operations seen by the generator (warm-up included)" % ops,
           "%-20s %10s %10s %8s" % ("syscall", "calls", "per op", "% time")]
    for name, calls, pct in rows[:top]:
        out.append("%-20s %10d %10.3f %8.1f" % (name, calls, calls / ops if ops else 0, pct))
    if total_calls:
        out.append("%-20s %10d %10.3f" % ("total", total_calls, total_calls / ops if ops else 0))
    return "\n".join(out)


def start_server(a: argparse.Namespace, kind: str):
    """Start the server ``a.server`` (on CPU 0 where taskset exists) and wait until it is ready.
    Returns the ServerProcess (None, after saying so, when it did not start), whether processes
    are pinned, and where this run's files go: bench/results/``kind``-server-scenario-time, to
    which each file adds its ending (the server's log ``-server.log``)."""
    spec = runner.REFERENCE_SPEC if a.server == runner.REFERENCE else runner.SERVERS[a.server]
    pinned = runner.have_taskset()
    os.makedirs(runner.RESULTS, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(runner.RESULTS, "%s-%s-%s-%s" % (kind, a.server, a.scenario, stamp))
    srv = runner.ServerProcess(a.server, spec, pinned, base + "-server.log")
    if not srv.wait_ready(60):
        srv.stop()
        print("server did not start", file=sys.stderr)
        return None, pinned, base
    return srv, pinned, base


def profile_other(a: argparse.Namespace) -> int:
    """--tool perf / strace."""
    exe = shutil.which(a.tool)
    if exe is None:
        print("%s not found" % a.tool, file=sys.stderr)
        return 2
    srv, pinned, base = start_server(a, a.tool)
    if srv is None:
        return 1
    tool = None
    try:
        warmup = 1.0
        if a.tool == "perf":
            out_file = base + ".data"
            cmd = [exe, "record", "-F", str(a.rate), "-g", "-p", str(srv.pid), "-o", out_file]
        else:
            out_file = base + ".txt"
            cmd = [exe, "-c", "-f", "-p", str(srv.pid), "-o", out_file]
        tool = subprocess.Popen(runner.pin(1, pinned) + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        time.sleep(1.0)
        r = drive(srv, a, pinned, warmup)
        tool.send_signal(2)  # SIGINT: both tools then write their data and exit
        tool.communicate(timeout=120)
    finally:
        if tool is not None and tool.poll() is None:
            tool.terminate()
            tool.wait(10)
        srv.stop()
    if not os.path.exists(out_file):
        print("%s wrote nothing" % a.tool)
        return 1
    if a.tool == "perf":
        print(summarize_perf(out_file, a.top))
    else:
        print(summarize_strace(out_file, int(r.get("ops_all_phases") or 0), a.top))
    print("raw: %s" % os.path.relpath(out_file, os.getcwd()))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="fastio_native",
                   choices=list(runner.SERVERS) + [runner.REFERENCE],
                   help="py-spy profiles the Python servers only; perf and strace any of them")
    p.add_argument("--scenario", default="echo", choices=list(runner.SCENARIOS),
                   help="a benchmark scenario of bench/run.py (default echo: 100 conns x 1 in flight)")
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds of load")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--no-native", action="store_true", help="Python frames only (lower overhead)")
    p.add_argument("--tool", default="py-spy", choices=["py-spy", "perf", "strace"])
    a = p.parse_args()
    if a.tool != "py-spy":
        return profile_other(a)
    spy = find_py_spy()
    if spy is None:
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2
    srv, pinned, base = start_server(a, "profile")
    if srv is None:
        return 1
    raw = base + ".txt"
    spy_proc = None
    try:
        warmup = 1.0
        spy_cmd = runner.pin(1, pinned) + [spy, "record", "--pid", str(srv.pid), "--rate", str(a.rate),
                                           "--duration", str(int(a.duration + warmup + 2)),
                                           "--format", "raw", "-o", raw]
        if not a.no_native:
            spy_cmd.append("--native")
        spy_proc = subprocess.Popen(spy_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        lg = loadgen_cmd(srv, a, pinned, warmup)
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
