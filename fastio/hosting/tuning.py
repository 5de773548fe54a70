"""Process tuning for servers: glibc's heap trimming and Python's cyclic garbage collector."""
from __future__ import annotations

import os
import sys

__all__ = ["raise_fd_limit", "tune_gc", "tune_malloc"]

_malloc_tuned: bool | None = None


def tune_malloc(trim_threshold: int = 32 << 20, mmap_threshold: int = 4 << 20) -> bool:
    """Keep freed heap memory mapped instead of returning it to the kernel at once (glibc).

    With glibc's defaults, freeing a block at the top of the heap shrinks the heap as soon as
    128 KiB are free there, and the next large message maps those pages again: every 64 KiB
    payload then costs its pages' faults (more than half of the server's CPU time for 64 KiB
    binary messages).  This raises the trim threshold to ``trim_threshold`` and the size served
    by ``mmap`` to ``mmap_threshold``; the price is up to ``trim_threshold`` bytes kept mapped.

    fastio's own servers (``run``, ``serve``, ``ASGIApp.uvicorn_ws``) call it once; set
    ``FASTIO_MALLOC_TUNING=0``, or glibc's ``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_``,
    to keep your own settings.  Returns True when the settings were applied (glibc only).
    """
    global _malloc_tuned
    if _malloc_tuned is not None:
        return _malloc_tuned
    _malloc_tuned = False
    env = os.environ
    if (env.get("FASTIO_MALLOC_TUNING", "1") == "0" or "MALLOC_TRIM_THRESHOLD_" in env
            or "MALLOC_MMAP_THRESHOLD_" in env or not sys.platform.startswith("linux")):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    _malloc_tuned = bool(mallopt(m_trim_threshold, trim_threshold)) and bool(mallopt(m_mmap_threshold, mmap_threshold))
    return _malloc_tuned


def tune_gc(threshold0: int = 7000, threshold1: int = 10, threshold2: int = 100, freeze: bool = True) -> bool:
    """Make Python's cyclic garbage collector run less often in a server process.

    Each connection allocates many container objects, and with the default thresholds
    (700, 10, 10) the collector runs every few connections and rescans what they keep alive.
    This freezes what exists now (``gc.freeze()``: start-up objects are never scanned again)
    and raises the thresholds; cycles are still collected.  Measured with bench/loadgen.py: full
    handshakes cost 46 -> 41 us on the native server, and 420 -> 270 us for fastio.ASGIApp under
    uvicorn, where most of the objects are uvicorn's.

    ``fastio.run`` calls it once the server is listening; call it yourself at start-up under
    another server (uvicorn: in a lifespan startup hook).  ``FASTIO_GC_TUNING=0`` disables it.
    Returns True when applied.
    """
    import gc

    if os.environ.get("FASTIO_GC_TUNING", "1") == "0":
        return False
    if freeze:
        gc.freeze()
    gc.set_threshold(threshold0, threshold1, threshold2)
    return True


def raise_fd_limit(wanted: int | None = None) -> int:
    """Raise this process's soft limit on open files towards its hard limit.

    Every connection is a file descriptor, and many systems start processes with a soft limit
    of 1,024.  This raises the soft limit to ``wanted`` (default: the hard limit), never lowers
    it, and returns the soft limit in force afterwards (-1 where there are no such limits).
    ``fastio.run`` calls it once; ``FASTIO_FD_TUNING=0`` disables it.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.environ.get("FASTIO_FD_TUNING", "1") == "0":
        return soft
    target = hard if wanted is None else wanted
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if target == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and target > soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
