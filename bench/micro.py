"""Micro-benchmarks of fastio's compiled core against the pure-Python equivalents.

    python bench/micro.py            # everything, about 40 s
    python bench/micro.py --quick    # fewer iterations
    python bench/micro.py --only encode,fanout --json out.json

Each case is timed in a tight loop (best of several repeats, nanoseconds per operation):

* packet encode / decode: ``fastio._core.packet.encode`` and ``Decoder().feed_text`` against
  python-socketio's ``socketio.packet.Packet`` (stdlib json, its default, and with orjson
  plugged in, to separate codec cost from JSON cost); a small event and one with a 64 KiB
  binary attachment.
* frame build / parse: ``fastio._core.wsframe.build_frame`` and ``FrameReader().feed`` against
  wsproto's ``FrameProtocol`` (the pure-Python framing under uvicorn when websockets is absent).
* fan-out: one emit to 1,000 fake connections through fastio's ``RoomTable.fanout`` and write
  coalescer, against python-socketio's ``AsyncManager.emit`` with a no-op send (a lower bound of
  its real cost, which also queues the packet and wakes a writer task per client).
  ``fanout_msgs``: the same broadcast, fastio only, to connections carried by framework
  WebSockets (whole messages instead of frames, as under ASGI and aiohttp).

Cases whose code is missing or has changed are reported as skipped, not fatal.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from core_fanout import broadcaster, fake_room, timeit  # noqa: E402

SMALL = ["echo", {"n": 1, "msg": "hello, world"}]
BLOB = os.urandom(64 * 1024)
SMALL_TEXT = b'2["echo",{"n":1,"msg":"hello, world"}]'
BIN_TEXT = b'51-["echo",{"_placeholder":true,"num":0}]'
MASK = b"\x12\x34\x56\x78"


def masked_frame(payload: bytes, opcode: int = 1) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    k = int.from_bytes((MASK * ((n + 3) // 4))[:n], "little")
    body = (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little") if n else b""
    return head + MASK + body


# -- cases: each returns {impl: callable} ---------------------------------------------------------

def _pysio_packet():
    from socketio import packet as sp
    return sp


class _OrjsonForPacket:
    """A json-module look-alike over orjson for python-socketio's Packet."""

    def __init__(self) -> None:
        import orjson
        self._o = orjson

    def dumps(self, obj, **kwargs):
        return self._o.dumps(obj).decode()

    def loads(self, s, **kwargs):
        return self._o.loads(s)


def _pysio_variants():
    sp = _pysio_packet()
    out = {"python-socketio": sp.Packet}
    try:
        class OrjsonPacket(sp.Packet):
            json = _OrjsonForPacket()
        out["python-socketio+orjson"] = OrjsonPacket
    except ImportError:
        pass
    return sp, out


def case_encode():
    from fastio._core.packet import EVENT, encode
    sp, variants = _pysio_variants()
    impls = {"fastio": lambda: encode(EVENT, "/", SMALL).message}
    for name, P in variants.items():
        impls[name] = lambda P=P: P(sp.EVENT, data=SMALL).encode()
    return impls


def case_decode():
    from fastio._core.packet import Decoder
    sp, variants = _pysio_variants()
    d = Decoder()
    impls = {"fastio": lambda: d.feed_text(SMALL_TEXT)}
    text = SMALL_TEXT.decode()
    for name, P in variants.items():
        impls[name] = lambda P=P: P(encoded_packet=text)
    return impls


def case_encode_binary():
    from fastio._core.packet import EVENT, encode
    sp = _pysio_packet()
    return {
        "fastio": lambda: encode(EVENT, "/", ["echo", BLOB]),
        "python-socketio": lambda: sp.Packet(sp.EVENT, data=["echo", BLOB]).encode(),
    }


def case_frames_binary():
    """Encode and frame for WebSocket: the bytes a recipient is sent."""
    from fastio._core.packet import EVENT, encode
    from wsproto.frame_protocol import FrameProtocol
    sp = _pysio_packet()
    fp = FrameProtocol(client=False, extensions=[])

    def pysio_wsproto():
        parts = sp.Packet(sp.EVENT, data=["echo", BLOB]).encode()
        return [fp.send_data("4" + parts[0])] + [fp.send_data(b) for b in parts[1:]]

    return {
        "fastio": lambda: encode(EVENT, "/", ["echo", BLOB]).ws_frames(),
        "python-socketio+wsproto": pysio_wsproto,
    }


def case_decode_binary():
    from fastio._core.packet import Decoder
    sp = _pysio_packet()
    d = Decoder(10, 1_000_000)
    text = BIN_TEXT.decode()

    def fastio_one():
        d.feed_text(BIN_TEXT)
        return d.feed_binary(BLOB)

    def pysio_one():
        p = sp.Packet(encoded_packet=text)
        p.add_attachment(BLOB)
        return p

    return {"fastio": fastio_one, "python-socketio": pysio_one}


def case_frame_build():
    from fastio._core.wsframe import OP_TEXT, build_frame
    from wsproto.frame_protocol import FrameProtocol
    payload = b"4" + SMALL_TEXT
    text = payload.decode()
    fp = FrameProtocol(client=False, extensions=[])
    return {"fastio": lambda: build_frame(OP_TEXT, payload), "wsproto": lambda: fp.send_data(text)}


def _wsproto_parse(chunk: bytes):
    from wsproto.frame_protocol import FrameProtocol
    fp = FrameProtocol(client=False, extensions=[])

    def run():
        fp.receive_bytes(chunk)
        return list(fp.received_frames())
    return run


def case_frame_parse():
    """100 small masked text frames in one chunk; the figure is per chunk (divide by 100 per frame)."""
    from fastio._core.wsframe import FrameReader
    chunk = masked_frame(b"4" + SMALL_TEXT) * 100
    r = FrameReader(1_000_000, True)
    return {"fastio": lambda: r.feed(chunk), "wsproto": _wsproto_parse(chunk)}


def case_frame_parse_64k():
    from fastio._core.wsframe import FrameReader
    chunk = masked_frame(BLOB, opcode=2)
    r = FrameReader(1_000_000, True)
    return {"fastio": lambda: r.feed(chunk), "wsproto": _wsproto_parse(chunk)}


FANOUT = 1000


def fastio_fanout(messages: bool):
    """fastio's side of a fan-out: one emit to FANOUT connections, each carried by a fake
    WebSocket taking frames (the native server) or whole messages (``messages``: a framework's)."""
    table, loop, _ = fake_room(FANOUT, messages=messages)
    return broadcaster(table, loop, ["broadcast", {"n": 1, "msg": "hello, world"}])


def case_fanout_messages():
    """The same broadcast to connections on framework WebSockets (ASGI, aiohttp)."""
    return {"fastio": fastio_fanout(True)}


def case_fanout():
    """One broadcast to 1,000 connected clients (encode once, hand to each, write)."""
    impls = {}
    data = ["broadcast", {"n": 1, "msg": "hello, world"}]
    impls["fastio"] = fastio_fanout(False)

    try:
        import socketio
        from socketio import packet as sp

        class FakeEngine:
            def __init__(self):
                self.n = 0

            def generate_id(self):
                self.n += 1
                return "id%d" % self.n

        class FakeServer:
            packet_class = sp.Packet
            eio = FakeEngine()

            async def _send_eio_packet(self, eio_sid, pkt):
                pkt.encode()  # engineio encodes per recipient before queueing it

            async def _send_packet(self, eio_sid, pkt):
                pkt.encode()

        aloop = asyncio.new_event_loop()
        mgr = socketio.AsyncManager()
        mgr.set_server(FakeServer())
        mgr.initialize()
        for i in range(FANOUT):
            r = mgr.connect("e%d" % i, "/")
            if asyncio.iscoroutine(r):  # a coroutine in recent python-socketio
                aloop.run_until_complete(r)

        async def emit_and_run():
            await mgr.emit("broadcast", data[1], "/")
            await asyncio.sleep(0)

        def pysio_one():
            aloop.run_until_complete(emit_and_run())

        impls["python-socketio"] = pysio_one
    except Exception as exc:  # noqa: BLE001 - a changed API only skips this side
        impls["python-socketio"] = exc
    return impls


CASES = {
    "encode": (case_encode, "encode a small EVENT (bytes/str out)", 200_000),
    "decode": (case_decode, "decode a small EVENT", 200_000),
    "encode_bin64k": (case_encode_binary, "encode an EVENT with a 64 KiB attachment", 5_000),
    "frames_bin64k": (case_frames_binary, "encode + frame it (header + 64 KiB frames)", 5_000),
    "decode_bin64k": (case_decode_binary, "decode header + 64 KiB attachment", 5_000),
    "frame_build": (case_frame_build, "build one server text frame (~40 B)", 200_000),
    "frame_parse": (case_frame_parse, "parse 100 masked text frames (one chunk)", 2_000),
    "frame_parse_64k": (case_frame_parse_64k, "parse + unmask one 64 KiB binary frame", 5_000),
    "fanout": (case_fanout, "one broadcast to 1,000 connections", 300),
    "fanout_msgs": (case_fanout_messages, "the same, framework WebSockets (messages)", 300),
}


def fmt_ns(s: float) -> str:
    ns = s * 1e9
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e4:
        return "%.1f us" % (ns / 1e3)
    return "%.0f ns" % ns


def git_revision() -> str:
    """The checkout's commit (with "+dirty" for uncommitted changes), or "unknown"."""
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="", help="comma-separated case names: %s" % ", ".join(CASES))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", default=None, help="also write the figures to this file")
    a = p.parse_args()
    names = [n for n in a.only.split(",") if n] or list(CASES)
    try:
        os.sched_setaffinity(0, {1})
    except (OSError, AttributeError):
        pass
    print("python %s on %s, pinned to CPU %s; best of %d, per operation; ratio = other / fastio"
          % (platform.python_version(), platform.machine(), sorted(os.sched_getaffinity(0)),
             a.repeat if not a.quick else 2))
    # Figures taken on a busy machine are noisy: the load and the revision go beside them.
    print("fastio %s, load average %s" % (git_revision(), " ".join("%.1f" % x for x in os.getloadavg())))
    print("%-16s %-42s %10s   %-24s %10s %8s" % ("case", "what", "fastio", "compared with", "its time", "ratio"))
    results = {}
    for name in names:
        if name not in CASES:
            print("unknown case %s" % name)
            return 2
        factory, what, number = CASES[name]
        if a.quick:
            number = max(10, number // 20)
        try:
            impls = factory()
        except Exception as exc:  # noqa: BLE001 - report and go on
            print("%-16s skipped: %s: %s" % (name, type(exc).__name__, exc))
            results[name] = {"skipped": repr(exc)}
            continue
        timings = {}
        for impl, fn in impls.items():
            if isinstance(fn, Exception):
                timings[impl] = None
                continue
            try:
                fn()  # warm up, and fail early
                timings[impl] = timeit(fn, number, a.repeat if not a.quick else 2)
            except Exception as exc:  # noqa: BLE001
                print("  %s/%s failed: %s: %s" % (name, impl, type(exc).__name__, exc))
                timings[impl] = None
        results[name] = {"what": what, "seconds_per_op": timings}
        base = timings.get("fastio")
        others = [(k, v) for k, v in timings.items() if k != "fastio"]
        first = True
        for impl, v in others or [("-", None)]:
            ratio = "%.1fx" % (v / base) if v and base else "-"
            print("%-16s %-42s %10s   %-24s %10s %8s" % (
                name if first else "", what if first else "", fmt_ns(base) if (base and first) else "",
                impl, fmt_ns(v) if v else "-", ratio))
            first = False
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
