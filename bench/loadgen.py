"""Socket.IO load generator: Engine.IO v4 / Socket.IO v5 over raw WebSocket on uvloop.

Every client is a plain ``asyncio.Protocol``: it writes a fixed HTTP upgrade request, then
parses the server's (unmasked) frames with a few byte comparisons per frame. Client frames are
masked once at start-up with one random key and reused, and the replies to everything read in
one chunk go out in a single write, so the generator spends as little as possible per message.

Scenarios (one per run; see ``--scenario``):

  echo       closed loop, ``--conns`` clients with ``--window`` echo events in flight each
  ack        the same with acknowledgements requested (``42<id>["echo",...]``, counts ``43<id>``)
  broadcast  ``--conns`` clients (1,000 by default) all in the default namespace; the last one to
             connect keeps ``--window`` ``broadcast`` events in flight; every delivery is counted
  connect    connection rate through the full handshake: TCP + WebSocket upgrade, Engine.IO
             OPEN, ``40`` CONNECT and the server's ``40{...}`` reply (connections kept open)
  idle       server RSS growth over ``--clients`` connected idle clients (bytes per client),
             then the CPU the server spends when they all drop at once
  latency    open loop at ``--rate`` echo events/s spread over ``--conns`` clients;
             round-trip percentiles
  binary     echo of one 64 KiB binary attachment (``451-`` + binary frame), ``--window`` in flight

With ``--server-pid`` it reads the server's CPU time (utime+stime from /proc/PID/stat, all
threads) and RSS at the start and end of the measured phase; its own CPU time comes from
getrusage. The result is one JSON object on stdout (or ``--out``).

Every loop is bounded by a duration and by an operation count and stops by itself.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import socket
import struct
import sys
import time

HOST = "127.0.0.1"
MASK = os.urandom(4)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LINGER0 = struct.pack("ii", 1, 0)
perf = time.perf_counter


# -- frames -------------------------------------------------------------------------------------

def masked(payload: bytes, key: bytes = MASK) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = int.from_bytes((key * ((n + 3) >> 2))[:n], "little")
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client-to-server frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + masked(payload)


ECHO_ARG = b'{"n":1,"msg":"hello, world"}'
F_CONNECT = client_frame(b"40")
F_PONG = client_frame(b"3")
F_ECHO = client_frame(b'42["echo",' + ECHO_ARG + b"]")
F_BROADCAST = client_frame(b'42["broadcast",' + ECHO_ARG + b"]")
MAX_WINDOW = 64
F_ACK = [client_frame(b'42%d["echo",%s]' % (i, ECHO_ARG)) for i in range(MAX_WINDOW)]
BIN_SIZE = 64 * 1024
F_BINARY = (client_frame(b'451-["echo",{"_placeholder":true,"num":0}]')
            + client_frame(os.urandom(BIN_SIZE), opcode=2))
WS_CLOSE = client_frame(b"\x03\xe8", opcode=8)


def upgrade_request(port: int) -> bytes:
    return (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            b"Host: 127.0.0.1:%d\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % port)


# -- the server under test -----------------------------------------------------------------------

class ServerProbe:
    """CPU time and RSS of the server process, from /proc."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid

    def cpu(self) -> float:
        """utime + stime of every thread, in seconds (clock-tick resolution)."""
        if not self.pid:
            return 0.0
        with open("/proc/%d/stat" % self.pid, "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def sched_cpu(self) -> float:
        """On-CPU time of every thread in seconds (ns resolution) from schedstat, 0 if absent."""
        if not self.pid:
            return 0.0
        total = 0
        try:
            for tid in os.listdir("/proc/%d/task" % self.pid):
                try:
                    with open("/proc/%d/task/%s/schedstat" % (self.pid, tid), "rb") as f:
                        total += int(f.read().split()[0])
                except OSError:
                    pass
        except OSError:
            return 0.0
        return total / 1e9

    def rss(self) -> int:
        if not self.pid:
            return 0
        with open("/proc/%d/statm" % self.pid, "rb") as f:
            return int(f.read().split()[1]) * PAGE


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_ticks() -> dict[str, tuple[int, int]]:
    """{"cpu0": (busy, total), ...} in clock ticks from /proc/stat (idle and iowait are not busy)."""
    out = {}
    with open("/proc/stat", "rb") as f:
        for line in f:
            if not line.startswith(b"cpu") or line.startswith(b"cpu "):
                if not line.startswith(b"cpu"):
                    break
                continue
            parts = line.split()
            vals = [int(x) for x in parts[1:9]]
            total = sum(vals)
            out[parts[0].decode()] = (total - vals[3] - vals[4], total)
    return out


class Snapshot:
    __slots__ = ("t", "ops", "scpu", "ssched", "gcpu", "rss", "ticks")

    def __init__(self, probe: ServerProbe, ops: int, rss: bool = False) -> None:
        self.t = perf()
        self.ops = ops
        self.scpu = probe.cpu()
        self.ssched = probe.sched_cpu()
        self.gcpu = own_cpu()
        self.rss = probe.rss() if rss else 0
        self.ticks = cpu_ticks()


# -- clients --------------------------------------------------------------------------------------

class State:
    """Counters shared by the clients of one scenario."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.request = upgrade_request(port)
        self.running = False
        self.limit = 0
        self.sent = 0
        self.recv = 0
        self.errors = 0
        self.lost = 0
        self.pings = 0
        self.sender = None
        self.window = 1
        self.conns = 1
        self.latencies: list[float] = []
        self.sent_at: list[float] = []
        self.skip_seq = 0


class Client(asyncio.Protocol):
    """One Socket.IO client; subclasses react to events, acks and binary frames."""

    def __init__(self, g: State, loop: asyncio.AbstractEventLoop) -> None:
        self.g = g
        self.t = None
        self.up = False
        self.head = b""
        self.buf = None
        self.need = 0
        self.k = 0
        self.ready = loop.create_future()
        self.closed = False

    # transport events

    def connection_made(self, transport) -> None:
        self.t = transport
        transport.write(self.g.request)

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake"))
        elif self.g.running:
            self.g.lost += 1

    def _fail(self, why: str) -> None:
        self.g.errors += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        self.t.abort()

    def data_received(self, data: bytes) -> None:
        if not self.up:
            head = self.head + data
            i = head.find(b"\r\n\r\n")
            if i < 0:
                self.head = head
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._fail(head[:head.find(b"\r\n")].decode("latin-1", "replace"))
                return
            self.up = True
            self.head = b""
            data = head[i + 4:]
            if not data:
                return
        if self.buf is not None:
            self.buf += data
            if len(self.buf) < self.need:
                return
            buf = self.buf
            self.buf = None
        else:
            buf = data
        n = len(buf)
        pos = 0
        self.need = 0
        while n - pos >= 2:
            ln = buf[pos + 1] & 127
            hs = pos + 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = (buf[hs] << 8) | buf[hs + 1]
                hs += 2
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(buf[hs:hs + 8], "big")
                hs += 8
            e = hs + ln
            if e > n:
                self.need = e - pos
                break
            op = buf[pos] & 15
            if op == 1:
                c0 = buf[hs]
                if c0 == 52:  # "4" message
                    c1 = buf[hs + 1]
                    if c1 == 50:  # "2" event
                        self.on_event(buf, hs, e)
                    elif c1 == 51:  # "3" ack
                        self.on_ack(buf, hs, e)
                    elif c1 == 53:  # "5" binary event header, its attachment follows
                        pass
                    elif c1 == 48:  # "0" CONNECT reply
                        if not self.ready.done():
                            self.ready.set_result(True)
                    else:  # "4" CONNECT_ERROR, "1" DISCONNECT, anything else
                        self.g.errors += 1
                elif c0 == 50:  # Engine.IO ping
                    self.g.pings += 1
                    self.t.write(F_PONG)
                elif c0 == 48:  # Engine.IO OPEN: ask for the default namespace
                    self.t.write(F_CONNECT)
                elif c0 == 49:  # Engine.IO CLOSE
                    self.g.errors += 1
            elif op == 2:
                self.on_binary(ln)
            elif op == 8:
                self.t.close()
                return
            elif op != 10:
                self.g.errors += 1
            pos = e
        if pos < n:
            self.buf = bytearray(buf[pos:]) if pos else (buf if type(buf) is bytearray else bytearray(buf))
        if self.k:
            self.flush()

    # overridden by scenarios

    def on_event(self, buf, s: int, e: int) -> None:
        pass

    def on_ack(self, buf, s: int, e: int) -> None:
        pass

    def on_binary(self, size: int) -> None:
        pass

    def flush(self) -> None:
        self.k = 0

    def abort(self) -> None:
        if self.t is not None and not self.closed:
            try:
                self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            except (OSError, AttributeError):
                pass
            self.t.abort()


class EchoClient(Client):
    def on_event(self, buf, s, e):
        self.k += 1

    def flush(self):
        k = self.k
        self.k = 0
        g = self.g
        g.recv += k
        if g.running and g.sent < g.limit:
            self.t.write(F_ECHO * k if k > 1 else F_ECHO)
            g.sent += k


class AckClient(Client):
    def __init__(self, g, loop):
        super().__init__(g, loop)
        self.ids: list[int] = []

    def on_ack(self, buf, s, e):
        self.ids.append(int(buf[s + 2:buf.index(b"[", s, e)]))
        self.k += 1

    def flush(self):
        ids = self.ids
        k = self.k
        self.k = 0
        self.ids = []
        g = self.g
        g.recv += k
        if g.running and g.sent < g.limit:
            self.t.write(F_ACK[ids[0]] if k == 1 else b"".join([F_ACK[i] for i in ids]))
            g.sent += k


class BroadcastClient(Client):
    def on_event(self, buf, s, e):
        self.k += 1

    def flush(self):
        k = self.k
        self.k = 0
        g = self.g
        g.recv += k
        if self is g.sender and g.running and g.sent < g.limit:
            self.t.write(F_BROADCAST * k if k > 1 else F_BROADCAST)
            g.sent += k


class BinaryClient(Client):
    def on_binary(self, size):
        if size == BIN_SIZE:
            self.k += 1
        else:
            self.g.errors += 1

    def flush(self):
        k = self.k
        self.k = 0
        g = self.g
        g.recv += k
        if g.running and g.sent < g.limit:
            for _ in range(k):
                self.t.write(F_BINARY)
            g.sent += k


class LatencyClient(Client):
    def on_event(self, buf, s, e):
        g = self.g
        seq = int(buf[s + 10:e - 1])
        if seq >= g.skip_seq:
            g.latencies.append(perf() - g.sent_at[seq])
        self.k += 1

    def flush(self):
        self.g.recv += self.k
        self.k = 0


# -- helpers ----------------------------------------------------------------------------------------

async def open_clients(g: State, n: int, cls: type, concurrency: int = 64,
                       timeout: float = 15.0) -> list[Client]:
    """Open ``n`` clients through the full handshake, ``concurrency`` at a time."""
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    failures: list[str] = []
    it = iter(range(n))
    deadline = perf() + timeout + n / 200.0

    async def worker() -> None:
        for _ in it:
            if perf() > deadline or len(failures) > 10:
                return
            try:
                _, c = await loop.create_connection(lambda: cls(g, loop), HOST, g.port)
                await asyncio.wait_for(c.ready, timeout)
                clients.append(c)
            except (OSError, asyncio.TimeoutError) as exc:
                failures.append(repr(exc))

    await asyncio.gather(*[worker() for _ in range(min(concurrency, n))])
    if len(clients) < n:
        close_clients(clients)
        raise RuntimeError("opened %d of %d clients (%s)" % (len(clients), n, "; ".join(failures[:3])))
    return clients


def close_clients(clients: list[Client]) -> None:
    """Abort every client with SO_LINGER 0 (RST, no TIME_WAIT left behind)."""
    for c in clients:
        c.abort()


async def wait_until(cond, timeout: float, step: float = 0.005) -> bool:
    end = perf() + timeout
    while not cond():
        if perf() > end:
            return False
        await asyncio.sleep(step)
    return True


async def settle_cpu(probe: ServerProbe, timeout: float, step: float = 0.1) -> None:
    """Wait until the server's CPU time grows by less than 2 ms per ``step`` twice in a row."""
    end = perf() + timeout
    last = probe.sched_cpu() or probe.cpu()
    quiet = 0
    while quiet < 2 and perf() < end:
        await asyncio.sleep(step)
        now = probe.sched_cpu() or probe.cpu()
        quiet = quiet + 1 if now - last < 0.002 else 0
        last = now


async def run_for(g: State, seconds: float) -> None:
    """Sleep ``seconds`` or until the operation budget is spent."""
    end = perf() + seconds
    while perf() < end and g.sent < g.limit:
        await asyncio.sleep(min(0.02, max(0.0, end - perf())))


def result(name: str, s0: Snapshot, s1: Snapshot, g: State, unit: str, **extra) -> dict:
    ops = s1.ops - s0.ops
    wall = s1.t - s0.t
    scpu = s1.scpu - s0.scpu
    ssched = s1.ssched - s0.ssched
    gcpu = s1.gcpu - s0.gcpu
    out = {
        "scenario": name,
        "unit": unit,
        "ops": ops,
        "wall_s": wall,
        "throughput": ops / wall if wall > 0 else 0.0,
        "server_cpu_s": scpu,
        "server_sched_cpu_s": ssched,
        "server_cpu_us_per_op": scpu / ops * 1e6 if ops else None,
        "server_sched_us_per_op": ssched / ops * 1e6 if ops else None,
        "server_util": (ssched or scpu) / wall if wall > 0 else 0.0,
        "gen_cpu_s": gcpu,
        "gen_util": gcpu / wall if wall > 0 else 0.0,
        "errors": g.errors,
        "lost": g.lost,
    }
    busy = {}
    for cpu, (b1, t1) in s1.ticks.items():
        b0, t0 = s0.ticks.get(cpu, (b1, t1))
        busy[cpu] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    out["cpu_busy"] = busy
    # Cores kept busy by anything but the server and this generator (other jobs, the kernel's
    # softirq threads): a sign the figures were disturbed.
    out["other_load"] = max(0.0, sum(busy.values()) - (scpu + gcpu) / wall) if wall > 0 else 0.0
    out["gen_saturated"] = out["gen_util"] >= 0.85
    out.update(extra)
    return out


# -- scenarios --------------------------------------------------------------------------------------

async def sc_echo(a, probe: ServerProbe, ack: bool = False) -> dict:
    g = State(a.port)
    g.limit = a.max_ops
    window = min(a.window, MAX_WINDOW)
    clients = await open_clients(g, a.conns, AckClient if ack else EchoClient)
    try:
        g.running = True
        for c in clients:
            c.t.write(b"".join(F_ACK[:window]) if ack else F_ECHO * window)
        g.sent += window * len(clients)
        await run_for(g, a.warmup)
        s0 = Snapshot(probe, g.recv)
        await run_for(g, a.duration)
        g.running = False
        drained = await wait_until(lambda: g.recv >= g.sent, a.drain)
        s1 = Snapshot(probe, g.recv)
    finally:
        g.running = False
        close_clients(clients)
    return result("ack" if ack else "echo", s0, s1, g, "ack round trips" if ack else "echo round trips",
                  conns=a.conns, window=window, drained=drained, unanswered=g.sent - g.recv)


async def sc_broadcast(a, probe: ServerProbe) -> dict:
    g = State(a.port)
    g.limit = a.max_ops
    clients = await open_clients(g, a.conns, BroadcastClient)
    n = len(clients)
    try:
        # The last client to connect is the last recipient of every fan-out (rooms keep joining
        # order in all the servers tested), so when it sees a broadcast the others have it queued.
        g.sender = clients[-1]
        g.running = True
        g.sender.t.write(F_BROADCAST * a.window)
        g.sent += a.window
        await run_for(g, a.warmup)
        s0 = Snapshot(probe, g.recv)
        sent0 = g.sent
        await run_for(g, a.duration)
        g.running = False
        drained = await wait_until(lambda: g.recv >= g.sent * n, a.drain)
        s1 = Snapshot(probe, g.recv)
    finally:
        g.running = False
        close_clients(clients)
    r = result("broadcast", s0, s1, g, "deliveries", conns=n, window=a.window, drained=drained,
               undelivered=g.sent * n - g.recv)
    wall = r["wall_s"]
    r["broadcasts"] = g.sent - sent0
    r["broadcasts_per_s"] = r["ops"] / n / wall if wall > 0 else 0.0
    r["server_cpu_us_per_broadcast"] = (r["server_cpu_s"] / (r["ops"] / n) * 1e6) if r["ops"] else None
    return r


async def sc_connect(a, probe: ServerProbe) -> dict:
    g = State(a.port)
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    failures: list[str] = []
    warm = await open_clients(g, min(a.warmup_clients, a.clients), Client)
    clients.extend(warm)
    state = {"done": 0}
    limit = a.clients
    end_at = perf() + a.duration

    async def worker() -> None:
        while state["done"] + len(failures) < limit and perf() < end_at and len(failures) <= 10:
            state["done"] += 1  # reserve one
            try:
                _, c = await loop.create_connection(lambda: Client(g, loop), HOST, g.port)
                await asyncio.wait_for(c.ready, 15.0)
                clients.append(c)
            except (OSError, asyncio.TimeoutError) as exc:
                state["done"] -= 1
                failures.append(repr(exc))

    try:
        s0 = Snapshot(probe, 0)
        await asyncio.gather(*[worker() for _ in range(a.concurrency)])
        s1 = Snapshot(probe, len(clients) - len(warm))
    finally:
        close_clients(clients)
    g.errors += len(failures)
    return result("connect", s0, s1, g, "handshakes", concurrency=a.concurrency,
                  failures=failures[:5])


async def sc_idle(a, probe: ServerProbe) -> dict:
    g = State(a.port)
    warm = await open_clients(g, a.warmup_clients, Client)
    clients: list[Client] = []
    try:
        await asyncio.sleep(a.settle)
        gc.collect()
        s0 = Snapshot(probe, 0, rss=True)
        clients = await open_clients(g, a.clients, Client, a.concurrency)
        t_open = perf() - s0.t
        await asyncio.sleep(a.settle)
        s1 = Snapshot(probe, len(clients), rss=True)
        # Then every client vanishes at once (RST): how much CPU does the server spend
        # tearing the connections down? Measured until its CPU time stops moving.
        close_clients(clients)
        t_close = perf()
        await settle_cpu(probe, a.drain)
        disconnect_cpu = probe.cpu() - s1.scpu
        disconnect_sched = probe.sched_cpu() - s1.ssched
        disconnect_wall = perf() - t_close
    finally:
        close_clients(warm)
        close_clients(clients)
    r = result("idle", s0, s1, g, "idle clients", clients=len(clients), concurrency=a.concurrency,
               rss_before=s0.rss, rss_after=s1.rss,
               bytes_per_client=(s1.rss - s0.rss) / len(clients) if clients else None,
               connect_rate=len(clients) / t_open if t_open > 0 else 0.0,
               disconnect_cpu_s=disconnect_cpu, disconnect_sched_cpu_s=disconnect_sched,
               disconnect_wall_s=disconnect_wall,
               server_cpu_us_per_disconnect=disconnect_cpu / len(clients) * 1e6 if clients else None)
    # Throughput here is connections per second while opening (the settle time excluded).
    r["throughput"] = r["connect_rate"]
    return r


async def sc_latency(a, probe: ServerProbe) -> dict:
    g = State(a.port)
    clients = await open_clients(g, a.conns, LatencyClient)
    n = len(clients)
    rate = float(a.rate)
    total = min(int(rate * (a.warmup + a.duration)), a.max_ops)
    g.skip_seq = int(rate * a.warmup)
    sent_at = g.sent_at
    try:
        g.running = True
        t0 = perf()
        seq = 0
        s0 = None
        while seq < total:
            now = perf()
            due = min(int((now - t0) * rate), total) - seq
            for _ in range(due):
                f = client_frame(b'42["echo",%d]' % seq)
                sent_at.append(perf())
                clients[seq % n].t.write(f)
                seq += 1
            g.sent = seq
            if s0 is None and seq >= g.skip_seq:
                s0 = Snapshot(probe, g.recv)
            if now - t0 > (a.warmup + a.duration) * 2 + 5:
                break  # the loop fell far behind schedule; stop anyway
            await asyncio.sleep(0.001)
        if s0 is None:
            s0 = Snapshot(probe, g.recv)
        g.running = False
        drained = await wait_until(lambda: g.recv >= g.sent, a.drain)
        s1 = Snapshot(probe, g.recv)
    finally:
        g.running = False
        close_clients(clients)
    lat = sorted(g.latencies)

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] * 1e6

    return result("latency", s0, s1, g, "echo round trips", conns=n, rate=rate, drained=drained,
                  unanswered=g.sent - g.recv, samples=len(lat),
                  latency_us={"p50": pct(50), "p90": pct(90), "p99": pct(99), "p99.9": pct(99.9),
                              "max": lat[-1] * 1e6 if lat else None,
                              "mean": sum(lat) / len(lat) * 1e6 if lat else None})


async def sc_binary(a, probe: ServerProbe) -> dict:
    g = State(a.port)
    g.limit = a.max_ops
    clients = await open_clients(g, a.conns, BinaryClient)
    try:
        g.running = True
        for c in clients:
            for _ in range(a.window):
                c.t.write(F_BINARY)
        g.sent += a.window * len(clients)
        await run_for(g, a.warmup)
        s0 = Snapshot(probe, g.recv)
        await run_for(g, a.duration)
        g.running = False
        drained = await wait_until(lambda: g.recv >= g.sent, a.drain)
        s1 = Snapshot(probe, g.recv)
    finally:
        g.running = False
        close_clients(clients)
    r = result("binary", s0, s1, g, "64 KiB round trips", conns=len(clients), window=a.window,
               drained=drained, unanswered=g.sent - g.recv)
    r["mib_per_s"] = r["throughput"] * BIN_SIZE / 2 ** 20
    return r


SCENARIOS = {
    "echo": lambda a, p: sc_echo(a, p, ack=False),
    "ack": lambda a, p: sc_echo(a, p, ack=True),
    "broadcast": sc_broadcast,
    "connect": sc_connect,
    "idle": sc_idle,
    "latency": sc_latency,
    "binary": sc_binary,
}

# Per-scenario defaults (full run); --quick shrinks them.
DEFAULTS = {
    "echo": dict(conns=100, window=8),
    "ack": dict(conns=100, window=8),
    "broadcast": dict(conns=1000, window=8),
    "connect": dict(clients=5000, concurrency=64, warmup_clients=50),
    "idle": dict(clients=5000, concurrency=64, warmup_clients=20, settle=1.0),
    "latency": dict(conns=50, rate=2000),
    "binary": dict(conns=10, window=2),
}
QUICK = {
    "echo": dict(conns=10, window=4),
    "ack": dict(conns=10, window=4),
    "broadcast": dict(conns=50, window=2),
    "connect": dict(clients=200, concurrency=16, warmup_clients=5),
    "idle": dict(clients=200, concurrency=32, warmup_clients=5, settle=0.2),
    "latency": dict(conns=10, rate=500),
    "binary": dict(conns=2, window=1),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Socket.IO load generator (raw WebSocket on uvloop)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    p.add_argument("--server-pid", type=int, default=0, help="PID whose CPU time and RSS are measured")
    p.add_argument("--quick", action="store_true", help="tiny counts for a smoke test")
    p.add_argument("--duration", type=float, default=None, help="measured seconds (default 3, quick 0.3)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first (default 1, quick 0.1)")
    p.add_argument("--drain", type=float, default=10.0, help="longest wait for answers in flight")
    p.add_argument("--max-ops", type=int, default=5_000_000, help="operation budget (bounds every loop)")
    p.add_argument("--conns", type=int, default=None)
    p.add_argument("--window", type=int, default=None, help="messages in flight per connection")
    p.add_argument("--clients", type=int, default=None, help="idle/connect: number of clients")
    p.add_argument("--concurrency", type=int, default=None, help="handshakes in progress at once")
    p.add_argument("--warmup-clients", type=int, default=None)
    p.add_argument("--settle", type=float, default=None, help="idle: seconds before each RSS reading")
    p.add_argument("--rate", type=float, default=None, help="latency: offered echo events per second")
    p.add_argument("--out", default="-", help="where the JSON result goes (- for stdout)")
    return p


def fill_defaults(a: argparse.Namespace) -> argparse.Namespace:
    base = (QUICK if a.quick else DEFAULTS)[a.scenario]
    for k, v in base.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    for k in ("conns", "window", "clients", "concurrency", "warmup_clients", "settle", "rate"):
        if getattr(a, k) is None:
            setattr(a, k, {"conns": 1, "window": 1, "clients": 1, "concurrency": 1,
                           "warmup_clients": 0, "settle": 0.0, "rate": 100}[k])
    if a.duration is None:
        a.duration = 0.3 if a.quick else 3.0
    if a.warmup is None:
        a.warmup = 0.1 if a.quick else 1.0
    if a.quick:
        a.drain = min(a.drain, 5.0)
    return a


def run(a: argparse.Namespace) -> dict:
    import uvloop

    probe = ServerProbe(a.server_pid)
    gc.disable()  # no collector pauses in the measured loops; reference counting frees the rest
    try:
        out = uvloop.run(SCENARIOS[a.scenario](a, probe))
    finally:
        gc.enable()
    out["params"] = {k: getattr(a, k) for k in ("duration", "warmup", "conns", "window", "clients",
                                                "concurrency", "rate", "max_ops", "quick")}
    out["gen_pid"] = os.getpid()
    out["gen_cpus"] = sorted(os.sched_getaffinity(0))
    return out


def main(argv: list[str] | None = None) -> int:
    a = fill_defaults(build_parser().parse_args(argv))
    try:
        out = run(a)
        status = 0
    except Exception as exc:  # reported in the JSON so the runner can show it
        out = {"scenario": a.scenario, "error": "%s: %s" % (type(exc).__name__, exc)}
        status = 1
    text = json.dumps(out)
    if a.out == "-":
        sys.stdout.write(text + "\n")
    else:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
