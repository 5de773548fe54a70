"""Soak test: hold many Socket.IO connections for a bounded time with acknowledged traffic.

Starts its own fastio server (``fastio.run`` with default options, port 0) in a subprocess,
opens ``--connections`` raw WebSocket Socket.IO clients (10,000 by default), and for
``--minutes`` minutes has each one emit an event asking for an acknowledgement every
``--interval`` seconds (spread evenly over the clients).  The clients answer the server's
heartbeat pings.  Every ``--sample`` seconds it records the server's RSS and open file
descriptors (from /proc).  At the end it waits for the acks still in flight, closes every
connection, waits for the server's fd count to return to its baseline, stops the server and
reports:

  connected / failed to connect, acks sent / received / lost (0 expected), clients the server
  dropped, the RSS and fd samples, and the fd count after everything closed.

Not part of the test suite; run it by hand:

    python bench/soak.py --connections 2000 --minutes 2
    python bench/soak.py --out bench/results/soak.json

It raises this process's soft limit on open files to the hard limit (``ulimit -Hn``) and
refuses to start when that cannot hold the connections asked for (the server raises its own).
Everything is bounded by ``--minutes`` plus fixed grace periods; it stops by itself.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from typing import Any

HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")

SERVER_CODE = r"""
import sys
import fastio

sio = fastio.AsyncServer(cors_allowed_origins="*")

@sio.on("ping")
def ping(sid, n):
    return n

fastio.run(sio, "127.0.0.1", 0)
"""


# -- the client ------------------------------------------------------------------------------------

def client_frame(payload: bytes) -> bytes:
    """A masked client text frame.  The mask key is zero (the server unmasks whatever key it
    gets), which leaves the payload as it is and costs nothing per message."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


PONG = client_frame(b"3")
CONNECT = client_frame(b"40")


class Stats:
    def __init__(self) -> None:
        self.connected = 0
        self.failed = 0
        self.dropped = 0  # connections the server ended while the soak ran
        self.sent = 0
        self.acked = 0
        self.bad_acks = 0


class SoakClient(asyncio.Protocol):
    """One Engine.IO/Socket.IO client over a raw WebSocket: handshake, acked pings, pongs."""

    def __init__(self, stats: Stats, ready: asyncio.Future[bool]) -> None:
        self.stats = stats
        self.ready = ready
        self.transport: Any = None
        self.buf = b""
        self.head_done = False
        self.sio_open = False
        self.closing = False
        self.next_id = 0
        self.in_flight: dict[int, float] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = "c29ha3NvYWtzb2Frc29haw=="  # any 16 bytes, base64
        transport.write((
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (HOST, key)
        ).encode())

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.ready.done():
            self.ready.set_result(False)
        elif not self.closing:
            self.stats.dropped += 1
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.transport.close()
                return
            self.head_done = True
            buf = buf[end + 4:]
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            if n - start < length:
                break
            opcode = buf[pos] & 0x0F
            payload = buf[start:start + length]
            pos = start + length
            if opcode == 1:
                self.on_text(payload, out)
            elif opcode == 8:
                self.closing = True
                self.stats.dropped += 1
        self.buf = buf[pos:]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def on_text(self, payload: bytes, out: list[bytes]) -> None:
        if payload == b"2":
            out.append(PONG)
        elif payload[:1] == b"0":
            out.append(CONNECT)
        elif payload[:2] == b"40" and not self.sio_open:
            self.sio_open = True
            if not self.ready.done():
                self.ready.set_result(True)
        elif payload[:2] == b"43":
            # 43<id>[<n>]: the acknowledgement carries back the number sent
            m = re.match(rb"43(\d+)\[(\d+)\]", payload)
            if m is None:
                self.stats.bad_acks += 1
                return
            ack_id = int(m.group(1))
            if self.in_flight.pop(ack_id, None) is None or int(m.group(2)) != ack_id:
                self.stats.bad_acks += 1
            else:
                self.stats.acked += 1

    def ping(self) -> None:
        if self.transport is None or not self.sio_open or self.closing:
            return
        i = self.next_id
        self.next_id += 1
        self.in_flight[i] = time.monotonic()
        self.stats.sent += 1
        self.transport.write(client_frame(b'42%d["ping",%d]' % (i, i)))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


# -- the server process ----------------------------------------------------------------------------

def proc_sample(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open fds) of process ``pid``."""
    with open("/proc/%d/statm" % pid) as f:
        rss = int(f.read().split()[1]) * PAGE / (1 << 20)
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    m = re.search(r":(\d+)\s*$", line)
    if m is None:
        proc.kill()
        raise SystemExit("the server did not start: %r" % line)
    return proc, int(m.group(1))


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < needed:
        raise SystemExit("need %d file descriptors, the limit is %d (ulimit -Hn); use fewer --connections"
                         % (needed, soft))
    return soft


# -- the run -------------------------------------------------------------------------------------

async def soak(args: argparse.Namespace, pid: int, port: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stats = Stats()
    clients: list[SoakClient] = []
    samples: list[dict[str, float]] = []
    t0 = time.monotonic()

    def sample(phase: str) -> None:
        rss, fds = proc_sample(pid)
        samples.append({"t": round(time.monotonic() - t0, 1), "phase": phase, "rss_mib": round(rss, 1),
                        "fds": fds, "acked": stats.acked, "dropped": stats.dropped})
        print("  t=%6.1fs %-8s rss=%7.1f MiB fds=%6d connected=%d acked=%d dropped=%d"
              % (samples[-1]["t"], phase, rss, fds, stats.connected, stats.acked, stats.dropped), flush=True)

    base_rss, base_fds = proc_sample(pid)
    sample("start")

    sem = asyncio.Semaphore(200)

    async def open_one() -> None:
        async with sem:
            ready: asyncio.Future[bool] = loop.create_future()
            client = SoakClient(stats, ready)
            try:
                await loop.create_connection(lambda: client, HOST, port)
                ok = await asyncio.wait_for(ready, 30)
            except (OSError, asyncio.TimeoutError):
                ok = False
            if ok:
                stats.connected += 1
                clients.append(client)
            else:
                stats.failed += 1
                client.close()

    opening = [asyncio.ensure_future(open_one()) for _ in range(args.connections)]
    for i in range(0, len(opening), 1000):
        await asyncio.gather(*opening[i:i + 1000])
        sample("connect")

    # Acked traffic: every client emits once per interval, spread evenly over ticks of 100 ms.
    end = time.monotonic() + args.minutes * 60
    tick = 0.1
    per_tick = max(1, round(len(clients) * tick / args.interval))
    next_sample = time.monotonic() + args.sample
    i = 0
    while time.monotonic() < end:
        for _ in range(per_tick):
            if clients:
                clients[i % len(clients)].ping()
                i += 1
        await asyncio.sleep(tick)
        if time.monotonic() >= next_sample:
            next_sample += args.sample
            sample("soak")

    # The acks still in flight get 10 s.
    grace = time.monotonic() + 10
    while stats.acked + stats.bad_acks < stats.sent and time.monotonic() < grace:
        await asyncio.sleep(0.1)
    lost = sum(len(c.in_flight) for c in clients)
    sample("drained")
    for c in clients:
        c.close()
    # The server's fds back to where they were (its idle keep-alive and close timeouts are 5 s).
    settle = time.monotonic() + 15
    while time.monotonic() < settle:
        await asyncio.sleep(0.25)
        if proc_sample(pid)[1] <= base_fds:
            break
    sample("closed")
    end_rss, end_fds = proc_sample(pid)
    peak = max(s["rss_mib"] for s in samples)
    return {
        "connections": args.connections, "minutes": args.minutes, "interval_s": args.interval,
        "connected": stats.connected, "failed": stats.failed, "dropped": stats.dropped,
        "acks_sent": stats.sent, "acks_received": stats.acked, "acks_lost": lost, "bad_acks": stats.bad_acks,
        "server_rss_mib": {"baseline": round(base_rss, 1), "peak": peak, "end": round(end_rss, 1)},
        "server_fds": {"baseline": base_fds, "peak": max(s["fds"] for s in samples), "end": end_fds},
        "samples": samples,
    }


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between one client's acked emits")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS/fd samples")
    ap.add_argument("--out", help="write the JSON result here too")
    args = ap.parse_args()
    raise_fd_limit(args.connections + 100)
    try:
        import uvloop

        new_loop = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    proc, port = start_server()
    print("soak: %d connections for %.1f min against fastio on port %d (server pid %d)"
          % (args.connections, args.minutes, port, proc.pid), flush=True)
    try:
        loop = new_loop()
        try:
            result = loop.run_until_complete(soak(args, proc.pid, port))
        finally:
            loop.close()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                         "cpus": os.cpu_count(), "git": git_revision()}
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    if result["acks_lost"] or result["bad_acks"] or result["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
