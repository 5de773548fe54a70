"""fastio.tune_malloc: applied once per process on glibc, and left alone when asked."""
import os
import platform
import subprocess
import sys

import pytest

CODE = "import fastio; print(fastio.tune_malloc(), fastio.tune_malloc())"


def run(env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTIO_MALLOC_TUNING", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_on_glibc_and_only_once():
    assert run({}) == ["True", "True"]


@pytest.mark.parametrize("env", [{"FASTIO_MALLOC_TUNING": "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"MALLOC_MMAP_THRESHOLD_": "131072"}])
def test_left_alone_when_the_user_chose(env):
    assert run(env) == ["False", "False"]
