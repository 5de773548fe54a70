"""A Socket.IO load generator for any server: ``fastio bench URL`` and bench/run.py use it.

It speaks Engine.IO v4 / Socket.IO v5 over a raw WebSocket (no polling) from plain
``asyncio.Protocol`` clients, on uvloop when it is installed. Each client writes a fixed HTTP
upgrade request and parses the server's frames with a few byte comparisons each; client frames
are masked once at start-up and reused, so the generator spends little per message and the
server, not the generator, is what a run measures.

Scenarios (one per run):

``echo``
    closed loop: ``conns`` clients keep ``window`` events ``<echo_event>`` in flight each; one
    operation is one event the server emits back to the sender (any event counts).
``ack``
    the same with an acknowledgement requested (``42<id>[...]``); one operation is one ack.
``broadcast``
    ``conns`` clients connect, then the one in the middle of the connection order keeps
    ``window`` ``<broadcast_event>`` events in flight; one operation is one delivery to one
    client. Latency here is from the send to the delivery that reached the last of the
    ``conns`` clients. With ``Options.also`` (further servers of one fleet, e.g. nodes sharing
    a Redis manager) the receivers are split round-robin over the target and those servers,
    and the sender is the middle client of the first target: every delivery on every node is
    counted.
``connect``
    handshakes through to the Socket.IO CONNECT reply, ``concurrency`` at a time, kept open;
    latency is one handshake's duration.
``idle``
    ``clients`` clients connect and stay idle for the settle time; with a server PID the
    server's RSS growth per client, then the CPU it spends when they all drop at once.
``latency``
    open loop at ``rate`` echo events per second spread over ``conns`` clients.
``binary``
    echo of one 64 KiB binary attachment, ``window`` in flight per client.

The server must answer ``echo``/``ack``/``broadcast`` as fastio's benchmark servers do: an
``echo`` handler that emits ``echo`` back to the sender with the same arguments and returns
them (the ack), and a ``broadcast`` handler that emits its argument to every client. The event
names are options.

``window`` events in flight per client go out each in its own ``write`` (one WebSocket frame,
normally one TCP segment); with ``pipeline`` every batch is coalesced into one write instead.

With ``server_pid`` (a process on this machine, or a list of them: the nodes of a fleet) the
run also reads the server's CPU time (utime and stime of every thread, from /proc/PID/stat) and
RSS at the start and end of the measured phase; with several PIDs the figures are the sums.
``watch_pids`` are further processes (a Redis, a broker) whose CPU time over the measured phase
is reported apart, in ``watched_cpu_s``. The result of a run is a JSON-able dict.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import gc
import json
import os
import resource
import socket
import ssl
import struct
import time
import urllib.parse
from typing import Any, Awaitable, Callable, Optional, Sequence, TextIO, Union

__all__ = ["Options", "Target", "ServerProbe", "SCENARIOS", "parse_url", "run", "run_async",
           "format_summary", "percentiles", "raise_fd_limit", "split_round_robin"]

MASK = os.urandom(4)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LINGER0 = struct.pack("ii", 1, 0)
MAX_WINDOW = 64
BIN_SIZE = 64 * 1024
ECHO_ARG = b'{"n":1,"msg":"hello, world"}'
perf = time.perf_counter

#: The scenarios ``run`` knows, in the order a report lists them.
SCENARIOS = ("echo", "ack", "broadcast", "connect", "idle", "latency", "binary")


# -- frames -------------------------------------------------------------------------------------

def _masked(payload: bytes, key: bytes = MASK) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = int.from_bytes((key * ((n + 3) >> 2))[:n], "little")
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client-to-server WebSocket frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + _masked(payload)


@dataclasses.dataclass
class Target:
    """Where the clients connect: host, port, Engine.IO path, namespace, TLS."""

    host: str
    port: int
    path: str = "/socket.io/"
    namespace: str = "/"
    tls: bool = False
    query: str = ""
    verify_tls: bool = True

    def url(self) -> str:
        """The target as a URL (for reports)."""
        scheme = "wss" if self.tls else "ws"
        ns = "" if self.namespace == "/" else self.namespace
        return "%s://%s:%d%s%s" % (scheme, self.host, self.port, self.path.rstrip("/"), ns)


def parse_url(url: str, namespace: Optional[str] = None, path: Optional[str] = None) -> Target:
    """Read a Socket.IO URL the way socket.io-client does.

    ``http://host:port`` and ``ws://`` mean plain TCP, ``https://`` and ``wss://`` TLS; the URL's
    path is the namespace (``http://host/chat`` is namespace ``/chat``) unless ``namespace`` is
    given; the Engine.IO path is ``/socket.io/`` unless ``path`` is given. The port defaults to
    80 or 443.
    """
    if "://" not in url:
        url = "http://" + url
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError("unsupported URL scheme %r (use http, https, ws or wss)" % u.scheme)
    tls = u.scheme in ("https", "wss")
    if not u.hostname:
        raise ValueError("no host in %r" % url)
    port = u.port or (443 if tls else 80)
    ns = namespace if namespace is not None else (u.path.rstrip("/") or "/")
    if not ns.startswith("/"):
        ns = "/" + ns
    p = path or "/socket.io/"
    if not p.startswith("/"):
        p = "/" + p
    if not p.endswith("/"):
        p += "/"
    return Target(u.hostname, port, p, ns, tls, u.query)


class Frames:
    """The pre-built client frames of one run (namespace and event names applied)."""

    def __init__(self, target: Target, echo_event: str, broadcast_event: str) -> None:
        ns = b"" if target.namespace == "/" else target.namespace.encode() + b","
        echo = json.dumps(echo_event).encode()
        bcast = json.dumps(broadcast_event).encode()
        self.connect = client_frame(b"40" + ns)
        self.pong = client_frame(b"3")
        self.echo = client_frame(b"42" + ns + b"[" + echo + b"," + ECHO_ARG + b"]")
        self.broadcast = client_frame(b"42" + ns + b"[" + bcast + b"," + ECHO_ARG + b"]")
        self.ack = [client_frame(b"42" + ns + b"%d[" % i + echo + b"," + ECHO_ARG + b"]")
                    for i in range(MAX_WINDOW)]
        self.binary = (client_frame(b"451-" + ns + b"[" + echo + b',{"_placeholder":true,"num":0}]')
                       + client_frame(os.urandom(BIN_SIZE), opcode=2))
        self.ns_prefix = ns
        self.echo_prefix = b"42" + ns + b"[" + echo + b","

    def sequenced_echo(self, seq: int) -> bytes:
        """``42["echo",<seq>]``: the latency scenario's numbered event."""
        return client_frame(self.echo_prefix + b"%d]" % seq)


def upgrade_request(target: Target) -> bytes:
    """The HTTP request that opens an Engine.IO WebSocket on ``target``."""
    query = "EIO=4&transport=websocket" + ("&" + target.query if target.query else "")
    host = target.host if ":" not in target.host else "[%s]" % target.host
    default = 443 if target.tls else 80
    if target.port != default:
        host += ":%d" % target.port
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET %s?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (target.path, query, host, key)).encode()


# -- the server under test -----------------------------------------------------------------------

class ServerProbe:
    """CPU time and RSS of the server, from /proc; zeros without a PID.

    ``pid`` is one process on this machine, or several (the nodes of a fleet): then every
    figure is the sum over them. ``pid`` (the attribute) is the first one, 0 without any.
    """

    def __init__(self, pid: Union[None, int, Sequence[int]]) -> None:
        if pid is None or isinstance(pid, int):
            pids = [pid] if pid else []
        else:
            pids = [p for p in pid if p]
        self.pids: list[int] = pids
        self.pid = pids[0] if pids else 0

    def cpu_split(self) -> tuple[float, float]:
        """(utime, stime) of every thread in seconds, at clock-tick resolution."""
        ut = st = 0
        for pid in self.pids:
            with open("/proc/%d/stat" % pid, "rb") as f:
                fields = f.read().rpartition(b")")[2].split()
            ut += int(fields[11])
            st += int(fields[12])
        return ut / CLK_TCK, st / CLK_TCK

    def cpu(self) -> float:
        """utime + stime of every thread, in seconds."""
        u, s = self.cpu_split()
        return u + s

    def sched_cpu(self) -> float:
        """On-CPU time of every thread in seconds (ns resolution) from schedstat, 0 if absent."""
        total = 0
        for pid in self.pids:
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            for tid in tids:
                try:
                    with open("/proc/%d/task/%s/schedstat" % (pid, tid), "rb") as f:
                        total += int(f.read().split()[0])
                except OSError:
                    pass
        return total / 1e9

    def only_cpu(self) -> Optional[int]:
        """The one CPU the server is pinned to, or ``None`` (no PID, several PIDs, or several CPUs allowed)."""
        if len(self.pids) != 1:
            return None
        try:
            cpus = os.sched_getaffinity(self.pid)
        except (OSError, AttributeError):
            return None
        return next(iter(cpus)) if len(cpus) == 1 else None

    def rss(self) -> int:
        """Resident set size in bytes (0 without a PID; the sum with several)."""
        total = 0
        for pid in self.pids:
            with open("/proc/%d/statm" % pid, "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        return total


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_ticks() -> dict[str, tuple[int, int, int]]:
    """{"cpu0": (busy, total, softirq), ...} in clock ticks from /proc/stat (idle and iowait are not busy)."""
    out = {}
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if not line.startswith(b"cpu"):
                    break
                if line.startswith(b"cpu "):
                    continue
                parts = line.split()
                vals = [int(x) for x in parts[1:9]]
                total = sum(vals)
                out[parts[0].decode()] = (total - vals[3] - vals[4], total, vals[6])
    except OSError:
        pass
    return out


class _Snapshot:
    __slots__ = ("t", "ops", "probed", "utime", "stime", "ssched", "gcpu", "rss", "ticks", "cpu", "watched")

    def __init__(self, probe: ServerProbe, ops: int, rss: bool = False,
                 watch: Sequence[ServerProbe] = ()) -> None:
        self.t = perf()
        self.ops = ops
        self.probed = bool(probe.pid)
        self.utime, self.stime = probe.cpu_split()
        self.ssched = probe.sched_cpu()
        self.gcpu = _own_cpu()
        self.rss = probe.rss() if rss else 0
        self.ticks = _cpu_ticks()
        self.cpu = probe.only_cpu()
        self.watched = [w.cpu() for w in watch]


# -- clients --------------------------------------------------------------------------------------

class _State:
    """What the clients of one run share: the target, the frames, counters and latencies."""

    def __init__(self, o: "Options") -> None:
        self.target = o.target
        self.targets = [o.target] + list(o.also)
        self.frames = Frames(o.target, o.echo_event, o.broadcast_event)
        self.request = upgrade_request(o.target)
        self.ssl = None
        if any(t.tls for t in self.targets):
            self.ssl = ssl.create_default_context()
            if not all(t.verify_tls for t in self.targets if t.tls):
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
        self.watch = [ServerProbe(pid) for pid in o.watch_pids]
        self.pipeline = o.pipeline
        self.running = False
        self.measuring = False
        self.limit = o.max_ops
        self.sent = 0
        self.recv = 0
        self.errors = 0
        self.lost = 0
        self.pings = 0
        self.sender: Optional[_Client] = None
        self.conns = 1
        self.latencies: list[float] = []
        self.sent_at: list[float] = []
        self.arrivals: list[int] = []
        self.extra = 0
        self.skip_seq = 0
        self.phase = "connecting"


class _Client(asyncio.Protocol):
    """One Socket.IO client; subclasses react to events, acks and binary frames."""

    def __init__(self, g: _State, loop: asyncio.AbstractEventLoop) -> None:
        self.g = g
        self.t: Any = None
        self.up = False
        self.head = b""
        self.buf: Any = None
        self.need = 0
        self.k = 0
        self.ready = loop.create_future()
        self.closed = False
        self.request = g.request  # the upgrade request of the server this client goes to

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        transport.write(self.request)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
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
                self._fail("upgrade refused: " + head[:head.find(b"\r\n")].decode("latin-1", "replace"))
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
            if op == 1 and ln:
                c0 = buf[hs]
                if c0 == 52 and ln > 1:  # "4" message
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
                    elif c1 == 52 and not self.ready.done():  # "4" CONNECT_ERROR
                        self._fail("connect refused: " + bytes(buf[hs:e]).decode("utf-8", "replace"))
                        return
                    else:  # DISCONNECT, anything else
                        self.g.errors += 1
                elif c0 == 50:  # Engine.IO ping
                    self.g.pings += 1
                    self.t.write(self.g.frames.pong)
                elif c0 == 48:  # Engine.IO OPEN: ask for the namespace
                    self.t.write(self.g.frames.connect)
                elif c0 == 49:  # Engine.IO CLOSE
                    self.g.errors += 1
            elif op == 2:
                self.on_binary(ln)
            elif op == 8:
                self.t.close()
                return
            elif op not in (9, 10):
                self.g.errors += 1
            pos = e
        if pos < n:
            self.buf = bytearray(buf[pos:]) if pos else (buf if type(buf) is bytearray else bytearray(buf))
        if self.k:
            self.flush()

    # overridden by scenarios

    def on_event(self, buf: Any, s: int, e: int) -> None:
        pass

    def on_ack(self, buf: Any, s: int, e: int) -> None:
        pass

    def on_binary(self, size: int) -> None:
        pass

    def flush(self) -> None:
        self.k = 0

    def send(self, frame: bytes, k: int) -> None:
        """Write ``frame`` ``k`` times: each in its own write, or one write when pipelining."""
        if k == 1:
            self.t.write(frame)
        elif self.g.pipeline:
            self.t.write(frame * k)
        else:
            w = self.t.write
            for _ in range(k):
                w(frame)

    def abort(self) -> None:
        """Drop the connection with a RST (SO_LINGER 0): no TIME_WAIT left behind."""
        if self.t is not None and not self.closed:
            try:
                self.t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            except (OSError, AttributeError):
                pass
            self.t.abort()


class _EchoClient(_Client):
    def __init__(self, g: _State, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(g, loop)
        self.stamps: collections.deque = collections.deque()

    def on_event(self, buf: Any, s: int, e: int) -> None:
        self.k += 1

    def start(self, k: int) -> None:
        now = perf()
        self.stamps.extend([now] * k)
        self.send(self.g.frames.echo, k)

    def answered(self, k: int) -> bool:
        """Count ``k`` answers, record their latencies; True when as many should go out again."""
        g = self.g
        g.recv += k
        now = perf()
        pop = self.stamps.popleft
        lat = g.latencies
        measuring = g.measuring
        for _ in range(min(k, len(self.stamps))):
            t = pop()
            if measuring:
                lat.append(now - t)
        return g.running and g.sent < g.limit

    def flush(self) -> None:
        k = self.k
        self.k = 0
        if self.answered(k):
            self.again(k)
            self.g.sent += k

    def again(self, k: int) -> None:
        """Send ``k`` events again in place of the ``k`` just answered."""
        self.start(k)


class _AckClient(_EchoClient):
    def __init__(self, g: _State, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(g, loop)
        self.ids: list[int] = []

    def on_event(self, buf: Any, s: int, e: int) -> None:
        pass  # the echo event that comes with every ack

    def on_ack(self, buf: Any, s: int, e: int) -> None:
        i = s + 2
        if buf[i] == 47:  # "/": a namespace, then ","
            i = buf.index(b",", i, e) + 1
        self.ids.append(int(buf[i:buf.index(b"[", i, e)]))
        self.k += 1

    def start_ids(self, ids: list[int]) -> None:
        now = perf()
        self.stamps.extend([now] * len(ids))
        acks = self.g.frames.ack
        if len(ids) == 1:
            self.t.write(acks[ids[0]])
        elif self.g.pipeline:
            self.t.write(b"".join([acks[i] for i in ids]))
        else:
            for i in ids:
                self.t.write(acks[i])

    def again(self, k: int) -> None:
        """Ask again for the ``k`` acknowledgement ids just answered."""
        ids = self.ids
        self.ids = []
        self.start_ids(ids)


class _BroadcastClient(_Client):
    def __init__(self, g: _State, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(g, loop)
        self.nb = 0

    def on_event(self, buf: Any, s: int, e: int) -> None:
        self.k += 1

    def emit(self, k: int) -> None:
        g = self.g
        now = perf()
        g.sent_at.extend([now] * k)
        g.arrivals.extend([0] * k)
        self.send(g.frames.broadcast, k)
        g.sent += k

    def flush(self) -> None:
        k = self.k
        self.k = 0
        g = self.g
        g.recv += k
        # Broadcast number j reaches every client as its j-th event (one sender, in order), so
        # counting arrivals per number finds the moment the last client got it.
        nb = self.nb
        self.nb = nb + k
        arr = g.arrivals
        n = g.conns
        top = min(nb + k, len(arr))
        g.extra += nb + k - top
        now = 0.0
        for j in range(nb, top):
            c = arr[j] + 1
            arr[j] = c
            if c == n and j >= g.skip_seq:
                if not now:
                    now = perf()
                g.latencies.append(now - g.sent_at[j])
        if self is g.sender and g.running and g.sent < g.limit:
            self.emit(k)


class _BinaryClient(_Client):
    def on_binary(self, size: int) -> None:
        if size == BIN_SIZE:
            self.k += 1
        else:
            self.g.errors += 1

    def flush(self) -> None:
        k = self.k
        self.k = 0
        g = self.g
        g.recv += k
        if g.running and g.sent < g.limit:
            for _ in range(k):
                self.t.write(g.frames.binary)
            g.sent += k


class _LatencyClient(_Client):
    def on_event(self, buf: Any, s: int, e: int) -> None:
        g = self.g
        try:
            seq = int(buf[buf.rindex(b",", s, e) + 1:e - 1])
        except ValueError:
            g.errors += 1
            return
        if g.skip_seq <= seq < len(g.sent_at):
            g.latencies.append(perf() - g.sent_at[seq])
        self.k += 1

    def flush(self) -> None:
        self.g.recv += self.k
        self.k = 0


# -- helpers ----------------------------------------------------------------------------------------

async def _connect(g: _State, cls: type, target: Optional[Target] = None) -> _Client:
    loop = asyncio.get_running_loop()
    kw: dict[str, Any] = {}
    target = target or g.target
    request = g.request if target is g.target else upgrade_request(target)
    if target.tls and g.ssl is not None:
        kw = {"ssl": g.ssl, "server_hostname": target.host}

    def make() -> _Client:
        c = cls(g, loop)
        c.request = request
        return c

    _, c = await loop.create_connection(make, target.host, target.port, **kw)
    return c


async def _open_clients(g: _State, n: int, cls: type, concurrency: int = 64,
                        timeout: float = 15.0, latencies: Optional[list[float]] = None,
                        target: Optional[Target] = None) -> list[_Client]:
    """Open ``n`` clients to ``target`` (default: the run's) through the full handshake,
    ``concurrency`` at a time."""
    clients: list[_Client] = []
    failures: list[str] = []
    it = iter(range(n))
    deadline = perf() + timeout + n / 200.0

    async def worker() -> None:
        for _ in it:
            if perf() > deadline or len(failures) > 10:
                return
            t0 = perf()
            try:
                c = await asyncio.wait_for(_connect(g, cls, target), timeout)
                clients.append(c)
                await asyncio.wait_for(c.ready, timeout)
                if latencies is not None:
                    latencies.append(perf() - t0)
            except (OSError, asyncio.TimeoutError) as exc:
                failures.append(str(exc) or type(exc).__name__)

    await asyncio.gather(*[worker() for _ in range(max(1, min(concurrency, n)))])
    ready = [c for c in clients if c.ready.done() and not c.ready.cancelled() and c.ready.exception() is None]
    if len(ready) < n:
        _close_clients(clients)
        raise RuntimeError("opened %d of %d clients (%s)" % (len(ready), n, "; ".join(list(dict.fromkeys(failures))[:3]) or "timeout"))
    return ready


def _close_clients(clients: list[_Client]) -> None:
    for c in clients:
        c.abort()


async def _wait_until(cond: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    end = perf() + timeout
    while not cond():
        if perf() > end:
            return False
        await asyncio.sleep(step)
    return True


async def _settle_cpu(probe: ServerProbe, timeout: float, step: float = 0.1) -> None:
    """Wait until the server's CPU time grows by less than 2 ms per ``step`` twice in a row."""
    end = perf() + timeout
    last = probe.sched_cpu() or probe.cpu()
    quiet = 0
    while quiet < 2 and perf() < end:
        await asyncio.sleep(step)
        now = probe.sched_cpu() or probe.cpu()
        quiet = quiet + 1 if now - last < 0.002 else 0
        last = now


async def _run_for(g: _State, seconds: float) -> None:
    """Sleep ``seconds`` or until the operation budget is spent."""
    end = perf() + seconds
    while perf() < end and g.sent < g.limit:
        await asyncio.sleep(min(0.02, max(0.0, end - perf())))


def percentiles(samples: list[float]) -> dict[str, Optional[float]]:
    """p50/p90/p99/p99.9/max/mean of ``samples`` (seconds) in microseconds; ``None`` without samples."""
    lat = sorted(samples)
    keys = ("p50", "p90", "p99", "p99.9", "max", "mean")
    if not lat:
        return {k: None for k in keys}
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, int(p / 100.0 * n))] * 1e6

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "p99.9": pct(99.9),
            "max": lat[-1] * 1e6, "mean": sum(lat) / n * 1e6}


def _result(name: str, s0: _Snapshot, s1: _Snapshot, g: _State, unit: str, **extra: Any) -> dict:
    ops = s1.ops - s0.ops
    wall = s1.t - s0.t
    ut = s1.utime - s0.utime
    st = s1.stime - s0.stime
    scpu = ut + st
    ssched = s1.ssched - s0.ssched
    gcpu = s1.gcpu - s0.gcpu
    out: dict[str, Any] = {
        "scenario": name,
        "unit": unit,
        "ops": ops,
        "wall_s": wall,
        "throughput": ops / wall if wall > 0 else 0.0,
        "server_cpu_s": scpu,
        "server_utime_s": ut,
        "server_stime_s": st,
        "server_sched_cpu_s": ssched,
        "server_cpu_us_per_op": scpu / ops * 1e6 if ops and s1.probed else None,
        "server_utime_us_per_op": ut / ops * 1e6 if ops and s1.probed else None,
        "server_stime_us_per_op": st / ops * 1e6 if ops and s1.probed else None,
        "server_sched_us_per_op": ssched / ops * 1e6 if ops and ssched else None,
        "server_util": (ssched or scpu) / wall if wall > 0 else 0.0,
        "gen_cpu_s": gcpu,
        "gen_util": gcpu / wall if wall > 0 else 0.0,
        "errors": g.errors,
        "lost": g.lost,
        "ops_all_phases": g.recv,
    }
    busy = {}
    for cpu, (b1, t1, _) in s1.ticks.items():
        b0, t0, _ = s0.ticks.get(cpu, (b1, t1, 0))
        busy[cpu] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    out["cpu_busy"] = busy
    # With the server pinned to one CPU, the softirq time of that CPU is mostly the loopback
    # receive work its own writes caused: charged to no process, so reported beside utime/stime.
    own = "cpu%d" % s1.cpu if s1.cpu is not None else None
    if own in s1.ticks and own in s0.ticks and ops:
        soft = (s1.ticks[own][2] - s0.ticks[own][2]) / CLK_TCK
        out["server_cpu"] = s1.cpu
        out["server_softirq_s"] = soft
        out["server_softirq_us_per_op"] = soft / ops * 1e6
    # Cores kept busy by anything but the server and this generator (other jobs, softirq work).
    out["other_load"] = max(0.0, sum(busy.values()) - (scpu + gcpu) / wall) if wall > 0 else 0.0
    out["gen_saturated"] = out["gen_util"] >= 0.85
    if s1.watched:
        out["watched_cpu_s"] = {str(w.pid): b - a for w, a, b in zip(g.watch, s0.watched, s1.watched)}
    out.update(extra)
    return out


# -- options ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Options:
    """One run: the scenario, the target and the load. ``None`` fields take the scenario's default."""

    scenario: str
    target: Target
    #: the server's PID, or the PIDs of every node of a fleet (CPU and RSS are then summed)
    server_pid: Union[int, list[int]] = 0
    #: broadcast: further servers of the same fleet; the receivers are split round-robin over
    #: ``target`` and these, the sender is on ``target``
    also: list[Target] = dataclasses.field(default_factory=list)
    #: further processes (a Redis, a broker) whose CPU time over the measured phase is
    #: reported apart, in ``watched_cpu_s`` ({"<pid>": seconds})
    watch_pids: list[int] = dataclasses.field(default_factory=list)
    #: awaited once every client is connected, before the load starts (echo, ack, broadcast,
    #: latency, binary): e.g. wait until every node of a fleet has subscribed to its channel,
    #: which python-socketio's managers do only on their first connection
    on_connected: Optional[Callable[[], Awaitable[None]]] = None
    conns: Optional[int] = None
    window: Optional[int] = None
    clients: Optional[int] = None
    concurrency: Optional[int] = None
    warmup_clients: Optional[int] = None
    settle: Optional[float] = None
    rate: Optional[float] = None
    duration: Optional[float] = None
    warmup: Optional[float] = None
    drain: float = 10.0
    max_ops: int = 5_000_000
    pipeline: bool = False
    echo_event: str = "echo"
    broadcast_event: str = "broadcast"
    quick: bool = False

    def filled(self) -> "Options":
        """A copy with every ``None`` replaced by the scenario's default (or its quick default)."""
        if self.scenario not in SCENARIOS:
            raise ValueError("unknown scenario %r (one of %s)" % (self.scenario, ", ".join(SCENARIOS)))
        if self.also and self.scenario != "broadcast":
            raise ValueError("several servers (also=...) are for the broadcast scenario only")
        o = dataclasses.replace(self)
        base = (QUICK if o.quick else DEFAULTS)[o.scenario]
        for k, v in base.items():
            if getattr(o, k) is None:
                setattr(o, k, v)
        for k, v in (("conns", 1), ("window", 1), ("clients", 1), ("concurrency", 1),
                     ("warmup_clients", 0), ("settle", 0.0), ("rate", 100.0)):
            if getattr(o, k) is None:
                setattr(o, k, v)
        if o.duration is None:
            o.duration = 0.3 if o.quick else 3.0
        if o.warmup is None:
            o.warmup = 0.1 if o.quick else 1.0
        if o.quick:
            o.drain = min(o.drain, 5.0)
        o.window = max(1, min(int(o.window or 1), MAX_WINDOW))
        return o


# Per-scenario defaults; ``quick`` shrinks them.
DEFAULTS: dict[str, dict[str, Any]] = {
    "echo": dict(conns=100, window=1),
    "ack": dict(conns=100, window=1),
    "broadcast": dict(conns=1000, window=4),
    "connect": dict(clients=5000, concurrency=64, warmup_clients=50),
    "idle": dict(clients=5000, concurrency=64, warmup_clients=20, settle=1.0),
    "latency": dict(conns=50, rate=2000.0),
    "binary": dict(conns=10, window=2),
}
QUICK: dict[str, dict[str, Any]] = {
    "echo": dict(conns=10, window=1),
    "ack": dict(conns=10, window=1),
    "broadcast": dict(conns=50, window=2),
    "connect": dict(clients=200, concurrency=16, warmup_clients=5),
    "idle": dict(clients=200, concurrency=32, warmup_clients=5, settle=0.2),
    "latency": dict(conns=10, rate=500.0),
    "binary": dict(conns=2, window=1),
}


# -- scenarios --------------------------------------------------------------------------------------

async def _connected(o: Options) -> None:
    if o.on_connected is not None:
        await o.on_connected()


async def _sc_echo(o: Options, probe: ServerProbe, g: _State, ack: bool) -> dict:
    window = o.window or 1
    clients = await _open_clients(g, o.conns or 1, _AckClient if ack else _EchoClient)
    g.conns = len(clients)
    try:
        await _connected(o)
        g.running = True
        g.phase = "warm-up"
        for c in clients:
            if ack:
                c.start_ids(list(range(window)))  # type: ignore[attr-defined]
            else:
                c.start(window)  # type: ignore[attr-defined]
        g.sent += window * len(clients)
        await _run_for(g, o.warmup or 0.0)
        g.measuring = True
        g.phase = "measuring"
        s0 = _Snapshot(probe, g.recv, watch=g.watch)
        await _run_for(g, o.duration or 0.0)
        g.running = False
        g.phase = "draining"
        drained = await _wait_until(lambda: g.recv >= g.sent, o.drain)
        s1 = _Snapshot(probe, g.recv, watch=g.watch)
        g.measuring = False
    finally:
        g.running = False
        _close_clients(clients)
    return _result("ack" if ack else "echo", s0, s1, g, "acks" if ack else "echo round trips",
                   conns=len(clients), window=window, pipeline=o.pipeline, drained=drained,
                   unanswered=g.sent - g.recv, latency_us=percentiles(g.latencies),
                   samples=len(g.latencies))


def split_round_robin(n: int, parts: int) -> list[int]:
    """How many of ``n`` clients go to each of ``parts`` servers dealt round-robin (first ones first)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


async def _sc_broadcast(o: Options, probe: ServerProbe, g: _State) -> dict:
    clients: list[_Client] = []
    sender: Optional[_Client] = None
    try:
        for target, count in zip(g.targets, split_round_robin(o.conns or 1, len(g.targets))):
            if count:
                opened = await _open_clients(g, count, _BroadcastClient, o.concurrency or 64, target=target)
                clients += opened
                if sender is None:
                    # The sender is the middle client of the first server. Most servers fan out
                    # in connection order (uWS in address order): a sender that came last would
                    # get each broadcast after everyone else, when its server has nothing left
                    # to do, so its next requests would start a new loop iteration each instead
                    # of being read together (4 in flight: 0.28 writes per delivery instead of
                    # 0.25), a cost of the position and not of the server.
                    sender = opened[len(opened) // 2]
    except BaseException:
        _close_clients(clients)
        raise
    assert sender is not None
    n = len(clients)
    g.conns = n
    window = o.window or 1
    try:
        await _connected(o)
        g.sender = sender
        g.running = True
        g.phase = "warm-up"
        sender.emit(window)  # type: ignore[attr-defined]
        await _run_for(g, o.warmup or 0.0)
        g.skip_seq = g.sent
        g.phase = "measuring"
        s0 = _Snapshot(probe, g.recv, watch=g.watch)
        sent0 = g.sent
        await _run_for(g, o.duration or 0.0)
        g.running = False
        g.phase = "draining"
        drained = await _wait_until(lambda: g.recv >= g.sent * n, o.drain)
        s1 = _Snapshot(probe, g.recv, watch=g.watch)
    finally:
        g.running = False
        _close_clients(clients)
    r = _result("broadcast", s0, s1, g, "deliveries", conns=n, window=window, pipeline=o.pipeline,
                drained=drained, undelivered=g.sent * n - g.recv, unexpected_events=g.extra,
                latency_us=percentiles(g.latencies), samples=len(g.latencies))
    wall = r["wall_s"]
    r["broadcasts"] = g.sent - sent0
    r["broadcasts_per_s"] = r["ops"] / n / wall if wall > 0 else 0.0
    r["server_cpu_us_per_broadcast"] = (r["server_cpu_s"] / (r["ops"] / n) * 1e6
                                        if r["ops"] and r["server_cpu_us_per_op"] is not None else None)
    r["receivers_per_target"] = {t.url(): c for t, c in zip(g.targets, split_round_robin(n, len(g.targets)))}
    return r


async def _sc_connect(o: Options, probe: ServerProbe, g: _State) -> dict:
    clients: list[_Client] = []
    failures: list[str] = []
    warm = await _open_clients(g, min(o.warmup_clients or 0, o.clients or 1), _Client)
    clients.extend(warm)
    limit = o.clients or 1
    state = {"done": 0}
    end_at = perf() + (o.duration or 0.0)
    lat = g.latencies

    async def worker() -> None:
        while state["done"] + len(failures) < limit and perf() < end_at and len(failures) <= 10:
            state["done"] += 1  # reserve one
            t0 = perf()
            try:
                c = await asyncio.wait_for(_connect(g, _Client), 15.0)
                clients.append(c)
                await asyncio.wait_for(c.ready, 15.0)
                lat.append(perf() - t0)
                g.recv += 1
            except (OSError, asyncio.TimeoutError) as exc:
                state["done"] -= 1
                failures.append(str(exc) or type(exc).__name__)

    g.phase = "measuring"
    g.running = True
    try:
        s0 = _Snapshot(probe, 0, watch=g.watch)
        await asyncio.gather(*[worker() for _ in range(o.concurrency or 1)])
        s1 = _Snapshot(probe, len(lat), watch=g.watch)
    finally:
        g.running = False
        _close_clients(clients)
    g.errors += len(failures)
    return _result("connect", s0, s1, g, "handshakes", concurrency=o.concurrency,
                   failures=failures[:5], latency_us=percentiles(lat), samples=len(lat))


async def _sc_idle(o: Options, probe: ServerProbe, g: _State) -> dict:
    warm = await _open_clients(g, o.warmup_clients or 0, _Client) if o.warmup_clients else []
    clients: list[_Client] = []
    lat = g.latencies
    try:
        await asyncio.sleep(o.settle or 0.0)
        gc.collect()
        g.phase = "connecting"
        s0 = _Snapshot(probe, 0, rss=True, watch=g.watch)
        clients = await _open_clients(g, o.clients or 1, _Client, o.concurrency or 64, latencies=lat)
        g.recv = len(clients)
        t_open = perf() - s0.t
        g.running = True
        g.phase = "idle"
        await asyncio.sleep(o.settle or 0.0)
        g.running = False
        s1 = _Snapshot(probe, len(clients), rss=True, watch=g.watch)
        alive = sum(1 for c in clients if not c.closed)
        # Then every client vanishes at once (RST): the CPU the server spends tearing down,
        # measured until its CPU time stops moving.
        _close_clients(clients)
        t_close = perf()
        disconnect_cpu = disconnect_sched = None
        if probe.pid:
            await _settle_cpu(probe, o.drain)
            disconnect_cpu = probe.cpu() - (s1.utime + s1.stime)
            disconnect_sched = probe.sched_cpu() - s1.ssched
        disconnect_wall = perf() - t_close
    finally:
        g.running = False
        _close_clients(warm)
        _close_clients(clients)
    n = len(clients)
    r = _result("idle", s0, s1, g, "idle clients", clients=n, concurrency=o.concurrency,
                alive=alive, rss_before=s0.rss, rss_after=s1.rss,
                bytes_per_client=(s1.rss - s0.rss) / n if n and probe.pid else None,
                connect_rate=n / t_open if t_open > 0 else 0.0,
                disconnect_cpu_s=disconnect_cpu, disconnect_sched_cpu_s=disconnect_sched,
                disconnect_wall_s=disconnect_wall,
                server_cpu_us_per_disconnect=(disconnect_cpu / n * 1e6
                                              if n and disconnect_cpu is not None else None),
                latency_us=percentiles(lat), samples=len(lat))
    # Throughput here is connections per second while opening (the settle time excluded).
    r["throughput"] = r["connect_rate"]
    return r


async def _sc_latency(o: Options, probe: ServerProbe, g: _State) -> dict:
    clients = await _open_clients(g, o.conns or 1, _LatencyClient)
    n = len(clients)
    rate = float(o.rate or 100.0)
    total = min(int(rate * ((o.warmup or 0.0) + (o.duration or 0.0))), o.max_ops)
    g.skip_seq = int(rate * (o.warmup or 0.0))
    sent_at = g.sent_at
    frames = g.frames
    s0 = None
    try:
        await _connected(o)
        g.running = True
        g.phase = "warm-up"
        t0 = perf()
        seq = 0
        while seq < total:
            now = perf()
            due = min(int((now - t0) * rate), total) - seq
            for _ in range(due):
                f = frames.sequenced_echo(seq)
                sent_at.append(perf())
                clients[seq % n].t.write(f)
                seq += 1
            g.sent = seq
            if s0 is None and seq >= g.skip_seq:
                g.phase = "measuring"
                s0 = _Snapshot(probe, g.recv, watch=g.watch)
            if now - t0 > ((o.warmup or 0.0) + (o.duration or 0.0)) * 2 + 5:
                break  # the loop fell far behind schedule; stop anyway
            await asyncio.sleep(0.001)
        if s0 is None:
            s0 = _Snapshot(probe, g.recv, watch=g.watch)
        g.running = False
        g.phase = "draining"
        drained = await _wait_until(lambda: g.recv >= g.sent, o.drain)
        s1 = _Snapshot(probe, g.recv, watch=g.watch)
    finally:
        g.running = False
        _close_clients(clients)
    return _result("latency", s0, s1, g, "echo round trips", conns=n, rate=rate, drained=drained,
                   unanswered=g.sent - g.recv, samples=len(g.latencies),
                   latency_us=percentiles(g.latencies))


async def _sc_binary(o: Options, probe: ServerProbe, g: _State) -> dict:
    clients = await _open_clients(g, o.conns or 1, _BinaryClient)
    window = o.window or 1
    try:
        await _connected(o)
        g.running = True
        g.phase = "warm-up"
        for c in clients:
            for _ in range(window):
                c.t.write(g.frames.binary)
        g.sent += window * len(clients)
        await _run_for(g, o.warmup or 0.0)
        g.phase = "measuring"
        s0 = _Snapshot(probe, g.recv, watch=g.watch)
        await _run_for(g, o.duration or 0.0)
        g.running = False
        g.phase = "draining"
        drained = await _wait_until(lambda: g.recv >= g.sent, o.drain)
        s1 = _Snapshot(probe, g.recv, watch=g.watch)
    finally:
        g.running = False
        _close_clients(clients)
    r = _result("binary", s0, s1, g, "64 KiB round trips", conns=len(clients), window=window,
                drained=drained, unanswered=g.sent - g.recv)
    r["mib_per_s"] = r["throughput"] * BIN_SIZE / 2 ** 20
    return r


async def _progress(g: _State, o: Options, out: TextIO, interval: float) -> None:
    """Rewrite one status line on ``out`` every ``interval`` seconds, and once more when cancelled.

    On a terminal the line is rewritten in place; elsewhere each update is a line of its own.
    """
    t0 = perf()
    last_t, last_n = t0, 0
    tty = out.isatty()
    width = 0
    final = False
    while not final:
        try:
            await asyncio.sleep(interval)
        except asyncio.CancelledError:
            final = True
        now = perf()
        n = g.recv
        rate = (n - last_n) / (now - last_t) if now > last_t else 0.0
        last_t, last_n = now, n
        line = "[%s %s] %5.1fs  %-10s %12s done  %10s/s  errors %d" % (
            o.scenario, o.target.url(), now - t0, "done" if final else g.phase, "{:,}".format(n),
            "{:,.0f}".format(rate), g.errors + g.lost)
        if tty:
            out.write("\r" + line.ljust(width) + ("\n" if final else ""))
            width = len(line)
        else:
            out.write(line + "\n")
        out.flush()
    raise asyncio.CancelledError


async def run_async(o: Options, progress: Optional[TextIO] = None, interval: float = 0.5,
                    probe: Optional[ServerProbe] = None) -> dict:
    """Run one scenario on the running loop; returns its result (see the module docstring).

    With ``progress`` a status line is written there every ``interval`` seconds. ``probe``
    measures the server instead of ``ServerProbe(o.server_pid)`` (a subclass may keep more).
    """
    o = o.filled()
    g = _State(o)
    if probe is None:
        probe = ServerProbe(o.server_pid)
    funcs = {
        "echo": lambda: _sc_echo(o, probe, g, False),
        "ack": lambda: _sc_echo(o, probe, g, True),
        "broadcast": lambda: _sc_broadcast(o, probe, g),
        "connect": lambda: _sc_connect(o, probe, g),
        "idle": lambda: _sc_idle(o, probe, g),
        "latency": lambda: _sc_latency(o, probe, g),
        "binary": lambda: _sc_binary(o, probe, g),
    }
    ticker = asyncio.ensure_future(_progress(g, o, progress, interval)) if progress is not None else None
    try:
        out = await funcs[o.scenario]()
    finally:
        if ticker is not None:
            ticker.cancel()
            try:
                await ticker
            except asyncio.CancelledError:
                pass
    out["target"] = o.target.url()
    if o.also:
        out["targets"] = [t.url() for t in [o.target] + list(o.also)]
    out["params"] = {k: getattr(o, k) for k in ("duration", "warmup", "conns", "window", "clients",
                                                "concurrency", "rate", "max_ops", "pipeline",
                                                "echo_event", "broadcast_event", "quick")}
    return out


def raise_fd_limit() -> None:
    """Lift the soft limit on open files to the hard one: thousands of clients need as many sockets."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))
    except (ValueError, OSError):
        pass


def run(o: Options, progress: Optional[TextIO] = None, probe: Optional[ServerProbe] = None) -> dict:
    """Run one scenario on a fresh event loop (uvloop when installed); returns its result.

    The garbage collector is off during the run (no pauses in the measured loops). ``probe``:
    as in :func:`run_async`.
    """
    try:
        import uvloop
        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    raise_fd_limit()
    gc.disable()
    try:
        out = runner(run_async(o, progress, probe=probe))
    finally:
        gc.enable()
    out["gen_pid"] = os.getpid()
    try:
        out["gen_cpus"] = sorted(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return out


# -- report ---------------------------------------------------------------------------------------

def _fmt(v: Optional[float], unit: str = "") -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return "{:,.0f}{}".format(v, unit)
    if v >= 100:
        return "{:.0f}{}".format(v, unit)
    return "{:.3g}{}".format(v, unit)


def _fmt_lat(us: Optional[float]) -> str:
    if us is None:
        return "-"
    if us >= 10_000:
        return "%.1f ms" % (us / 1000)
    if us >= 1000:
        return "%.2f ms" % (us / 1000)
    return "%.0f us" % us


def format_summary(results: list[dict]) -> str:
    """A text table of results: rate, latency p50/p90/p99, errors and (with a PID) server CPU."""
    with_cpu = any(r.get("server_cpu_us_per_op") is not None for r in results)
    head = "%-10s %-18s %10s %12s %10s %10s %10s %7s" % (
        "scenario", "load", "ops", "rate/s", "p50", "p90", "p99", "errors")
    if with_cpu:
        head += " %22s" % "server CPU us/op (u/s)"
    lines = [head, "-" * len(head)]
    for r in results:
        sc = r.get("scenario", "?")
        if "error" in r:
            lines.append("%-10s error: %s" % (sc, r["error"]))
            continue
        p = r.get("params", {})
        if sc in ("connect", "idle"):
            load = "%s clients x%s" % (r.get("clients") or p.get("clients") or "", p.get("concurrency"))
        elif sc == "latency":
            load = "%s conns @%s/s" % (p.get("conns"), _fmt(p.get("rate")))
        else:
            load = "%s conns x%s%s" % (p.get("conns"), p.get("window"), " pipe" if p.get("pipeline") else "")
        lat = r.get("latency_us") or {}
        errors = (r.get("errors") or 0) + (r.get("lost") or 0)
        missing = r.get("unanswered") or r.get("undelivered") or 0
        if r.get("drained") is False and missing > 0:
            errors += missing
        line = "%-10s %-18s %10s %12s %10s %10s %10s %7d" % (
            sc, load, "{:,}".format(r.get("ops", 0)), _fmt(r.get("throughput")),
            _fmt_lat(lat.get("p50")), _fmt_lat(lat.get("p90")), _fmt_lat(lat.get("p99")), errors)
        if with_cpu:
            cell = "-"
            if r.get("server_cpu_us_per_op") is not None:
                cell = "%s (%s/%s)" % (_fmt(r["server_cpu_us_per_op"]), _fmt(r.get("server_utime_us_per_op")),
                                       _fmt(r.get("server_stime_us_per_op")))
            line += " %22s" % cell
        lines.append(line)
    notes = []
    if any(r.get("scenario") == "broadcast" for r in results):
        notes.append("broadcast: ops = deliveries (one event to one client); latency = send -> the last client's delivery")
    if any(r.get("scenario") in ("connect", "idle") for r in results):
        notes.append("connect/idle: rate = handshakes/s; latency = one handshake (TCP + upgrade + OPEN + CONNECT)")
    if any(r.get("scenario") == "idle" and r.get("bytes_per_client") is not None for r in results):
        for r in results:
            if r.get("scenario") == "idle" and r.get("bytes_per_client") is not None:
                notes.append("idle: server RSS %.1f KiB per client" % (r["bytes_per_client"] / 1024))
    return "\n".join(lines + notes)
