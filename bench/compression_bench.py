"""What permessage-deflate costs fastio's native server: CPU per message and per broadcast,
bytes saved, and memory.

    python bench/compression_bench.py            # about 20 s
    python bench/compression_bench.py --quick

Cases (best of several repeats, microseconds per operation):

* deflate: one outgoing frame built by ``wsframe.deflate_frame`` (C zlib, one process-wide
  stream reset per message) against ``build_frame`` (no compression) and against Python's
  ``zlib.compressobj`` made per message (what a no-context-takeover sender does without a
  reusable stream), for Socket.IO-like JSON of 1 KiB, 16 KiB and 256 KiB; with the wire size.
* inflate: ``FrameReader(compression=True).feed`` of a masked compressed client frame against
  the same frame uncompressed.
* fan-out: one broadcast of a 16 KiB event to 1,000 WebSocket connections (fake transports
  counting writes) with permessage-deflate negotiated and without: the Encoded is deflated once
  for all of them.
* memory: RSS growth from creating the deflate streams of every window size (process-wide,
  never per connection).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fastio._core import wsframe  # noqa: E402
from fastio._core.wsframe import OP_TEXT, FrameReader, build_frame, deflate_frame  # noqa: E402
from core_fanout import broadcaster, fake_room, timeit  # noqa: E402

FANOUT = 1000
KEY = b"\x12\x34\x56\x78"


def payload(size: int) -> bytes:
    """Socket.IO-like JSON: an event with a list of small records, cut to ``size`` bytes."""
    rows = [{"id": i, "user": "user%d" % (i % 97), "text": "message number %d" % i, "ok": i % 3 == 0}
            for i in range(size // 40 + 10)]
    return (b'42["update",' + json.dumps(rows).encode())[:size]


def python_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def masked(data: bytes, opcode: int, rsv1: bool) -> bytes:
    frame = bytearray(build_frame(opcode, data, mask_key=KEY))
    if rsv1:
        frame[0] |= 0x40
    return bytes(frame)


def fanout(compressed: bool, size: int):
    table, loop, transports = fake_room(FANOUT, deflate_wbits=15 if compressed else 0)
    rows = json.loads(payload(size * 2)[len(b'42["update",'):].rsplit(b"},", 1)[0] + b"}]")
    while len(json.dumps(rows)) > size:
        rows.pop()
    one = broadcaster(table, loop, ["update", rows])

    def wire_bytes():
        for t in transports:
            t.written = 0
        one()
        return sum(t.written for t in transports)

    return one, wire_bytes


def malloc_bytes() -> int | None:
    """Bytes the C allocator has handed out (glibc's mallinfo2), None where unavailable."""
    try:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                "fordblks", "keepcost")]

        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)
    except (OSError, AttributeError):
        return None


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def git_revision() -> str:
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    print("Python %s on %s, %d CPUs, zlib %s, fastio %s, load average %s" % (
        platform.python_version(), platform.machine(), os.cpu_count() or 0, zlib.ZLIB_RUNTIME_VERSION,
        git_revision(), " ".join("%.1f" % x for x in os.getloadavg())))

    before, before_rss = malloc_bytes(), rss_kib()
    deflate_frame(OP_TEXT, b"x" * 2000, 15)
    wsframe.inflate_payload(python_deflate(b"y" * 2000))
    after = malloc_bytes()
    for wbits in range(9, 15):
        deflate_frame(OP_TEXT, b"x" * 2000, wbits)
    every = malloc_bytes()
    if before is not None and after is not None and every is not None:
        print("\nmemory (malloc'd): the 2**15 deflate stream and the inflate stream %d KiB; all seven "
              "window sizes %d KiB; process-wide, 0 per connection" % (
                  (after - before) // 1024, (every - before) // 1024))
    print("memory (RSS growth, pages touched): %d KiB" % (rss_kib() - before_rss))

    print("\n%-28s %10s %10s %10s %9s" % ("outgoing frame", "plain us", "fastio us", "py-zlib us", "wire"))
    for size in (1024, 16 * 1024, 256 * 1024):
        data = payload(size)
        n = max(3, int(scale * 200_000 / size * 20))
        plain = timeit(lambda: build_frame(OP_TEXT, data), n, 5)
        dz = timeit(lambda: deflate_frame(OP_TEXT, data), n, 5)
        py = timeit(lambda: python_deflate(data), n, 5)
        wire = len(deflate_frame(OP_TEXT, data))
        print("%-28s %10.2f %10.2f %10.2f %4.1f%% of %d" % (
            "JSON %d B" % size, plain * 1e6, dz * 1e6, py * 1e6, 100.0 * wire / size, size))

    print("\n%-28s %10s %10s" % ("incoming frame (reader)", "plain us", "deflated us"))
    for size in (1024, 16 * 1024, 256 * 1024):
        data = payload(size)
        plain_f = masked(data, OP_TEXT, False)
        dz_f = masked(python_deflate(data), OP_TEXT, True)
        r1 = FrameReader(1_000_000, True)
        r2 = FrameReader(1_000_000, True, compression=True)
        assert r2.feed(dz_f) == [(OP_TEXT, data)]
        n = max(3, int(scale * 200_000 / size * 20))
        print("%-28s %10.2f %10.2f" % ("JSON %d B" % size, timeit(lambda: r1.feed(plain_f), n, 5) * 1e6,
                                         timeit(lambda: r2.feed(dz_f), n, 5) * 1e6))

    print("\nfan-out: one 16 KiB event to %d connections" % FANOUT)
    for compressed in (False, True):
        one, wire_bytes = fanout(compressed, 16 * 1024)
        per = timeit(one, max(3, int(scale * 50)), 5)
        print("  %-26s %10.1f us per broadcast, %8d bytes written in all" % (
            "permessage-deflate" if compressed else "uncompressed", per * 1e6, wire_bytes()))


if __name__ == "__main__":
    main()
