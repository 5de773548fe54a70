"""The cluster benchmark runs end to end on tiny counts (no timing is asserted): every setup,
both variants, a row each, and the ratio rows."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUPS = ("fastio-1", "pysio-1", "node-1", "fastio-noderedis-2", "fastio-redis-2", "pysio-redis-2",
          "node-redisadapter-2")


@pytest.mark.timeout(150)
def test_cluster_bench_has_every_row(tmp_path):
    out = tmp_path / "cluster.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "cluster_bench.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = {tuple(line.split()[:2]): line for line in proc.stdout.splitlines()
            if line.split()[:1] in (["one"], ["pipe8"]) and len(line.split()) > 2 and line.split()[1] in SETUPS}
    assert set(rows) == {(v, s) for v in ("one", "pipe8") for s in SETUPS}
    assert not any("ERROR" in line or "NOT DRAINED" in line for line in rows.values())
    doc = json.loads(out.read_text())
    for setup in SETUPS:
        for variant in ("one", "pipe8"):
            r = doc["results"][setup][variant]
            assert r["drained"] and r["broadcasts_per_s"] > 0 and r["server_cpu_us_per_broadcast"] > 0, (setup, variant)
            assert r["conns"] == 10 * (2 if setup.endswith("-2") else 1)
    ratios = [line for line in proc.stdout.splitlines() if " / " in line and "fastio/" in line]
    assert len(ratios) == 8
    for line in ratios:
        float(line.split()[-1]), float(line.split()[-2])
