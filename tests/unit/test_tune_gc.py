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
    import gc

    # a fresh interpreter's thresholds (they differ between Python versions) stay as they are
    default = subprocess.run([sys.executable, "-c", "import gc; print(gc.get_threshold())"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    assert run({"FASTIO_GC_TUNING": "0"}) == "False %s False" % default
    assert gc.get_threshold()  # this process is untouched by the subprocesses
