"""Process handling shared by the benchmark runners (sync_bench.py, workers_bench.py)."""
from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """Stop a server process: SIGTERM, then SIGKILL when it has not exited after ``timeout``
    seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
