"""fastio with 1 and with N worker processes (``fastio run --workers N``): throughput and the
server's CPU per operation, on the generator of ``loadgen.py``.

Scenarios (``loadgen.py``'s, over raw WebSocket):
  echo       ``--conns`` clients, ``--window`` echo events in flight each; the server answers each
             event with an emit to the sender and an ack (two messages per round trip)
  broadcast  ``--broadcast-conns`` clients; one keeps ``--window`` broadcasts in flight; each
             broadcast is one emit to every client. With workers the clients are spread over
             them, so every broadcast crosses the relay once per other worker.
  connect    (``--scenarios connect``) up to ``--clients`` WebSocket handshakes, 64 at a time:
             with workers, every connection passes through the master first.

The server runs ``bench/servers/fastio_native.py``'s ``sio`` through the ``fastio`` command:
``--workers 1`` is the plain single-process server. Its CPU time is the sum over the master and
every worker (``/proc/PID/stat``); the generator's own CPU is measured too. The machine split
is printed beside the figures: by default the generator is pinned to the last CPU and the
single-process server to the first, while fastio pins worker ``i`` to CPU ``i`` (so on two cores,
worker 1 shares its CPU with the generator).

    .venv/bin/python bench/workers_bench.py                       # 1 and 2 workers, both scenarios
    .venv/bin/python bench/workers_bench.py --workers 1,2 --scenarios echo --duration 5
    .venv/bin/python bench/workers_bench.py --quick               # a few seconds, smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procs import stop_process  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from fastio import loadgen  # noqa: E402

ROOT = HERE.parent
APP = "bench.servers.fastio_native:sio"


class ClusterProbe(loadgen.ServerProbe):
    """CPU time and RSS summed over the master and its worker processes (``ServerProbe`` of
    several PIDs), keeping the master's own on-CPU time at each reading."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(pids)
        self.master = loadgen.ServerProbe(pids[0])
        self.master_readings: list[float] = []  # the first PID's on-CPU time at each reading

    def sched_cpu(self) -> float:
        self.master_readings.append(self.master.sched_cpu())
        return super().sched_cpu()


def start_server(workers: int, server_cpus: list[int] | None) -> tuple[subprocess.Popen, int, list[int]]:
    """``fastio run`` on port 0; returns the process, the port and the PIDs to measure."""
    python = ROOT / ".venv" / "bin" / "python"
    exe = str(python) if python.exists() else sys.executable
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    argv = [exe, "-m", "fastio.cli", "run", APP, "--port", "0", "--workers", str(workers),
            "--log-level", "error"]
    preexec = None
    if server_cpus is not None:
        def preexec() -> None:
            os.sched_setaffinity(0, server_cpus)
    proc = subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, text=True,
                            preexec_fn=preexec)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    port = 0
    pids = [proc.pid]
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the server exited (status %s)" % proc.wait())
        m = re.match(r"fastio: \d+ workers \(pids ([\d ]+)\)", line)
        if m:
            pids += [int(p) for p in m.group(1).split()]
        m = re.search(r"fastio serving on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if not port:
        proc.kill()
        raise RuntimeError("the server did not start")
    return proc, port, pids


def measure(scenario: str, workers: int, a: argparse.Namespace) -> dict:
    ncpu = os.cpu_count() or 1
    gen_cpu = [ncpu - 1] if a.pin and ncpu > 1 else None
    # The server does not inherit the generator's pinning: one process on CPU 0, or every CPU
    # for the workers (fastio pins each to its own).
    server_cpus = [0] if a.pin and ncpu > 1 and workers == 1 else list(range(ncpu))
    proc, port, pids = start_server(workers, server_cpus)
    try:
        if scenario == "echo":
            sizes = dict(conns=a.conns, window=a.window)
        elif scenario == "connect":
            sizes = dict(clients=a.clients)
        else:
            sizes = dict(conns=a.broadcast_conns, window=a.window)
        opts = loadgen.Options(scenario, loadgen.Target("127.0.0.1", port), server_pid=pids,
                               duration=a.duration, warmup=a.warmup, quick=a.quick, **sizes)
        if gen_cpu is not None:
            os.sched_setaffinity(0, gen_cpu)
        probe = ClusterProbe(pids)
        out = loadgen.run(opts, probe=probe)
        if workers > 1 and len(probe.master_readings) >= 2:
            # loadgen reads the CPU at the start and the end of the measured phase
            out["master_cpu_s"] = probe.master_readings[-1] - probe.master_readings[-2]
    finally:
        stop_process(proc, 20)
    out["workers"] = workers
    out["server_pids"] = pids
    out["server_cpus"] = "worker i on CPU i" if workers > 1 else server_cpus
    return out


def describe_machine() -> str:
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return "%s, %d CPUs (%s), Python %s, git %s, load average %s" % (
        platform.platform(), os.cpu_count() or 0, model, platform.python_version(), rev,
        " ".join("%.2f" % x for x in os.getloadavg()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    p.add_argument("--scenarios", default="echo,broadcast")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--conns", type=int, default=100, help="echo: clients")
    p.add_argument("--broadcast-conns", type=int, default=1000, help="broadcast: clients")
    p.add_argument("--window", type=int, default=8, help="messages in flight per sender")
    p.add_argument("--clients", type=int, default=5000, help="connect: handshakes")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="pin neither generator nor server")
    p.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    p.add_argument("--out", default=None, help="also write every result as JSON lines here")
    a = p.parse_args(argv)
    if a.quick:
        a.duration, a.warmup, a.conns, a.broadcast_conns, a.clients = 0.5, 0.2, 10, 50, 200
    print(describe_machine())
    ncpu = os.cpu_count() or 1
    if a.pin and ncpu > 1:
        print("split: generator on CPU %d; 1 worker: server on CPU 0; N workers: worker i on CPU i "
              "(the master unpinned)" % (ncpu - 1))
    results = []
    for scenario in a.scenarios.split(","):
        for workers in [int(w) for w in a.workers.split(",")]:
            r = measure(scenario, workers, a)
            results.append(r)
            if "error" in r:
                print("%-9s workers=%d  error: %s" % (scenario, workers, r["error"]))
                continue
            per = ("server_cpu_us_per_broadcast" if scenario == "broadcast" else "server_cpu_us_per_op")
            master = ""
            if workers > 1 and r.get("master_cpu_s") is not None and r["ops"]:
                # The master's share: what routing and relaying cost.
                r["master_cpu_us_per_op"] = r["master_cpu_s"] / r["ops"] * 1e6
                master = "  (master %.2f us/op)" % r["master_cpu_us_per_op"]
            print("%-9s workers=%d  %10.0f %s/s  server CPU %6.2f us/%s (%.2f cores)  generator %.2f cores  "
                  "other load %.2f cores%s" % (
                      scenario, workers, r["throughput"], r["unit"], r[per] or 0.0,
                      "broadcast" if scenario == "broadcast" else "op", r["server_util"], r["gen_util"],
                      r["other_load"], "  GENERATOR SATURATED" if r["gen_saturated"] else "") + master)
    if a.out:
        with open(a.out, "w") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
