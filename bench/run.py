"""Run every benchmark scenario against every server and compare them with fastio.

    python bench/run.py                        # everything, once
    python bench/run.py --repeat 3             # medians of three interleaved rounds
    python bench/run.py --quick --servers fastio_native --scenarios echo   # smoke test, seconds

Each measurement starts a fresh server process pinned to CPU 0 and a fresh load generator
(bench/loadgen.py) pinned to CPU 1, both with ``taskset``. Rounds are interleaved: every scenario
runs against every server (in a rotating order) before the next round starts, so slow drifts of
the machine touch all servers alike. The generator reads the server's CPU time (utime + stime
from /proc/PID/stat) at the start and end of the measured phase; CPU per operation is the
headline figure because, unlike wall-clock throughput, it hardly depends on what else the
machine is doing.

``raw_reference`` (bench/servers/raw_reference.py, a trivial server that answers the benchmark
frames by string surgery) runs too, as the generator's ceiling, unless ``--no-reference``.

Output: tables on stdout, raw results in bench/results/bench-<stamp>.json and, if matplotlib is
importable, PNG plots next to it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
RESULTS = os.path.join(BENCH, "results")
SERVERS_DIR = os.path.join(BENCH, "servers")
SKIP_STATUS = 3


def venv_python() -> str:
    """The project's virtualenv interpreter if there is one, else the running interpreter."""
    cand = os.path.join(ROOT, ".venv", "bin", "python")
    return cand if os.path.exists(cand) else sys.executable


PY = venv_python()

SERVERS: dict[str, dict] = {
    "fastio_native": {
        "cmd": [PY, os.path.join(SERVERS_DIR, "fastio_native.py")],
        "label": "fastio native (uvloop)",
    },
    "fastio_uvicorn": {
        "cmd": [PY, os.path.join(SERVERS_DIR, "fastio_uvicorn.py")],
        "check": [PY, os.path.join(SERVERS_DIR, "fastio_uvicorn.py"), "--check"],
        "label": "fastio ASGIApp + uvicorn",
    },
    "fastio_uvicorn_ws": {
        "cmd": [PY, os.path.join(SERVERS_DIR, "fastio_uvicorn.py"), "--native-ws"],
        "check": [PY, os.path.join(SERVERS_DIR, "fastio_uvicorn.py"), "--check"],
        "label": "fastio ASGIApp + uvicorn, ws=app.uvicorn_ws",
    },
    "pysio_uvicorn": {
        "cmd": [PY, os.path.join(SERVERS_DIR, "pysio_uvicorn.py")],
        "label": "python-socketio ASGI + uvicorn",
    },
    "pysio_aiohttp": {
        "cmd": [PY, os.path.join(SERVERS_DIR, "pysio_aiohttp.py")],
        "label": "python-socketio + aiohttp",
    },
    "node_uws": {
        "cmd": ["node", os.path.join(SERVERS_DIR, "node_uws.mjs")],
        "label": "Node socket.io 4.8 on uWebSockets.js (io.attachApp)",
    },
    "node_socketio": {
        "cmd": ["node", os.path.join(SERVERS_DIR, "node_socketio.mjs")],
        "label": "Node socket.io 4.8 (ws)",
    },
    "uvicorn_floor": {
        "cmd": [PY, os.path.join(SERVERS_DIR, "uvicorn_floor.py")],
        "label": "bare ASGI app under uvicorn (uvicorn's own floor)",
    },
}
# Columns that are not Socket.IO servers: no ratio against the baseline in the tables.
REFERENCE = "raw_reference"
NOT_COMPARED = {REFERENCE, "uvicorn_floor"}
REFERENCE_SPEC = {
    "cmd": [PY, os.path.join(SERVERS_DIR, "raw_reference.py")],
    "label": "trivial reference (generator ceiling)",
}
BASELINE = "fastio_native"
# The reference peer of the reports: every table ends with the column fastio_native / node_uws.
PEER = "node_uws"
DEFAULT_SERVERS = ["fastio_native", "node_uws", "node_socketio", "pysio_uvicorn"]


def _sc(gen: str, args: list[str], quick: list[str], text: str, unit: str, units: str) -> dict:
    return {"gen": gen, "args": args, "quick": quick, "text": text, "unit": unit, "units": units}


# Benchmark scenarios: each is one loadgen scenario with its load. "One in flight" means every
# client has one event outstanding and each event goes out in its own write; "pipe8" keeps 8 in
# flight per client and writes each batch in one write (the figures docs/performance.md used to
# lead with).
SCENARIOS: dict[str, dict] = {
    "echo": _sc("echo", ["--conns", "100", "--window", "1"], ["--conns", "10", "--window", "1"],
                "echo round trip, 100 conns x 1 in flight, one write per event", "round trip", "round trips"),
    "ack": _sc("ack", ["--conns", "100", "--window", "1"], ["--conns", "10", "--window", "1"],
               "ack round trip, 100 conns x 1 in flight, one write per event", "ack", "acks"),
    "bcast1000": _sc("broadcast", ["--conns", "1000", "--window", "4"], ["--conns", "50", "--window", "2"],
                     "broadcast to 1,000 conns, 4 in flight, one write each", "delivery", "deliveries"),
    "bcast5000": _sc("broadcast", ["--conns", "5000", "--window", "4", "--concurrency", "128"],
                     ["--conns", "200", "--window", "2"],
                     "broadcast to 5,000 conns, 4 in flight, one write each", "delivery", "deliveries"),
    "connect": _sc("connect", [], [], "full handshake (WS + CONNECT + reply), 64 at a time", "handshake",
                   "handshakes"),
    "idle": _sc("idle", [], [], "5,000 idle clients: RSS per client, CPU per connect", "client", "connections"),
    "echo_pipe8": _sc("echo", ["--conns", "100", "--window", "8", "--pipeline"],
                      ["--conns", "10", "--window", "4", "--pipeline"],
                      "echo, 100 conns x 8 in flight, each batch in one write", "round trip", "round trips"),
    "ack_pipe8": _sc("ack", ["--conns", "100", "--window", "8", "--pipeline"],
                     ["--conns", "10", "--window", "4", "--pipeline"],
                     "ack, 100 conns x 8 in flight, each batch in one write", "ack", "acks"),
    "bcast_pipe8": _sc("broadcast", ["--conns", "1000", "--window", "8", "--pipeline"],
                       ["--conns", "50", "--window", "2", "--pipeline"],
                       "broadcast to 1,000 conns, 8 in flight in one write", "delivery", "deliveries"),
    "latency": _sc("latency", [], [], "echo at a fixed offered rate (open loop)", "round trip", "round trips"),
    "binary": _sc("binary", [], [], "64 KiB binary attachment echo", "64KiB trip", "64 KiB round trips"),
}
DEFAULT_SCENARIOS = ["echo", "ack", "bcast1000", "bcast5000", "connect", "idle", "echo_pipe8", "ack_pipe8"]
OP_UNITS = {name: sc["units"] for name, sc in SCENARIOS.items()}
OP_UNIT = {name: sc["unit"] for name, sc in SCENARIOS.items()}
# Scenarios whose latency percentiles the report shows (closed-loop round trips, broadcast send ->
# last receiver, handshake duration, open-loop echo).
LATENCY_SCENARIOS = ("echo", "ack", "bcast1000", "bcast5000", "connect", "latency")


# -- processes ------------------------------------------------------------------------------------

def have_taskset() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pin(cpu: int, enabled: bool) -> list[str]:
    return ["taskset", "-c", str(cpu)] if enabled else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server started for one measurement; stopped by its own PID."""

    def __init__(self, name: str, spec: dict, pinned: bool, log_path: str) -> None:
        self.name = name
        self.port = free_port()
        self.log = open(log_path, "a")
        self.log.write("\n==== %s %s port %d\n" % (time.strftime("%H:%M:%S"), name, self.port))
        self.log.flush()
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.pid = 0
        self.proc = subprocess.Popen(
            pin(0, pinned) + spec["cmd"] + ["--port", str(self.port)], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=self.log, text=True, preexec_fn=os.setpgrp)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                for part in line.split():
                    if part.startswith("pid="):
                        self.pid = int(part[4:])
                self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout: float) -> bool:
        self.ready.wait(timeout)
        return self.pid != 0 and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def busy_cores(interval: float = 0.25) -> float:
    """Cores busy machine-wide over ``interval`` seconds (from /proc/stat)."""
    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return sum(v) - v[3] - v[4], sum(v)
    b0, t0 = read()
    time.sleep(interval)
    b1, t1 = read()
    return (b1 - b0) / (t1 - t0) * os.cpu_count() if t1 > t0 else 0.0


def wait_quiet(limit_s: float, threshold: float = 0.3) -> float:
    """Wait (at most ``limit_s``) until fewer than ``threshold`` cores are busy; returns the last load."""
    end = time.monotonic() + limit_s
    load = busy_cores()
    while load > threshold and time.monotonic() < end:
        time.sleep(0.5)
        load = busy_cores()
    return load


def loadgen_args(a: argparse.Namespace, scenario: str) -> list[str]:
    """bench/loadgen.py's arguments for one benchmark scenario (see SCENARIOS)."""
    spec = SCENARIOS[scenario]
    gen = spec["gen"]
    out = ["--scenario", gen] + list(spec["quick"] if a.quick else spec["args"])
    if a.quick:
        out.append("--quick")
    if a.duration is not None:
        out += ["--duration", str(a.duration)]
    if a.warmup is not None:
        out += ["--warmup", str(a.warmup)]
    if gen == "idle" and a.idle_clients is not None:
        out += ["--clients", str(a.idle_clients)]
    if gen == "latency" and a.rate is not None:
        out += ["--rate", str(a.rate)]
    return out


def run_one(name: str, spec: dict, scenario: str, a: argparse.Namespace, pinned: bool,
            log_path: str) -> dict:
    """Start ``name``, run one scenario against it, stop it; returns the generator's result."""
    pre_load = wait_quiet(a.wait_quiet) if a.wait_quiet > 0 else None
    srv = ServerProcess(name, spec, pinned, log_path)
    try:
        if not srv.wait_ready(a.ready_timeout):
            rc = srv.proc.poll()
            if rc == SKIP_STATUS:
                return {"scenario": scenario, "skipped": " ".join(srv.lines) or "skipped"}
            return {"scenario": scenario, "error": "server did not become ready (exit %s; see %s)"
                    % (rc, os.path.relpath(log_path, ROOT))}
        cmd = pin(1, pinned) + [PY, os.path.join(BENCH, "loadgen.py"), "--port", str(srv.port),
                                "--server-pid", str(srv.pid)] + loadgen_args(a, scenario)
        budget = 60.0 if not a.quick else 30.0
        budget += 3 * ((a.duration or 3.0) + (a.warmup or 1.0))
        if SCENARIOS[scenario]["gen"] == "idle":
            budget += (a.idle_clients or 5000) / 100.0
        if scenario == "bcast5000":
            budget += 60.0
        try:
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=budget)
        except subprocess.TimeoutExpired:
            return {"scenario": scenario, "error": "load generator timed out after %.0f s" % budget}
        try:
            res = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            res = {"scenario": scenario, "error": "no result from loadgen (rc %d): %s"
                   % (p.returncode, (p.stderr or p.stdout)[-500:])}
        if srv.proc.poll() is not None:
            res.setdefault("error", "server exited during the run (rc %s)" % srv.proc.returncode)
        res["pre_load_cores"] = pre_load
        return res
    finally:
        srv.stop()


# -- environment ---------------------------------------------------------------------------------

VERSIONS_SNIPPET = r"""
import json, importlib.metadata as md, sys
out = {"python": sys.version.split()[0], "implementation": sys.implementation.name}
for d in ("uvloop", "python-socketio", "python-engineio", "uvicorn", "aiohttp", "wsproto",
          "websockets", "httptools", "orjson", "picows", "Cython"):
    try:
        out[d] = md.version(d)
    except md.PackageNotFoundError:
        out[d] = None
try:
    sys.path.insert(0, %r)
    import fastio
    out["fastio"] = fastio.__version__
    out["fastio_asgi"] = hasattr(fastio, "ASGIApp")
except Exception as exc:
    out["fastio"] = "import failed: %%s" %% exc
out["uvicorn_ws"] = "websockets" if out.get("websockets") else "wsproto"
print(json.dumps(out))
""" % ROOT


def environment(pinned: bool) -> dict:
    env: dict = {"cpus": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        env.update(json.loads(subprocess.run([PY, "-c", VERSIONS_SNIPPET], capture_output=True,
                                             text=True, timeout=30).stdout))
    except (ValueError, subprocess.SubprocessError):
        pass
    try:
        env["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                     timeout=10).stdout.strip()
        with open(os.path.join(ROOT, "node_modules", "socket.io", "package.json")) as f:
            env["socket.io"] = json.load(f)["version"]
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    try:
        env["git_rev"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain",
                                "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        env["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    env["loop"] = "uvloop %s for every Python server and the generator; libuv for Node" % env.get("uvloop")
    env["pinning"] = ("server on CPU 0, generator on CPU 1 (taskset)" if pinned
                      else "no pinning (taskset missing or fewer than 2 CPUs)")
    return env


def describe_env(env: dict) -> list[str]:
    rev = env.get("git_rev", "?") + (" (uncommitted changes)" if env.get("git_dirty") else "")
    return [
        "machine : %s, %s CPUs, Linux %s" % (env.get("cpu_model", "?"), env.get("cpus"), env.get("kernel")),
        "python  : %s, %s; python-socketio %s, engineio %s, uvicorn %s (ws=%s), aiohttp %s"
        % (env.get("python"), env.get("loop"), env.get("python-socketio"), env.get("python-engineio"),
           env.get("uvicorn"), env.get("uvicorn_ws"), env.get("aiohttp")),
        "node    : %s, socket.io %s" % (env.get("node"), env.get("socket.io")),
        "fastio  : %s at git %s" % (env.get("fastio"), rev),
        "pinning : %s" % env.get("pinning"),
    ]


# -- aggregation ---------------------------------------------------------------------------------

def median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs: list[dict]) -> dict:
    """{scenario: {server: summary}} with medians over repeats."""
    by: dict[str, dict[str, list[dict]]] = {}
    for r in runs:
        by.setdefault(r["scenario"], {}).setdefault(r["server"], []).append(r)
    out: dict[str, dict[str, dict]] = {}
    for sc, servers in by.items():
        for srv, rs in servers.items():
            ok = [r for r in rs if "error" not in r and "skipped" not in r]
            s: dict = {"runs": len(rs), "ok": len(ok)}
            if not ok:
                s["error"] = next((r.get("error") or r.get("skipped") for r in rs), "?")
                s["skipped"] = any("skipped" in r for r in rs)
            else:
                for key in ("throughput", "server_cpu_us_per_op", "server_sched_us_per_op",
                            "server_utime_us_per_op", "server_stime_us_per_op", "server_softirq_us_per_op",
                            "server_util", "gen_util", "other_load", "bytes_per_client",
                            "server_cpu_us_per_disconnect",
                            "broadcasts_per_s", "server_cpu_us_per_broadcast", "mib_per_s"):
                    s[key] = median([r.get(key) for r in ok])
                if any("latency_us" in r for r in ok):
                    s["latency_us"] = {p: median([r["latency_us"].get(p) for r in ok if "latency_us" in r])
                                       for p in ("p50", "p90", "p99", "p99.9", "max", "mean")}
                s["gen_saturated"] = any(r.get("gen_saturated") for r in ok)
                s["contended"] = max((r.get("other_load") or 0.0) for r in ok) > 0.25
                s["incomplete"] = any(r.get("drained") is False or r.get("errors") for r in ok)
            out.setdefault(sc, {})[srv] = s
    return out


# -- report --------------------------------------------------------------------------------------

def fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return "{:,.0f}".format(v)
    return ("{:.%dg}" % digits).format(v)


def flags(s: dict) -> str:
    f = ""
    if s.get("gen_saturated"):
        f += "G"
    if s.get("contended"):
        f += "~"
    if s.get("incomplete"):
        f += "!"
    return f


def ratio_cell(agg: dict, sc: str, value) -> str:
    """fastio_native's figure / node_uws's for one scenario ("-" when either is missing)."""
    f = agg.get(sc, {}).get(BASELINE)
    u = agg.get(sc, {}).get(PEER)
    fv = value(f) if f and "error" not in f else None
    uv = value(u) if u and "error" not in u else None
    return "%.2f" % (fv / uv) if fv is not None and uv else "-"


def table(title: str, scenarios: list[str], servers: list[str], agg: dict, value, note: str,
          cell=None) -> list[str]:
    """Rows = scenarios, columns = servers, then fastio_native / node_uws when both ran."""
    lines = [title, note]
    width = max([18] + [len(s) + 2 for s in servers])
    with_ratio = BASELINE in servers and PEER in servers
    head = "%-12s %-11s" % ("scenario", "per") + "".join("%*s" % (width, s) for s in servers)
    if with_ratio:
        head += "%12s" % "fastio/uWS"
    lines.append(head)
    lines.append("-" * len(head))
    for sc in scenarios:
        if sc not in agg:
            continue
        row = "%-12s %-11s" % (sc, OP_UNIT.get(sc, ""))
        for srv in servers:
            s = agg.get(sc, {}).get(srv)
            if s is None:
                c = "n/a"
            elif "error" in s:
                c = "skipped" if s.get("skipped") else "error"
            elif cell is not None:
                c = cell(s)
            else:
                c = fmt(value(s)) + flags(s)
            row += "%*s" % (width, c)
        if with_ratio:
            row += "%12s" % ratio_cell(agg, sc, value)
        lines.append(row)
    return lines


ASGI_COLUMNS = ("fastio_uvicorn", "pysio_uvicorn", "uvicorn_floor")
ASGI_FASTIO = ("fastio_uvicorn", "fastio_uvicorn_ws")


def asgi_figure(sc: str, s: dict | None) -> float | None:
    """The figure compared under uvicorn: CPU per operation, bytes per idle client, p99 latency."""
    if not s or "error" in s:
        return None
    if sc == "idle":
        return s.get("bytes_per_client")
    if sc == "latency":
        return (s.get("latency_us") or {}).get("p99")
    return s.get("server_cpu_us_per_op")


def asgi_section(agg: dict, scenarios: list[str]) -> list[str]:
    """python-socketio under uvicorn against fastio under uvicorn, with and without uvicorn's floor.

    ``uvicorn_floor`` is a bare ASGI app under the same uvicorn: what uvicorn spends for any app.
    Subtracting it leaves each server's own share, which is what an ASGI app can change.
    ``fastio_uvicorn_ws`` is fastio under the same uvicorn with ``ws=app.uvicorn_ws``.
    """
    fastios = [n for n in ASGI_FASTIO if any(agg.get(sc, {}).get(n) for sc in scenarios)]
    if not fastios or not any(agg.get(sc, {}).get("pysio_uvicorn") for sc in scenarios):
        return []
    head = "  %-10s %10s %10s" % ("scenario", "pysio", "floor")
    for n in fastios:
        head += " %18s %8s" % (n, "ratio")
        if n == "fastio_uvicorn":
            head += " %12s" % "above floor"
    out = ["", "UNDER UVICORN: python-socketio / fastio (CPU us per op; idle: bytes per client; latency: p99 us)",
           head]
    for sc in scenarios:
        p = asgi_figure(sc, agg.get(sc, {}).get("pysio_uvicorn"))
        fl = asgi_figure(sc, agg.get(sc, {}).get("uvicorn_floor"))
        if p is None:
            continue
        row = "  %-10s %10s %10s" % (sc, fmt(p, 4), fmt(fl, 4) if fl is not None else "n/a")
        for n in fastios:
            f = asgi_figure(sc, agg.get(sc, {}).get(n))
            row += " %18s %8s" % (fmt(f, 4), "%sx" % fmt(p / f, 3) if f else "n/a")
            if n == "fastio_uvicorn":
                own = "n/a"
                if f is not None and fl is not None and sc != "latency" and f > fl:
                    own = "%sx" % fmt((p - fl) / (f - fl), 3)
                row += " %12s" % own
        out.append(row)
    if any(agg.get(sc, {}).get("uvicorn_floor") for sc in scenarios):
        out.append("  floor = uvicorn_floor, a bare ASGI app answering the same messages; 'above floor' "
                   "compares what each server adds to it")
    return out


def report(agg: dict, scenarios: list[str], servers: list[str], env: dict, repeat: int) -> str:
    cols = servers + ([REFERENCE] if any(REFERENCE in agg.get(sc, {}) for sc in scenarios) else [])
    out = ["", "fastio benchmark  (%d round%s, medians)" % (repeat, "s" if repeat > 1 else "")]
    out += describe_env(env)
    out.append("")
    out.append("Scenarios:")
    for sc in scenarios:
        out.append("  %-12s %s" % (sc, SCENARIOS[sc]["text"]))
    out.append("")
    out += table("SERVER CPU PER OPERATION, microseconds (utime+stime of the server process; lower is better)",
                 scenarios, cols, agg, lambda s: s.get("server_cpu_us_per_op"),
                 "  fastio/uWS = fastio_native's figure / node_uws's (below 1: fastio needs less CPU)")
    out.append("")
    out += table("USER / SYSTEM split of that CPU, microseconds per operation (utime / stime [/ softirq])",
                 scenarios, cols, agg, lambda s: s.get("server_utime_us_per_op"),
                 "  fastio/uWS compares the user part only; softirq = the pinned server CPU's softirq time per "
                 "operation (loopback receive work, charged to no process; not in the figure above)",
                 cell=lambda s: "/".join(fmt(s.get(k)) for k in ("server_utime_us_per_op", "server_stime_us_per_op",
                                                                  "server_softirq_us_per_op")
                                         if k != "server_softirq_us_per_op" or s.get(k) is not None))
    out.append("")
    out += table("THROUGHPUT, operations per second of wall clock (higher is better)",
                 scenarios, cols, agg, lambda s: s.get("throughput"),
                 "  idle = connections/s while opening; fastio/uWS above 1: fastio is faster")
    lat = [sc for sc in scenarios if sc in LATENCY_SCENARIOS and sc in agg]
    if lat:
        out.append("")
        out.append("LATENCY p50 / p99, milliseconds (echo/ack: round trip; bcast: send -> the last receiver's "
                   "delivery; connect: one handshake)")

        def ms(s: dict, p: str) -> str:
            v = (s.get("latency_us") or {}).get(p)
            return fmt(v / 1000.0) if v is not None else "-"

        out += table("", lat, cols, agg, lambda s: (s.get("latency_us") or {}).get("p99"),
                     "  fastio/uWS compares p99; closed loops, so latency includes the queue of events in flight",
                     cell=lambda s: "%s/%s" % (ms(s, "p50"), ms(s, "p99")))[1:]
    if "idle" in scenarios and "idle" in agg:
        out.append("")
        out += table("IDLE CLIENTS: KiB of server RSS per connected client, and CPU us per client when all drop at once",
                     ["idle"], cols, agg,
                     lambda s: s["bytes_per_client"] / 1024 if s.get("bytes_per_client") is not None else None,
                     "  fastio/uWS compares memory",
                     cell=lambda s: "%s KiB, %s us" % (
                         fmt(s["bytes_per_client"] / 1024 if s.get("bytes_per_client") is not None else None),
                         fmt(s.get("server_cpu_us_per_disconnect"))))
    bc = [sc for sc in scenarios if SCENARIOS[sc]["gen"] == "broadcast" and sc in agg]
    if bc:
        out.append("")
        out += table("BROADCAST, whole emits per second / server CPU us per emit", bc, cols, agg,
                     lambda s: s.get("server_cpu_us_per_broadcast"), "  fastio/uWS compares CPU per emit",
                     cell=lambda s: "%s/s %s us" % (fmt(s.get("broadcasts_per_s")),
                                                    fmt(s.get("server_cpu_us_per_broadcast"))))
    out += asgi_section(agg, scenarios)
    errors = [(sc, srv, s["error"]) for sc in scenarios for srv, s in agg.get(sc, {}).items() if "error" in s]
    out.append("")
    out.append("Flags: G = the generator used >= 85% of its CPU (throughput is then the generator's limit, "
               "not the server's);")
    out.append("       ~ = other processes kept > 0.25 cores busy meanwhile (wall-clock figures disturbed); "
               "! = answers missing or errors.")
    if any(REFERENCE in agg.get(sc, {}) for sc in scenarios):
        out.append("%s is a trivial server answering the same frames without any Socket.IO logic; where it "
                   "saturated the generator (G) its throughput is the generator's ceiling." % REFERENCE)
    gen_limited = [(sc, srv) for sc in scenarios for srv, s in agg.get(sc, {}).items()
                   if srv != REFERENCE and s.get("gen_saturated")]
    ref_close = []
    for sc in scenarios:
        ref = agg.get(sc, {}).get(REFERENCE, {})
        # The reference marks the generator's ceiling only when it saturated the generator.
        if not ref.get("gen_saturated") or not ref.get("throughput"):
            continue
        for srv, s in agg.get(sc, {}).items():
            if srv != REFERENCE and s.get("throughput") and s["throughput"] >= 0.8 * ref["throughput"]:
                ref_close.append((sc, srv))
    if gen_limited or ref_close:
        out.append("Generator was the limit for: " + ", ".join(
            "%s/%s" % p for p in sorted(set(gen_limited) | set(ref_close))))
    else:
        out.append("The generator was not the limit in any measurement.")
    for sc, srv, err in errors:
        out.append("not measured: %s/%s: %s" % (sc, srv, err))
    return "\n".join(out)


# -- plots ---------------------------------------------------------------------------------------

COLORS = {"fastio_native": "#d62728", "fastio_uvicorn": "#ff9896", "fastio_uvicorn_ws": "#ff7f0e", "pysio_uvicorn": "#1f77b4",
          "pysio_aiohttp": "#aec7e8", "node_socketio": "#2ca02c", "node_uws": "#9467bd", REFERENCE: "#bbbbbb",
          "uvicorn_floor": "#dddddd"}


def plot(doc: dict, prefix: str) -> list[str]:
    """Write the PNG figures; returns their paths (none without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    agg = doc["summary"]
    scenarios = [sc for sc in doc["scenarios"] if sc in agg]
    servers = doc["servers"] + ([REFERENCE] if any(REFERENCE in agg[sc] for sc in scenarios) else [])
    title_env = "%s, %s CPUs | Python %s | git %s" % (doc["env"].get("cpu_model", "?"), doc["env"].get("cpus"),
                                                      doc["env"].get("python"), doc["env"].get("git_rev"))
    paths = []

    def bars(key: str, fname: str, title: str, ylabel, skip_ref: bool = False, log: bool = False,
             only=None) -> None:
        shown = [sc for sc in scenarios if only is None or sc in only]
        n = len(shown)
        if not n:
            return
        cols = min(4, n)
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
        for i, sc in enumerate(shown):
            ax = axes[i // cols][i % cols]
            names, vals, colors = [], [], []
            for srv in servers:
                if skip_ref and srv == REFERENCE:
                    continue
                s = agg[sc].get(srv)
                if s and s.get(key) is not None:
                    names.append(srv + ("*" if s.get("gen_saturated") else ""))
                    vals.append(s[key])
                    colors.append(COLORS.get(srv, "#777777"))
            ax.bar(range(len(vals)), vals, color=colors)
            ax.set_xticks(range(len(vals)))
            ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
            ax.set_title("%s (per %s)" % (sc, OP_UNIT.get(sc, "op")), fontsize=9)
            ax.set_ylabel(ylabel(sc) if callable(ylabel) else ylabel, fontsize=8)
            if log and vals and min(vals) > 0:
                ax.set_yscale("log")
            for x, v in zip(range(len(vals)), vals):
                ax.text(x, v, fmt(v), ha="center", va="bottom", fontsize=7)
        for j in range(n, rows * cols):
            axes[j // cols][j % cols].axis("off")
        fig.suptitle(title + "\n" + title_env, fontsize=9)
        fig.tight_layout()
        path = prefix + "-" + fname
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    # The latency scenario runs at a fixed offered rate, so its throughput says nothing.
    bars("throughput", "throughput.png", "Throughput (higher is better; * = generator-bound; "
         "raw_reference = generator ceiling where the generator saturated)",
         lambda sc: "%s per second" % OP_UNITS.get(sc, "operations"),
         only=[sc for sc in scenarios if sc != "latency"])
    bars("server_cpu_us_per_op", "cpu_per_op.png",
         "Server CPU time per operation, us (utime+stime; lower is better; log scale)",
         "us per %s" % "op", log=True)
    lat = agg.get("latency", {})
    if lat:
        pcts = ["p50", "p90", "p99", "p99.9"]
        names = [s for s in servers if s in lat and "latency_us" in lat[s]]
        fig, ax = plt.subplots(figsize=(8, 4.2))
        w = 0.8 / max(1, len(names))
        for k, srv in enumerate(names):
            vals = [lat[srv]["latency_us"].get(p) or 0 for p in pcts]
            ax.bar([i + k * w for i in range(len(pcts))], vals, w, label=srv, color=COLORS.get(srv, "#777777"))
        ax.set_xticks([i + w * (len(names) - 1) / 2 for i in range(len(pcts))])
        ax.set_xticklabels(pcts)
        ax.set_yscale("log")
        ax.set_ylabel("round trip, us (log)")
        rate = next((r.get("rate") for r in doc["runs"] if r.get("scenario") == "latency" and r.get("rate")), None)
        ax.set_title("Echo latency percentiles at %s events/s offered\n%s" % (fmt(rate), title_env), fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = prefix + "-latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    idle = agg.get("idle", {})
    if idle:
        names = [s for s in servers if s in idle and idle[s].get("bytes_per_client") is not None]
        fig, ax = plt.subplots(figsize=(7, 3.8))
        vals = [idle[s]["bytes_per_client"] / 1024 for s in names]
        ax.bar(range(len(names)), vals, color=[COLORS.get(s, "#777777") for s in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
        for x, v in enumerate(vals):
            ax.text(x, v, "%.1f" % v, ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("KiB of server RSS per client")
        ax.set_title("Idle memory per connected client (lower is better)\n" + title_env, fontsize=9)
        fig.tight_layout()
        path = prefix + "-memory.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_elsewhere(json_path: str) -> list[str]:
    """Plot with the virtualenv's interpreter when this one has no matplotlib."""
    if PY == sys.executable:
        return []
    p = subprocess.run([PY, os.path.abspath(__file__), "--plot", json_path], capture_output=True,
                       text=True, timeout=120)
    return [line for line in p.stdout.splitlines() if line.endswith(".png")]


# -- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny counts: a smoke test of a few seconds per server")
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                   help="comma-separated, from: %s, or all (default: %s)" % (", ".join(SERVERS), ",".join(DEFAULT_SERVERS)))
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help="comma-separated, from: %s, or all (default: %s)" % (", ".join(SCENARIOS), ",".join(DEFAULT_SCENARIOS)))
    p.add_argument("--repeat", type=int, default=1, help="interleaved rounds; figures are medians")
    p.add_argument("--duration", type=float, default=None, help="measured seconds per run (default 3; quick 0.3)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first (default 1; quick 0.1)")
    p.add_argument("--idle-clients", type=int, default=None, help="clients of the idle scenario (default 5000)")
    p.add_argument("--rate", type=float, default=None, help="offered echo events/s of the latency scenario (default 2000)")
    p.add_argument("--reference", action="store_true",
                   help="also run raw_reference, the generator's ceiling (a trivial server)")
    p.add_argument("--no-reference", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--wait-quiet", type=float, default=None,
                   help="before each run wait up to this many seconds for the machine to go idle (default 2; quick 0)")
    p.add_argument("--ready-timeout", type=float, default=60.0)
    p.add_argument("--out", default=None, help="JSON path (default bench/results/bench-<stamp>.json)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--plot", metavar="JSON", help="only draw the figures of an earlier results file")
    p.add_argument("--report", metavar="JSON", help="only print the tables of an earlier results file")
    a = p.parse_args(argv)
    if a.wait_quiet is None:
        a.wait_quiet = 0.0 if a.quick else 2.0
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.report:
        with open(a.report) as f:
            doc = json.load(f)
        print(report(doc["summary"], doc["scenarios"], [s for s in doc["servers"] if s in doc.get("labels", doc["servers"])],
                     doc["env"], doc["repeat"]))
        return 0
    if a.plot:
        with open(a.plot) as f:
            doc = json.load(f)
        for path in plot(doc, a.plot[:-5] if a.plot.endswith(".json") else a.plot):
            print(path)
        return 0
    servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    if servers == ["all"]:
        servers = list(SERVERS)
    if scenarios == ["all"]:
        scenarios = list(SCENARIOS)
    unknown = [s for s in servers if s not in SERVERS and s != REFERENCE] + [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        print("unknown server or scenario: %s" % ", ".join(unknown), file=sys.stderr)
        return 2
    servers = [s for s in servers if s != REFERENCE]
    pinned = have_taskset() and not a.no_pin
    if pinned:
        try:
            os.sched_setaffinity(0, {1})  # keep this runner off the server's CPU
        except OSError:
            pass

    notes = []
    specs = {}
    for name in servers:
        spec = SERVERS[name]
        if "check" in spec:
            rc = subprocess.run(spec["check"], cwd=ROOT, capture_output=True, timeout=60).returncode
            if rc == SKIP_STATUS:
                notes.append("%s skipped: fastio.ASGIApp does not exist in this build" % name)
                continue
        specs[name] = spec
    if a.reference and not a.no_reference:
        specs[REFERENCE] = REFERENCE_SPEC
    for name, package in (("node_socketio", "socket.io"), ("node_uws", "@trufflesuite/uws-js-unofficial")):
        if name in specs and not os.path.exists(os.path.join(ROOT, "node_modules", package)):
            notes.append("%s skipped: run `npm ci` in %s first" % (name, ROOT))
            del specs[name]
    env = environment(pinned)
    os.makedirs(RESULTS, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = a.out or os.path.join(RESULTS, "bench-%s.json" % stamp)
    log_path = json_path[:-5] + "-servers.log" if json_path.endswith(".json") else json_path + ".log"

    for line in describe_env(env):
        print(line)
    for n in notes:
        print("note: " + n)
    names = list(specs)
    total = len(names) * len(scenarios) * a.repeat
    print("%d runs: %s x %s x %d round(s)" % (total, ",".join(names), ",".join(scenarios), a.repeat), flush=True)

    runs: list[dict] = []
    t_start = time.monotonic()
    k = 0
    for rnd in range(a.repeat):
        for sc in scenarios:
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for name in order:
                k += 1
                t0 = time.monotonic()
                res = run_one(name, specs[name], sc, a, pinned, log_path)
                res.update(server=name, scenario=sc, round=rnd)
                runs.append(res)
                if "error" in res or "skipped" in res:
                    status = res.get("error") or res.get("skipped")
                else:
                    status = "%s/s, %s us CPU/op%s" % (fmt(res.get("throughput")), fmt(res.get("server_cpu_us_per_op")),
                                                       " [gen-bound]" if res.get("gen_saturated") else "")
                print("[%d/%d] %-9s %-15s %5.1fs  %s" % (k, total, sc, name, time.monotonic() - t0, status), flush=True)

    agg = aggregate(runs)
    doc = {"env": env, "servers": servers, "scenarios": scenarios, "repeat": a.repeat, "quick": a.quick,
           "notes": notes, "runs": runs, "summary": agg, "elapsed_s": time.monotonic() - t_start,
           "labels": {n: specs.get(n, SERVERS.get(n, {})).get("label", n) for n in names}}
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1)
    shown = [s for s in servers if s in specs]
    print(report(agg, scenarios, shown, env, a.repeat))
    for n in notes:
        print("note: " + n)
    print("\nraw results: %s" % os.path.relpath(json_path, os.getcwd()))
    if not a.no_plots:
        paths = plot(doc, json_path[:-5]) or plot_elsewhere(json_path)
        for p in paths:
            print("figure: %s" % os.path.relpath(p, os.getcwd()))
    failed = [r for r in runs if "error" in r]
    return 1 if failed and len(failed) == len(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
