"""Servers for the client tests: fastio's, in process, and Node's socket.io 4.8 (node_server.mjs).

Both answer the same events in the namespaces "/", "/chat" and "/admin" (see node_server.mjs for
the list) and report what they saw as dicts (``connect``, ``disconnect``, ``note``), so one test
body can run against either:

    backend = await fastio_backend.start()      # or node_backend / any_backend
    ... backend.url ...
    await backend.expect("connect", nsp="/chat")
    await backend.stop(); await backend.restart()   # same port

fastio's ``stop()`` is a graceful ``server.close()``; Node's kills the process (SIGKILL, by PID).
Node processes are always killed and reaped at teardown.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

import fastio
from fastio import exceptions

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NODE_SCRIPT = HERE / "node_server.mjs"
EVENT_TIMEOUT = 10.0
NAMESPACES = ("/", "/chat", "/admin")


def jsonable(value: Any) -> Any:
    """Bytes as {"$bin": base64}, the way node_server.mjs prints Buffers."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bin": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


class Backend:
    """A server the client tests connect to, and the server-side events it reported."""

    name = "?"

    def __init__(self) -> None:
        self.port = 0
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._consumed: set[int] = set()
        self.options: dict[str, Any] = {}

    scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def _record(self, event: str, **fields: Any) -> None:
        async with self._changed:
            self.events.append({"event": event, **fields})
            self._changed.notify_all()

    def seen(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]

    async def expect(self, event: str, timeout: float = EVENT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first not yet expected event named ``event`` with these field values."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while True:
                for i, e in enumerate(self.events):
                    if i not in self._consumed and e["event"] == event and \
                            all(e.get(k) == v for k, v in fields.items()):
                        self._consumed.add(i)
                        return e
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name} server reported no {event} {fields} within {timeout} s; "
                        f"it reported: {self.events}{self._diagnostics()}")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    def _diagnostics(self) -> str:
        return ""

    async def start(self, port: int = 0, **options: Any) -> "Backend":
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def restart(self) -> "Backend":
        """Start again on the same port, with the same options."""
        return await self.start(self.port, **self.options)

    async def close(self) -> None:
        await self.stop()


class FastioBackend(Backend):
    name = "fastio"

    def __init__(self) -> None:
        super().__init__()
        self.server: Any = None
        self.sio: Any = None
        self.auth: dict[tuple[str, str], Any] = {}

    def _make_app(self, **options: Any) -> Any:
        sio = fastio.AsyncServer(**options)
        backend = self

        def handlers(ns: str) -> None:
            @sio.on("connect", namespace=ns)
            async def connect(sid, environ, auth):
                if ns == "/admin" and not (isinstance(auth, dict) and auth.get("token") == "secret"):
                    raise exceptions.ConnectionRefusedError("unauthorized", {"reason": "bad token"})
                backend.auth[ns, sid] = auth or {}
                await backend._record("connect", nsp=ns, sid=sid, auth=jsonable(auth or {}),
                                      transport=sio.transport(sid, ns), recovered=False)

            @sio.on("disconnect", namespace=ns)
            async def disconnect(sid, reason):
                await backend._record("disconnect", nsp=ns, sid=sid, reason=reason)

            @sio.on("echo", namespace=ns)
            async def echo(sid, *args):
                return args

            @sio.on("echo_event", namespace=ns)
            async def echo_event(sid, *args):
                await sio.emit("echoed", args, to=sid, namespace=ns)

            @sio.on("note", namespace=ns)
            async def note(sid, *args):
                await backend._record("note", nsp=ns, sid=sid, args=jsonable(list(args)))

            @sio.on("whoami", namespace=ns)
            async def whoami(sid):
                return {"nsp": ns, "sid": sid, "auth": backend.auth.get((ns, sid))}

            @sio.on("server_transport", namespace=ns)
            async def server_transport(sid):
                return sio.transport(sid, ns)

            @sio.on("ask", namespace=ns)
            async def ask(sid, data):
                try:
                    answer = await sio.call("question", data, to=sid, namespace=ns, timeout=5)
                except exceptions.TimeoutError:
                    answer = {"error": "timeout"}
                await sio.emit("answer", answer, to=sid, namespace=ns)

            @sio.on("burst", namespace=ns)
            async def burst(sid, n):
                for i in range(n):
                    await sio.emit("seq", i, to=sid, namespace=ns)

            @sio.on("kick", namespace=ns)
            async def kick(sid):
                await sio.disconnect(sid, namespace=ns)

            @sio.on("drop", namespace=ns)
            async def drop(sid):
                sock = sio.manager.get_socket(sid, ns)
                await sio.eio.disconnect(sock.eio_sid)

            @sio.on("broadcast", namespace=ns)
            async def broadcast(sid, data):
                await sio.emit("news", data, namespace=ns)

            # "silent" has no handler: the server never acknowledges it

        for ns in NAMESPACES:
            handlers(ns)
        return sio

    async def start(self, port: int = 0, **options: Any) -> "FastioBackend":
        self.options = options
        self.sio = self._make_app(**options)
        self.server = await fastio.serve(self.sio, "127.0.0.1", port)
        self.port = self.server.port
        return self

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await asyncio.wait_for(server.close(), 10)


class NodeBackend(Backend):
    name = "node"

    def __init__(self) -> None:
        super().__init__()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._stderr: asyncio.Task[Any] | None = None
        self._stderr_text = b""
        self._listening: asyncio.Future[int] | None = None

    async def start(self, port: int = 0, **options: Any) -> "NodeBackend":
        node = os.environ.get("FASTIO_NODE") or shutil.which("node")
        if not node:
            pytest.fail("the Node client tests need Node.js (>= 18) on PATH", pytrace=False)
        if not (REPO / "node_modules" / "socket.io" / "package.json").is_file():
            pytest.fail(f"run `npm ci` in {REPO}: node_modules/socket.io is missing", pytrace=False)
        self.options = options
        self.scheme = "https" if options.get("tls") else "http"
        config = {"port": port, **options}
        self._listening = asyncio.get_running_loop().create_future()
        self.proc = await asyncio.create_subprocess_exec(
            node, str(NODE_SCRIPT), json.dumps(config),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=str(REPO))
        self._reader = asyncio.ensure_future(self._read(self.proc))
        self._stderr = asyncio.ensure_future(self._read_stderr(self.proc))
        try:
            self.port = await asyncio.wait_for(asyncio.shield(self._listening), EVENT_TIMEOUT)
        except (asyncio.TimeoutError, EOFError):
            await self.stop()
            raise AssertionError(f"node server did not start{self._diagnostics()}") from None
        return self

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "listening":
                    if self._listening is not None and not self._listening.done():
                        self._listening.set_result(int(event["port"]))
                    continue
                fields = {k: v for k, v in event.items() if k != "event"}
                await self._record(event["event"], **fields)
        finally:
            if self._listening is not None and not self._listening.done():
                self._listening.set_exception(EOFError())

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while True:
            chunk = await proc.stderr.read(4096)
            if not chunk:
                break
            if len(self._stderr_text) < 65536:
                self._stderr_text += chunk

    def _diagnostics(self) -> str:
        text = self._stderr_text.decode("utf-8", "replace").strip()
        return f"\nnode stderr:\n{text}" if text else ""

    async def stop(self) -> None:
        """Kill the process (SIGKILL, by its PID) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        for task in (self._reader, self._stderr):
            if task is not None:
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2)


@pytest.fixture
async def fastio_backend():
    backend = FastioBackend()
    try:
        yield backend
    finally:
        await backend.stop()


@pytest.fixture
async def node_backend():
    backend = NodeBackend()
    try:
        yield backend
    finally:
        await backend.stop()


@pytest.fixture(params=["fastio", "node"])
async def any_backend(request):
    backend = FastioBackend() if request.param == "fastio" else NodeBackend()
    try:
        yield backend
    finally:
        await backend.stop()


class Recorder:
    """Client-side handler calls, awaitable: ``await rec.wait("connect", 2)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()

    def add(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        self._changed.set()

    def handler(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.add(name, *args)
        return record

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]

    async def wait(self, name: str, count: int = 1, timeout: float = EVENT_TIMEOUT) -> list[tuple[Any, ...]]:
        """Wait until ``name`` was recorded ``count`` times; returns all its calls."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.of(name)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{name} seen {len(self.of(name))} times, expected {count}; "
                                     f"calls: {self.calls}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.of(name)


class LogRecords(logging.Handler):
    """Collects the records of a logger given to a client (``logger=records.logger``)."""

    _count = 0

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        LogRecords._count += 1
        self.records: list[logging.LogRecord] = []
        self._changed: asyncio.Event | None = None
        self.logger = logging.getLogger(f"tests.client.{LogRecords._count}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self._changed is not None:
            self._changed.set()

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def matching(self, prefix: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.getMessage().startswith(prefix)]

    async def wait(self, prefix: str, count: int = 1, timeout: float = EVENT_TIMEOUT) -> list[logging.LogRecord]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._changed = asyncio.Event()
        while len(self.matching(prefix)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"fewer than {count} log records {prefix!r}: {self.messages()}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.matching(prefix)


@pytest.fixture
def log_records():
    records = LogRecords()
    yield records
    records.logger.removeHandler(records)


@pytest.fixture
async def clients():
    """Clients made by a test; whatever is still connected or reconnecting is shut down."""
    made: list[Any] = []
    yield made
    for client in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 5)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost: {"key": path, "cert": path}."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return {"key": str(key), "cert": str(cert)}


@pytest.fixture
def rec():
    """A Recorder of client-side handler calls."""
    return Recorder()
