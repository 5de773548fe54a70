"""The benchmark harness runs end to end on a tiny configuration (no timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_harness_runs_echo_and_broadcast_quickly(tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--no-plots", "--no-pin",
         "--servers", "fastio_native", "--scenarios", "echo,broadcast", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "SERVER CPU PER OPERATION" in proc.stdout
    result = json.loads(out.read_text())
    for scenario in ("echo", "broadcast"):
        cell = result["summary"][scenario]["fastio_native"]
        assert cell["ok"] == cell["runs"] >= 1
        assert cell["throughput"] > 0
        assert cell["server_cpu_us_per_op"] > 0


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
