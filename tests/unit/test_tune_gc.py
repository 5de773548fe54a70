"""fastio.tune_gc: raises the collector's thresholds and freezes start-up objects, unless disabled."""
import os
import subprocess
import sys

CODE = ("import gc, fastio; before = gc.get_freeze_count(); ok = fastio.tune_gc();"
        "print(ok, gc.get_threshold(), gc.get_freeze_count() > before)")


def run(env_extra):
    env = {k: v for k, v in os.environ.items() if k != "FASTIO_GC_TUNING"}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_thresholds_raised_and_startup_objects_frozen():
    assert run({}) == "True (7000, 10, 100) True"


def test_disabled_by_environment():
    assert run({"FASTIO_GC_TUNING": "0"}) == "False (700, 10, 10) False"
