"""fastio's Python modules and the compiled modules' stubs type-check with mypy."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="checked once, in the main environment (3.11)")
def test_mypy_finds_no_errors():
    pytest.importorskip("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy", "fastio", "--ignore-missing-imports",
                          "--no-incremental", "--cache-dir", "/dev/null"],
                         cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
