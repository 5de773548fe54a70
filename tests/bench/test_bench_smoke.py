"""The benchmark harness runs end to end on a tiny configuration (no timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_harness_compares_fastio_with_socketio_on_uwebsockets(tmp_path):
    """fastio_native and node_uws side by side, one event in flight and a broadcast to receivers."""
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-plots", "--no-pin",
         "--servers", "fastio_native,node_uws", "--scenarios", "echo,bcast1000", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "SERVER CPU PER OPERATION" in proc.stdout
    assert "USER / SYSTEM" in proc.stdout
    result = json.loads(out.read_text())
    for scenario in ("echo", "bcast1000"):
        for server in ("fastio_native", "node_uws"):
            cell = result["summary"][scenario][server]
            assert cell["ok"] == cell["runs"] >= 1, (scenario, server, cell)
            assert cell["throughput"] > 0
            assert cell["server_cpu_us_per_op"] > 0
            parts = cell["server_utime_us_per_op"] + cell["server_stime_us_per_op"]
            assert parts == pytest.approx(cell["server_cpu_us_per_op"])
            assert cell["latency_us"]["p50"] <= cell["latency_us"]["p99"]
    runs = {(r["scenario"], r["server"]): r for r in result["runs"]}
    assert runs["echo", "fastio_native"]["window"] == 1
    assert runs["echo", "fastio_native"]["pipeline"] is False
    # The table's last column is fastio / uWS, one ratio per scenario row.
    header = next(line for line in proc.stdout.splitlines() if line.startswith("scenario") and "fastio/uWS" in line)
    assert header.split()[-3:] == ["fastio_native", "node_uws", "fastio/uWS"]
    echo_row = next(line for line in proc.stdout.splitlines() if line.startswith("echo "))
    fastio = result["summary"]["echo"]["fastio_native"]["server_cpu_us_per_op"]
    uws = result["summary"]["echo"]["node_uws"]["server_cpu_us_per_op"]
    assert echo_row.split()[-1] == "%.2f" % (fastio / uws)


@pytest.mark.timeout(180)
def test_harness_compares_the_asgi_servers_with_uvicorns_floor(tmp_path):
    out = tmp_path / "asgi.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-plots", "--no-pin", "--no-reference",
         "--servers", "fastio_uvicorn,pysio_uvicorn,uvicorn_floor", "--scenarios", "ack,binary", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "UNDER UVICORN" in proc.stdout
    summary = json.loads(out.read_text())["summary"]
    for scenario in ("ack", "binary"):
        for server in ("fastio_uvicorn", "pysio_uvicorn", "uvicorn_floor"):
            cell = summary[scenario][server]
            assert cell["ok"] == cell["runs"] >= 1, (scenario, server, cell)
            assert cell["server_cpu_us_per_op"] > 0


@pytest.mark.timeout(180)
def test_workers_bench_measures_one_and_two_workers(tmp_path):
    """bench/workers_bench.py: the same load on 1 and on 2 worker processes, the CPU summed over
    the master and its workers (the master's own share kept apart)."""
    out = tmp_path / "workers.jsonl"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "workers_bench.py"), "--quick", "--no-pin",
         "--workers", "1,2", "--scenarios", "echo", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["scenario"], r["workers"]) for r in rows] == [("echo", 1), ("echo", 2)]
    for r in rows:
        assert r["ops"] > 0 and r["errors"] == 0 and r["server_cpu_s"] > 0
    one, two = rows
    assert len(one["server_pids"]) == 1 and len(two["server_pids"]) == 3  # master + 2 workers
    assert "master_cpu_s" in two
