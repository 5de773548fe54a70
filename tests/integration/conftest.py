"""Shared pieces of the integration tests: fastio mounted in real web stacks (uvicorn, aiohttp,
the native server hosting FastAPI), the ``fastio`` command, and the demo in a real browser.

The Socket.IO peer is the official socket.io-client in Node, driven through
tests/interop/node/sio_client.mjs by tests/interop/nodeproc.py (reused here, not copied).
Node, the npm packages of package-lock.json and Debian's Chromium are hard requirements: when
one is missing the tests fail with a message saying how to install it (scripts/bootstrap does
all of it), they are never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
INTEROP_DIR = REPO_ROOT / "tests" / "interop"
NODE_DIR = HERE / "node"
SIO_CLIENT = INTEROP_DIR / "node" / "sio_client.mjs"
VENV_BIN = Path(sys.executable).parent
FASTIO_CLI = VENV_BIN / "fastio"

sys.path.insert(0, str(INTEROP_DIR))

from nodeproc import (  # noqa: E402
    DEFAULT_TIMEOUT,
    NodeProcess,
    NodeProcessError,
    NodeProcesses,
    check_node_modules,
    node_executable,
    reap,
    run_to_exit,
    UnorderedNodeProcess,
)
from eventlog import EventLog as Log  # noqa: E402
from clientkit import (  # noqa: E402
    FINAL_TRANSPORT,
    MODES,
    TRANSPORTS,
    answer_clients,
    client_config,
    from_wire,
    to_wire,
)

# The test modules import the helpers below as ``integration_support``: several directories of
# the suite have a conftest.py and no __init__.py, so the name "conftest" is not this module's.
sys.modules["integration_support"] = sys.modules[__name__]

EVENT_TIMEOUT = 10.0


# -----------------------------------------------------------------------------
# the Node client, with events consumed in any order
# -----------------------------------------------------------------------------


SioClient = UnorderedNodeProcess


@pytest.fixture
def node_ready() -> None:
    """Fail (not skip) when Node or the npm packages are missing."""
    node_executable()
    check_node_modules()


@pytest.fixture
async def sio_client(node_ready) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``proc = await sio_client(url, mode, **config)``; every client is killed (by its
    PID) and reaped at teardown. Servers are started after this fixture, so they stop after
    the clients."""
    procs = NodeProcesses()

    async def factory(url: str, mode: str = "websocket", **config: Any) -> SioClient:
        proc = SioClient(SIO_CLIENT, client_config(url, mode, 60000, **config), name=f"sio_client-{mode}")
        return await procs.start(proc)

    yield factory
    await procs.aclose()


# -----------------------------------------------------------------------------
# what the server's handlers saw
# -----------------------------------------------------------------------------


def build_sio(log: Log, **options: Any) -> Any:
    """A fastio AsyncServer with the handlers the client scenarios use."""
    import fastio

    sio = fastio.AsyncServer(cors_allowed_origins="*", **options)

    @sio.event
    async def connect(sid, environ, auth):
        log.add(
            "connect",
            sid=sid,
            auth=auth,
            remote_addr=environ.get("REMOTE_ADDR"),
            remote_port=environ.get("REMOTE_PORT"),
            path=environ.get("PATH_INFO"),
        )

    @sio.event
    async def disconnect(sid, reason):
        log.add("disconnect", sid=sid, reason=reason)

    answer_clients(sio, log, three="triple", echo="echo", shout=("shout", "shouted"))

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return room

    @sio.event
    async def say(sid, room, text):
        log.add("say", sid=sid, room=room, text=text)
        await sio.emit("said", {"from": sid, "text": text}, room=room, skip_sid=sid)
        return "ok"

    @sio.event
    async def tick(sid, i):
        log.add("tick", sid=sid, i=i)
        await sio.emit("tock", i, skip_sid=sid)

    return sio


BLOB = bytes(range(256)) * 300  # 76.8 kB: several TCP segments, one HTTP body or WebSocket message
NESTED = {
    "name": "photo",
    "blob": BLOB,
    "parts": [b"\x00", {"deep": b"\xff" * 1000, "n": 2}, [b"x", "y"]],
    "empty": b"",
    "text": "h\u00e9llo \u2603 \U0001f600",
}


async def client_scenario(url: str, sio: Any, log: Log, sio_client: Callable[..., Any], mode: str,
                          server_port: int) -> None:
    """What every stack must carry for socket.io-client: connect (and upgrade), acks both ways,
    nested binary both ways, a server-initiated event, the right transport, a clean disconnect.
    The environ given to connect() names the real peer."""
    proc = await sio_client(url, mode, acks={"question": ["answer", 42]})
    sid = (await proc.expect("connect", socket="/"))["id"]
    if mode == "upgrade":
        await proc.expect("upgrade", transport="websocket")

    conn = await log.expect("connect", sid=sid)
    assert conn["remote_addr"] == "127.0.0.1", conn
    assert conn["remote_port"] is not None and str(conn["remote_port"]).isdigit(), conn
    assert 0 < int(conn["remote_port"]) < 65536 and int(conn["remote_port"]) != server_port, conn
    assert conn["auth"] is None
    assert conn["path"] == "/socket.io/"

    # client -> server acks
    await proc.send("emit", name="add", args=[40, 2], ack=True, id="a1")
    assert (await proc.expect("ack", id="a1"))["args"] == [42]
    await proc.send("emit", name="triple", args=["first"], ack=True, callback=True, id="a2")
    assert (await proc.expect("ack", id="a2"))["args"] == ["first", "second", {"third": 3}]

    # nested binary, client -> server, acknowledged with the same value
    await proc.send("emit", name="echo", args=[to_wire(NESTED)], ack=True, id="b1")
    back = await proc.expect("ack", id="b1")
    seen = await log.expect("echo", sid=sid)
    assert seen["data"] == NESTED
    assert isinstance(seen["data"]["blob"], bytes)
    assert from_wire(back["args"]) == [NESTED]

    # server -> client: an event with binary, and a call answered by the client
    await sio.emit("files", (NESTED, [b"\x01\x02", {"b": b"\x03"}]), to=sid)
    ev = await proc.expect("ev", type="files")
    assert from_wire(ev["args"]) == [NESTED, [b"\x01\x02", {"b": b"\x03"}]]
    assert await sio.call("question", {"q": "?"}, to=sid, timeout=10) == ("answer", 42)
    assert await sio.call("mirror", {"bin": b"\x00\x01mirror"}, to=sid, timeout=10) == {"bin": b"\x00\x01mirror"}

    # a plain emit and the server's reply event
    await proc.send("emit", name="shout", args=["hello"], id="e1")
    await proc.expect("emitted", id="e1")
    await log.expect("shout", sid=sid, text="hello")
    assert (await proc.expect("ev", type="shouted"))["args"] == ["HELLO"]

    assert sio.transport(sid) == FINAL_TRANSPORT[mode]

    # the client leaves; the server's handler is told why
    await proc.send("disconnect", socket="/")
    assert (await proc.expect("disconnect", socket="/"))["reason"] == "io client disconnect"
    assert (await log.expect("disconnect", sid=sid))["reason"] == "client disconnect"
    await proc.send("exit")
    await proc.wait_exit()


async def routes_beside_socketio(url: str, sio: Any, sio_client: Callable[..., Any], name: str,
                                 notice: dict[str, Any], not_found: Any = None) -> None:
    """The web application's own routes on the Socket.IO server's port, while a socket.io-client
    is connected over WebSocket: ``GET /api/hello?name=`` answers with ``name`` and the count of
    connected clients, ``POST /api/notify`` broadcasts its body as a "notice" event, an unknown
    path is the application's 404 (with the JSON body ``not_found`` when given), and a polling
    request with an unknown sid is Engine.IO's 400. The Socket.IO session still works after."""
    import httpx

    proc = await sio_client(url, "websocket")
    sid = (await proc.expect("connect", socket="/"))["id"]
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.get("/api/hello", params={"name": name})
        assert r.status_code == 200
        assert r.json() == {"hello": name, "clients": 1}
        # a route broadcasting to the connected Socket.IO clients
        r = await http.post("/api/notify", json=notice)
        assert r.status_code == 200 and r.json() == {"sent": True}
        assert (await proc.expect("ev", type="notice"))["args"] == [notice]
        # unknown paths are the application's 404, not Socket.IO's
        r = await http.get("/nowhere")
        assert r.status_code == 404
        if not_found is not None:
            assert r.json() == not_found
        # a polling request with an unknown sid is answered by Engine.IO (400), not the application
        r = await http.get("/socket.io/", params={"EIO": "4", "transport": "polling", "sid": "nope"})
        assert r.status_code == 400
    await proc.send("emit", name="add", args=[1, 2], ack=True, id="after-http")
    assert (await proc.expect("ack", id="after-http"))["args"] == [3]
    assert sio.transport(sid) == "websocket"


async def upgrades_promptly(url: str, path: str = "/socket.io", count: int = 100, limit_ms: int = 3000) -> None:
    """socket.io-client with its default transports, ``count`` times in a row: every
    polling -> WebSocket upgrade must finish within ``limit_ms`` (they take a few ms; a
    stalled one waits for the next ping, pingInterval = 25 s)."""
    proc = NodeProcess(
        NODE_DIR / "upgrade_probe.mjs",
        {"url": url, "path": path, "count": count, "upgradeTimeoutMs": limit_ms, "timeoutMs": 150000},
    )
    try:
        await proc.start()
        summary = await proc.expect("summary", timeout=count * (limit_ms / 1000 + 1) + 10)
        await proc.expect_exit(0)
    finally:
        await proc.aclose()
    stalled = [e for e in proc.seen("probe") if not e["upgraded"]]
    assert summary["stalled"] == 0 and not stalled, (
        f"{len(stalled)} of {count} upgrades did not finish within {limit_ms} ms: {stalled}"
    )


# -----------------------------------------------------------------------------
# a hand-written polling client: its own local port is known
# -----------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = b""
    return status, headers, body


async def raw_polling_client(port: int, log: Log, path: str = "/socket.io/") -> None:
    """Open an Engine.IO polling connection and a Socket.IO connection over one keep-alive TCP
    connection whose local port we know, check that connect() saw exactly that peer, then
    end it with a close packet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        local_port = writer.get_extra_info("sockname")[1]
        host = f"127.0.0.1:{port}"
        writer.write(f"GET {path}?EIO=4&transport=polling HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, _, body = await asyncio.wait_for(_read_response(reader), EVENT_TIMEOUT)
        assert status == 200, body
        assert body[:1] == b"0", body
        eio_sid = json.loads(body[1:])["sid"]

        def post(data: bytes) -> bytes:
            return (
                f"POST {path}?EIO=4&transport=polling&sid={eio_sid} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data

        writer.write(post(b"40"))
        status, _, body = await asyncio.wait_for(_read_response(reader), EVENT_TIMEOUT)
        assert status == 200 and body == b"ok", (status, body)
        conn = await log.expect("connect")
        assert conn["remote_addr"] == "127.0.0.1", conn
        assert conn["remote_port"] == str(local_port), (conn, local_port)

        writer.write(post(b"1"))
        status, _, body = await asyncio.wait_for(_read_response(reader), EVENT_TIMEOUT)
        assert status == 200, (status, body)
        await log.expect("disconnect", sid=conn["sid"])
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# -----------------------------------------------------------------------------
# ports and subprocesses
# -----------------------------------------------------------------------------


class ServerProcess:
    """A ``fastio`` command run as a subprocess; stdout and stderr are collected. Stopped (by
    its PID only) at teardown if still running."""

    READY = "fastio serving on http://"

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.port: int | None = None
        self._ready: asyncio.Event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if self.env:
            env.update(self.env)
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(self.cwd),
            env=env,
        )
        self._tasks = [
            asyncio.create_task(self._pump(self.proc.stdout, self.stdout, True)),
            asyncio.create_task(self._pump(self.proc.stderr, self.stderr, False)),
        ]

    async def _pump(self, stream: asyncio.StreamReader, buf: bytearray, watch: bool) -> None:
        while True:
            line = await stream.readline()
            if not line:
                break
            buf += line
            if watch and self.READY in line.decode("utf-8", "replace"):
                text = line.decode().strip()
                self.port = int(text.rsplit(":", 1)[1])
                self._ready.set()

    def describe(self) -> str:
        rc = self.proc.returncode if self.proc else None
        return (
            f"command {' '.join(self.argv)} (pid {self.pid}), exit status "
            f"{rc if rc is not None else 'still running'}\nstdout:\n{self.stdout.decode('utf-8', 'replace')}"
            f"\nstderr:\n{self.stderr.decode('utf-8', 'replace')}"
        )

    async def wait_ready(self, timeout: float = 20.0) -> bool:
        """True once the server printed its address; False if it exited first."""
        assert self.proc is not None
        ready = asyncio.ensure_future(self._ready.wait())
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            done, _ = await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            exited.cancel()
        if self._ready.is_set():
            return True
        if self.proc.returncode is not None:
            await self._drain()
            return False
        raise AssertionError(f"the server did not start within {timeout} s\n{self.describe()}")

    async def _drain(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 2)

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    async def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"the server is still running after {timeout} s\n{self.describe()}") from None
        await self._drain()
        return rc

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            await reap(proc, 5)
        await self._drain()
        for task in self._tasks:
            task.cancel()


@pytest.fixture
async def fastio_command() -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``srv = await fastio_command("run", "mod:attr")`` starts ``fastio <args> --host
    127.0.0.1 --port 0`` and waits for its "serving on" line, which names the port the OS chose
    (``srv.port``): no port is picked in advance, so none can be taken in between."""
    started: list[ServerProcess] = []

    async def factory(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> ServerProcess:
        if not FASTIO_CLI.exists():
            pytest.fail(f"no {FASTIO_CLI}: install fastio in the virtualenv (scripts/bootstrap)", pytrace=False)
        srv = ServerProcess([str(FASTIO_CLI), *args, "--host", "127.0.0.1", "--port", "0"], env=env, cwd=cwd)
        started.append(srv)
        await srv.start()
        if not await srv.wait_ready():
            raise AssertionError(f"the server failed to start\n{srv.describe()}")
        assert srv.port, srv.describe()
        return srv

    yield factory
    for srv in reversed(started):
        await srv.stop()


# -----------------------------------------------------------------------------
# in-process servers: uvicorn and aiohttp on port 0
# -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def uvicorn_server(app: Any, **config: Any) -> AsyncIterator[tuple[Any, int]]:
    """Run ``app`` under uvicorn in this event loop on 127.0.0.1, port 0; yields (server, port)."""
    import uvicorn

    cfg = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        loop="asyncio",
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
        **config,
    )
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve(), name="uvicorn")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn exited before it started")
        if loop.time() > deadline:
            raise AssertionError("uvicorn did not start within 10 s")
        # uvicorn has no started event to await; poll its flag
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        except asyncio.TimeoutError:
            server.force_exit = True
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)


@contextlib.asynccontextmanager
async def aiohttp_server(app: Any) -> AsyncIterator[int]:
    """Run the aiohttp ``app`` with an AppRunner on 127.0.0.1, port 0; yields the port."""
    from aiohttp import web

    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await asyncio.wait_for(runner.cleanup(), 15)
