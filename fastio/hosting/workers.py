"""Several worker processes behind one port, with sticky long-polling sessions.

``fastio.run(sio, workers=N)`` (``fastio run module:sio --workers N``) forks N workers from a
small master process.  The master owns the listening socket.  For each accepted connection it
peeks (``MSG_PEEK``, nothing is consumed) at the request line, looks for ``sid=`` in the query
and passes the socket itself to the worker that owns the session (``SCM_RIGHTS`` over a UNIX
socket).  A request without a sid (a handshake, a direct WebSocket) goes to the next worker in
turn.  The worker adopts the socket with ``loop.connect_accepted_socket`` and the native
protocol reads the request from the kernel as on any accepted connection: nothing is parsed
twice.

Session ids name their worker: worker ``i`` sets its engine's ``sid_prefix`` to ``"i."``, so
the master routes without any shared state.  A connection stays with the worker it was handed
to; HTTP keep-alive connections therefore stay with the session that opened them (the
Node and Python clients open one connection per session).

The workers form a cluster through the master: each has a stream socket to it, and the master
relays every message a worker publishes to the others (``fastio.socketio.local_manager``).
Unless the server was given a ``client_manager``, each worker uses an ``AsyncLocalManager`` on
that socket, so room emits, acknowledgements, room changes and disconnects reach clients of
every worker.  A server given a pub/sub manager (Redis, AMQP) keeps it; each worker then takes a
host id of its own.

A worker that exits is started again (its clients reconnect; their sessions are gone).
SIGTERM or SIGINT to the master stops accepting, forwards SIGTERM to every worker (each closes
its sessions with a close packet, as ``fastio.run`` does) and returns when all have exited.

Workers are forked, so the server object is built once, in the master, and must not have been
started there.  POSIX only.
"""
from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import selectors
import signal
import socket
import struct
import sys
import time
import uuid
from typing import Any

from fastio._core.protocol import Limits
from fastio.base.util import new_event_loop
from fastio.hosting.asgi_host import AsgiHost
from fastio.hosting.router import Router
from fastio.hosting.tuning import tune_gc, tune_malloc
from fastio.socketio.local_manager import KIND_MESSAGE, KIND_READY, AsyncLocalManager, frame
from fastio.socketio.manager import AsyncManager

__all__ = ["run_workers", "sid_prefix", "worker_of"]

logger = logging.getLogger("fastio.hosting")

PEEK_SIZE = 4096          # a request line longer than this goes to the next worker in turn
PEEK_RETRY = 0.003        # an incomplete request line is peeked at again after this long
FIRST_REQUEST_TIMEOUT = 30.0  # a connection that sends no request line within this is closed
RESTART_DELAY = 1.0       # a worker that died this soon after starting is restarted after a pause
STOP_TIMEOUT = 30.0       # workers still running this long after SIGTERM are killed
MAX_RELAY_BUFFER = 64 * 1024 * 1024  # a worker that reads nothing loses messages past this
HANDOVER_LIMIT = 60 * 1024  # a larger request for another worker's session is answered here (400)
CHAN_MESSAGE = 64 * 1024    # the largest message on a worker's connection channel
RELAY_READ = 256 * 1024     # bytes read from a worker's relay socket at once
DEFER_ACCEPT = 5            # seconds the kernel holds a connection that has sent nothing yet
ACCEPT_PAUSE = 0.1          # out of file descriptors: accept again after this long
_HEADER = struct.Struct(">I")


def sid_prefix(index: int) -> str:
    """The prefix of the session ids made by worker ``index``."""
    return "%d." % index


def worker_of(request_head: bytes, workers: int) -> int | None:
    """The worker named by the ``sid`` query parameter of the request line at the start of
    ``request_head``, or None (no sid, or one no worker made)."""
    end = request_head.find(b"\r\n")
    line = request_head if end < 0 else request_head[:end]
    pos = line.find(b"sid=")
    while pos > 0 and line[pos - 1] not in b"?&":
        pos = line.find(b"sid=", pos + 4)
    if pos <= 0:
        return None
    return _index_at(line, pos + 4, workers)


def _index_at(text: bytes, start: int, workers: int) -> int | None:
    dot = text.find(b".", start, start + 8)
    if dot < 0:
        return None
    digits = text[start:dot]
    if not digits.isdigit():
        return None
    index = int(digits)
    return index if index < workers else None


def _owner_in_query(query: bytes, workers: int) -> int | None:
    """The worker named by the ``sid`` parameter of a query string, or None."""
    pos = query.find(b"sid=")
    while pos > 0 and query[pos - 1] != 0x26:  # "&"
        pos = query.find(b"sid=", pos + 4)
    if pos < 0:
        return None
    return _index_at(query, pos + 4, workers)


def _request_bytes(req: Any) -> bytes:
    """``req`` as it came on the wire (the body de-chunked, with its Content-Length)."""
    head = [b"%s %s HTTP/%s\r\n" % (req.method.encode("ascii"), req.url, req.http_version.encode("ascii"))]
    for name, value in req.headers:
        if name.lower() not in (b"content-length", b"transfer-encoding"):
            head.append(b"%s: %s\r\n" % (name, value))
    if req.body or req.method in ("POST", "PUT", "PATCH"):
        head.append(b"content-length: %d\r\n" % len(req.body))
    head.append(b"\r\n")
    body: bytes = req.body
    return b"".join(head) + body


class _Preloaded(asyncio.Protocol):
    """Stands in for ``proto`` while a handed-over connection is adopted: feeds it the bytes
    another worker already read, then steps aside."""

    def __init__(self, proto: Any, data: bytes) -> None:
        self.proto = proto
        self.data = data

    def connection_made(self, transport: Any) -> None:
        proto = self.proto
        proto.connection_made(transport)
        transport.set_protocol(proto)
        proto.data_received(self.data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.proto.connection_lost(exc)


class _WorkerRouter(Router):
    """The worker's router: a request for a session of another worker (a keep-alive connection
    a browser reuses across sessions) hands the connection over to that worker."""

    def __init__(self, app: Any, other_app: Any, index: int, workers: int, chan: socket.socket,
                 limits: Limits | None = None) -> None:
        super().__init__(app, other_app, limits)
        self.index = index
        self.workers = workers
        self.chan = chan
        self.sockets: dict[Any, socket.socket] = {}

    def handle_request(self, req: Any) -> None:
        query = req.query_string
        if b"sid=" in query and self.engine.handles_path(req.path):
            owner = _owner_in_query(query, self.workers)
            if owner is not None and owner != self.index and self.hand_over(req, owner):
                return
        super().handle_request(req)

    def hand_over(self, req: Any, owner: int) -> bool:
        """Pass the connection carrying ``req`` to worker ``owner``; False if it cannot go."""
        proto = req.protocol
        sock = self.sockets.get(proto)
        if sock is None or sock.fileno() < 0:
            return False
        data = _request_bytes(req)
        if len(data) > HANDOVER_LIMIT:
            return False
        fd = os.dup(sock.fileno())
        try:
            socket.send_fds(self.chan, [b"%d\n" % owner + data], [fd])
        except OSError as exc:
            logger.info("could not hand a connection to worker %d: %s", owner, exc)
            return False
        finally:
            os.close(fd)
        # The other worker owns the connection now; this worker's copy goes quietly.
        proto.close_transport()
        return True

    def connection_closed(self, proto: Any) -> None:
        """A TCP connection ended."""
        self.sockets.pop(proto, None)
        super().connection_closed(proto)


# -- the worker --------------------------------------------------------------------------------


class _WorkerServer:
    """A native server without a listening socket: it serves the connections the master passes."""

    def __init__(self, app: Any, other_app: Any, index: int, workers: int, host: str, port: int,
                 chan: socket.socket, bus: socket.socket, limits: Limits | None = None,
                 shutdown_timeout: float = 10.0) -> None:
        self.app = app
        self.shutdown_timeout = shutdown_timeout
        self.other_app = other_app
        self.index = index
        self.chan = chan
        self.bus = bus
        self.router = _WorkerRouter(app, other_app, index, workers, chan, limits)
        if host not in ("", "0.0.0.0", "::"):
            self.router.local_addr = (host, port)
        self.engine = self.router.engine
        self.manager: AsyncLocalManager | None = None
        self.stop = asyncio.Event()
        self.adopting: set[asyncio.Task[None]] = set()

    def _join_cluster(self) -> None:
        self.engine.sid_prefix = sid_prefix(self.index)
        manager = getattr(self.app, "manager", None)
        if manager is None:  # an Engine.IO server: nothing to share
            return
        if type(manager) is AsyncManager:
            if manager.get_namespaces():
                raise RuntimeError("the server has clients already; workers need a fresh server")
            local = AsyncLocalManager(self.bus)
            local.encode = manager.encode
            local.set_server(self.app)
            self.app.manager = local
            self.manager = local
        elif hasattr(manager, "host_id"):
            # Forked workers would share the master's id and ignore each other's messages.
            manager.host_id = uuid.uuid4().hex

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tune_malloc()
        self._join_cluster()
        if isinstance(self.other_app, AsgiHost):
            await self.other_app.startup()
        self.engine.ensure_started()
        self.router.start_sweeper()  # the connection limits and timeouts
        initialize = getattr(self.app, "initialize_manager", None)
        if initialize is not None:
            initialize()
        if self.manager is not None:
            await self.manager.ready()
            await self.manager.send_ready()
        else:
            ready = getattr(getattr(self.app, "manager", None), "ready", None)
            if ready is not None:  # a pub/sub manager given by the application (Redis, AMQP)
                try:
                    await asyncio.wait_for(ready(), 10)
                except asyncio.TimeoutError:
                    logger.warning("worker %d: the client manager is not subscribed after 10 s", self.index)
            self.bus.setblocking(True)
            self.bus.sendall(frame(KIND_READY))
        self.chan.setblocking(False)
        loop.add_reader(self.chan.fileno(), self._on_chan)

    def _on_chan(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.chan, CHAN_MESSAGE, 8)
            except BlockingIOError:
                return
            except OSError:
                msg, fds = b"", []
            if not msg and not fds:
                # The master is gone: serve no more.
                loop.remove_reader(self.chan.fileno())
                self.stop.set()
                return
            data = msg[1:] if msg[:1] == b"f" else b""  # a request another worker read
            for fd in fds:
                task = loop.create_task(self._adopt(fd, data))
                self.adopting.add(task)
                task.add_done_callback(self.adopting.discard)

    async def _adopt(self, fd: int, data: bytes) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            return
        router = self.router

        def new_protocol() -> Any:
            proto = router.new_protocol()
            router.sockets[proto] = sock
            return _Preloaded(proto, data) if data else proto

        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await asyncio.get_running_loop().connect_accepted_socket(new_protocol, sock)
        except OSError as exc:
            # The peer left before the connection was adopted.
            logger.debug("could not adopt a connection: %s", exc)
            sock.close()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.remove_reader(self.chan.fileno())
        except (ValueError, OSError):
            pass
        router = self.router
        router.limits.shutting_down = True
        router.stop_sweeper()
        shutdown = getattr(self.app, "shutdown", None)
        if shutdown is not None:
            await shutdown()
        for proto in list(router.connections):
            proto.close_transport()
        # Clients that read get what was queued for them; the rest are aborted at the deadline.
        if not await router.wait_closed(self.shutdown_timeout):
            logger.warning("worker %d: %d connection(s) still open %.1f s after shutdown; aborting them",
                           self.index, len(router.connections), self.shutdown_timeout)
            router.abort_all()
        if isinstance(self.other_app, AsgiHost):
            await self.other_app.shutdown()


def _worker_main(app: Any, other_app: Any, index: int, workers: int, host: str, port: int,
                 chan: socket.socket, bus: socket.socket, cpu: int | None, limits: Limits | None = None,
                 shutdown_timeout: float = 10.0) -> int:
    """Run one worker until SIGTERM/SIGINT or until the master goes away."""
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except (AttributeError, OSError):
            pass
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = _WorkerServer(app, other_app, index, workers, host, port, chan, bus, limits, shutdown_timeout)

    async def main() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop.set)
        await server.start()
        tune_gc()
        await server.stop.wait()
        logger.info("worker %d shutting down", index)
        await server.close()

    try:
        loop.run_until_complete(main())
    except Exception:
        logger.exception("worker %d failed", index)
        return 1
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0


# -- the master --------------------------------------------------------------------------------


class _Worker:
    """The master's view of one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid = 0
        self.started = 0.0
        self.chan: socket.socket | None = None   # SOCK_SEQPACKET: connections to the worker
        self.bus: socket.socket | None = None    # SOCK_STREAM: relayed pub/sub frames
        self.inbuf = bytearray()
        self.out = bytearray()
        # Connections waiting for the worker to take them, with the message that goes along.
        self.backlog: collections.deque[tuple[socket.socket, bytes]] = collections.deque()
        self.ready = False
        self.restart_at: float | None = None


class _Master:
    """The process that owns the port: routes connections, relays cluster messages, and
    starts, restarts and stops the workers (a blocking ``selectors`` loop, no asyncio, so
    forking a replacement worker from it is safe)."""

    def __init__(self, app: Any, other_app: Any, host: str, port: int, workers: int,
                 pin: bool, limits: Limits | None = None, shutdown_timeout: float = 10.0) -> None:
        self.app = app
        self.limits = limits
        self.shutdown_timeout = shutdown_timeout
        self.other_app = other_app
        self.host = host
        self.workers = [_Worker(i) for i in range(workers)]
        self.listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                             else socket.AF_INET, backlog=4096, reuse_port=False)
        self.listener.setblocking(False)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            # Linux: accept() returns once the request has arrived, so the first peek finds it
            # (no wait for readability per connection).
            self.listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT)
        self.port = self.listener.getsockname()[1]
        cpus = sorted(os.sched_getaffinity(0)) if pin and hasattr(os, "sched_getaffinity") else []
        self.cpus = cpus if len(cpus) > 1 else []
        self.sel: selectors.BaseSelector | None = None
        self.next = 0
        self.pending: dict[socket.socket, float] = {}   # peeked at, request line not complete
        self.retry: list[tuple[float, socket.socket]] = []
        self.next_sweep = 0.0
        self.stopping = False
        self.stop_deadline = 0.0
        self.announced = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.signals: set[int] = set()
        self.rbuf = bytearray(RELAY_READ)
        self.rview = memoryview(self.rbuf)
        self.accept_paused_until = 0.0

    # -- workers --

    def _spawn(self, w: _Worker) -> None:
        chan_m, chan_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        bus_m, bus_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            rc = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                self._close_in_child(chan_m, bus_m)
                cpu = self.cpus[w.index % len(self.cpus)] if self.cpus else None
                rc = _worker_main(self.app, self.other_app, w.index, len(self.workers), self.host, self.port,
                                  chan_w, bus_w, cpu, self.limits, self.shutdown_timeout)
            except BaseException:
                logger.exception("worker %d failed to start", w.index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
        chan_w.close()
        bus_w.close()
        chan_m.setblocking(False)
        bus_m.setblocking(False)
        w.pid, w.started, w.chan, w.bus = pid, time.monotonic(), chan_m, bus_m
        w.inbuf.clear()
        w.out.clear()
        w.ready = False
        w.restart_at = None
        if self.sel is not None:
            self._register(w)
        logger.info("worker %d started (pid %d)", w.index, pid)

    def _register(self, w: _Worker) -> None:
        assert self.sel is not None and w.bus is not None and w.chan is not None
        self.sel.register(w.bus, selectors.EVENT_READ, ("bus", w))
        self.sel.register(w.chan, selectors.EVENT_READ | (selectors.EVENT_WRITE if w.backlog else 0), ("chan", w))

    def _close_in_child(self, *mine: socket.socket) -> None:
        if self.sel is not None:
            self.sel.close()
        self.listener.close()
        self.wake_r.close()
        self.wake_w.close()
        for sock in mine:
            sock.close()
        for sock in self.pending:
            sock.close()
        for w in self.workers:
            for owned in (w.chan, w.bus, *(s for s, _ in w.backlog)):
                if owned is not None:
                    owned.close()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for w in self.workers:
                if w.pid == pid:
                    self._worker_exited(w, status)

    def _worker_exited(self, w: _Worker, status: int) -> None:
        w.pid = 0
        for sock in (w.chan, w.bus):
            if sock is not None:
                if self.sel is not None:
                    try:
                        self.sel.unregister(sock)
                    except (KeyError, ValueError):
                        pass
                sock.close()
        w.chan = w.bus = None
        w.out.clear()
        w.inbuf.clear()
        if self.stopping:
            return
        code = os.waitstatus_to_exitcode(status)
        logger.warning("worker %d exited (%s); starting it again", w.index,
                       "signal %d" % -code if code < 0 else "status %d" % code)
        print("fastio: worker %d exited (%s), restarting" % (w.index, code), file=sys.stderr, flush=True)
        early = time.monotonic() - w.started < RESTART_DELAY
        w.restart_at = time.monotonic() + (RESTART_DELAY if early else 0.0)

    # -- connections --

    def _accept(self) -> None:
        assert self.sel is not None
        for _ in range(256):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The listener stays readable: pause instead of spinning on it.
                    logger.error("accept failed: %s; pausing for %.1f s", exc, ACCEPT_PAUSE)
                    self.sel.unregister(self.listener)
                    self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                    return
                continue
            sock.setblocking(False)
            if not self._route(sock):
                self.pending[sock] = time.monotonic() + FIRST_REQUEST_TIMEOUT
                self.sel.register(sock, selectors.EVENT_READ, ("conn", sock))

    def _route(self, sock: socket.socket) -> bool:
        """Hand ``sock`` to its worker once its request line is readable; False: not yet."""
        try:
            head = sock.recv(PEEK_SIZE, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            head = b""
        if not head:
            sock.close()
            return True
        if b"\r\n" not in head and len(head) < PEEK_SIZE:
            return False
        index = worker_of(head, len(self.workers))
        if index is None:
            index = self.next
            self.next = (index + 1) % len(self.workers)
        self._pass(self.workers[index], sock, b"c")
        return True

    def _pass(self, w: _Worker, sock: socket.socket, message: bytes) -> None:
        """Send ``sock`` (then closed here) to worker ``w`` with ``message``: ``c`` for a new
        connection, ``f`` + the request another worker read from it."""
        if not w.backlog and w.chan is not None:
            try:
                socket.send_fds(w.chan, [message], [sock.fileno()])
            except (BlockingIOError, InterruptedError):
                assert self.sel is not None
                self.sel.modify(w.chan, selectors.EVENT_READ | selectors.EVENT_WRITE, ("chan", w))
            except OSError:
                pass  # the worker is exiting; its successor gets the connection
            else:
                sock.close()
                return
        w.backlog.append((sock, message))

    def _flush_backlog(self, w: _Worker) -> None:
        assert self.sel is not None and w.chan is not None
        while w.backlog:
            sock, message = w.backlog[0]
            try:
                socket.send_fds(w.chan, [message], [sock.fileno()])
            except OSError:
                return
            w.backlog.popleft()
            sock.close()
        self.sel.modify(w.chan, selectors.EVENT_READ, ("chan", w))

    def _on_chan(self, w: _Worker) -> None:
        """A worker handed back a connection whose request is for another worker's session."""
        assert w.chan is not None
        while True:
            try:
                msg, fds, _flags, _addr = socket.recv_fds(w.chan, CHAN_MESSAGE, 8)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not msg and not fds:  # the worker is gone; it is reaped and started again
                assert self.sel is not None
                self.sel.unregister(w.chan)
                return
            target, _, data = msg.partition(b"\n")
            for fd in fds:
                sock = socket.socket(fileno=fd)
                index = int(target) if target.isdigit() and int(target) < len(self.workers) else w.index
                if self.stopping:
                    sock.close()
                else:
                    self._pass(self.workers[index], sock, b"f" + data)

    def _on_conn(self, sock: socket.socket) -> None:
        assert self.sel is not None
        self.sel.unregister(sock)
        if self._route(sock):
            del self.pending[sock]
        else:
            # Readable but no full request line yet: look again shortly instead of spinning on
            # the same peeked bytes.
            self.retry.append((time.monotonic() + PEEK_RETRY, sock))

    # -- the relay --

    def _on_bus(self, w: _Worker) -> None:
        assert w.bus is not None
        try:
            n = w.bus.recv_into(self.rbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if not n:
            assert self.sel is not None
            try:
                self.sel.unregister(w.bus)
            except KeyError:
                pass
            return
        buf = w.inbuf
        buf += self.rview[:n]
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            end = pos + 4 + size
            if len(buf) < end:
                break
            kind = buf[pos + 4:pos + 5]
            if kind == KIND_MESSAGE:
                chunk = bytes(buf[pos:end])
                for other in self.workers:
                    if other is not w and other.bus is not None:
                        self._relay(other, chunk)
            elif kind == KIND_READY:
                w.ready = True
                self._announce()
            pos = end
        del buf[:pos]

    def _relay(self, w: _Worker, chunk: bytes) -> None:
        assert w.bus is not None and self.sel is not None
        if not w.out:
            try:
                sent = w.bus.send(chunk)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                return
            if sent == len(chunk):
                return
            chunk = chunk[sent:]
            self.sel.modify(w.bus, selectors.EVENT_READ | selectors.EVENT_WRITE, ("bus", w))
        if len(w.out) + len(chunk) > MAX_RELAY_BUFFER:
            logger.error("worker %d reads no cluster messages; dropping one", w.index)
            return
        w.out += chunk

    def _flush_bus(self, w: _Worker) -> None:
        assert w.bus is not None and self.sel is not None
        try:
            sent = w.bus.send(w.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            w.out.clear()
            sent = 0
        del w.out[:sent]
        if not w.out:
            self.sel.modify(w.bus, selectors.EVENT_READ, ("bus", w))

    def _announce(self) -> None:
        if self.announced or not all(w.ready for w in self.workers):
            return
        self.announced = True
        print("fastio: %d workers (pids %s)" % (len(self.workers), " ".join(str(w.pid) for w in self.workers)),
              flush=True)
        print("fastio serving on http://%s:%d" % (self.host, self.port), flush=True)

    # -- the loop --

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.add(signum)

    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + STOP_TIMEOUT
        logger.info("shutting down %d workers", len(self.workers))
        assert self.sel is not None
        if not self.accept_paused_until:
            self.sel.unregister(self.listener)
        self.listener.close()
        waiting = {id(s) for _, s in self.retry}
        for sock in list(self.pending):
            if id(sock) not in waiting:
                self.sel.unregister(sock)
            sock.close()
        self.pending.clear()
        self.retry.clear()
        for w in self.workers:
            w.restart_at = None
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def _timeout(self, now: float) -> float | None:
        times = [t for t, _ in self.retry]
        times += [w.restart_at for w in self.workers if w.restart_at is not None]
        if self.accept_paused_until:
            times.append(self.accept_paused_until)
        if self.stopping:
            times.append(self.stop_deadline)
        if self.pending:
            times.append(now + 1.0)
        return max(0.0, min(times) - now) if times else None

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(self.wake_w.fileno())
        try:
            for w in self.workers:
                self._spawn(w)
            self.sel = sel = selectors.DefaultSelector()
            sel.register(self.listener, selectors.EVENT_READ, ("listen", None))
            sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
            for w in self.workers:
                self._register(w)
            self._loop()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for w in self.workers:
                if w.pid:
                    try:
                        os.kill(w.pid, signal.SIGKILL)
                        os.waitpid(w.pid, 0)
                    except (ProcessLookupError, ChildProcessError):
                        pass
            if self.sel is not None:
                self.sel.close()
            self.wake_r.close()
            self.wake_w.close()
            if not self.stopping:
                self.listener.close()

    def _loop(self) -> None:
        sel = self.sel
        assert sel is not None
        while True:
            now = time.monotonic()
            if self.stopping and (not any(w.pid for w in self.workers) or now >= self.stop_deadline):
                if any(w.pid for w in self.workers):
                    logger.warning("workers still running %.0f s after SIGTERM; killing them", STOP_TIMEOUT)
                return
            for key, mask in sel.select(self._timeout(now)):
                kind, obj = key.data
                if kind == "conn":
                    if obj in self.pending:
                        self._on_conn(obj)
                elif kind == "bus":
                    if obj.bus is not None and mask & selectors.EVENT_READ:
                        self._on_bus(obj)
                    if obj.bus is not None and mask & selectors.EVENT_WRITE and obj.out:
                        self._flush_bus(obj)
                elif kind == "chan":
                    if obj.chan is not None and mask & selectors.EVENT_READ:
                        self._on_chan(obj)
                    if obj.chan is not None and mask & selectors.EVENT_WRITE:
                        self._flush_backlog(obj)
                elif kind == "listen":
                    if not self.stopping:
                        self._accept()
                elif kind == "wake":
                    try:
                        while self.wake_r.recv(64):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
            self._after_select()

    def _after_select(self) -> None:
        assert self.sel is not None
        signals, self.signals = self.signals, set()
        if signal.SIGCHLD in signals:
            self._reap()
        if signals & {signal.SIGINT, signal.SIGTERM}:
            self._begin_stop()
        now = time.monotonic()
        if self.retry:
            due = [s for t, s in self.retry if t <= now]
            self.retry = [(t, s) for t, s in self.retry if t > now]
            for sock in due:
                if sock in self.pending:
                    if self._route(sock):
                        del self.pending[sock]
                    else:
                        self.sel.register(sock, selectors.EVENT_READ, ("conn", sock))
        if self.pending and now >= self.next_sweep:
            self.next_sweep = now + 1.0
            waiting = {id(s) for _, s in self.retry}
            for sock, deadline in list(self.pending.items()):
                if deadline <= now:
                    del self.pending[sock]
                    if id(sock) in waiting:
                        self.retry = [(t, s) for t, s in self.retry if s is not sock]
                    else:
                        self.sel.unregister(sock)
                    sock.close()
        for w in self.workers:
            if w.restart_at is not None and w.restart_at <= now and not self.stopping:
                self._spawn(w)
        if self.accept_paused_until and self.accept_paused_until <= now:
            self.accept_paused_until = 0.0
            if not self.stopping:
                self.sel.register(self.listener, selectors.EVENT_READ, ("listen", None))


def run_workers(app: Any, host: str, port: int, workers: int, *, other_app: Any = None,
                pin_cpus: bool = True, limits: Limits | None = None, shutdown_timeout: float = 10.0) -> None:
    """Serve ``app`` (a fastio AsyncServer or Engine.IO AsyncServer, not yet started) with
    ``workers`` forked worker processes behind one listening socket, until SIGINT/SIGTERM; then
    stop every worker gracefully and return.

    ``other_app`` is a host for every other path (an ``AsgiHost``), as with ``fastio.run``.
    ``pin_cpus``: pin worker ``i`` to the i-th CPU this process may run on (when there are
    several).  ``limits`` (``fastio._core.protocol.Limits``) and ``shutdown_timeout`` apply to
    every worker's connections as they do to ``fastio.run``'s.  The master prints ``fastio serving on http://host:port`` (the bound port, also
    when ``port`` is 0) once every worker serves.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if not hasattr(os, "fork"):
        raise RuntimeError("workers need os.fork (POSIX)")
    _Master(app, other_app, host, port, workers, pin_cpus, limits, shutdown_timeout).run()
