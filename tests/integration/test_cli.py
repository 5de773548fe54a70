"""The ``fastio`` command: ``fastio run module:attr`` as a real subprocess on a free port,
reached by python-socketio's AsyncClient, stopped by a signal; and ``fastio --version``."""

from __future__ import annotations

import asyncio
import signal
import textwrap
from pathlib import Path

import httpx
import pytest
import socketio
from integration_support import FASTIO_CLI, REPO_ROOT, run_to_exit

import fastio


async def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, bytes, bytes]:
    """Run ``fastio <args>`` to its end (killed, by its PID, if it takes over 20 s); returns its
    exit status, stdout and stderr."""
    return await run_to_exit([str(FASTIO_CLI), *args], 20, cwd=cwd)


class Peer:
    """A python-socketio AsyncClient that records how it was disconnected."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.disconnected = asyncio.Event()
        self.reasons: list[object] = []

        @self.client.event
        async def disconnect(reason=None):
            self.reasons.append(reason)
            self.disconnected.set()

    async def connect(self, url: str, transports: list[str]) -> None:
        await self.client.connect(url, transports=transports, wait_timeout=10)

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@pytest.fixture
async def peer():
    p = Peer()
    yield p
    await p.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "transports,sig",
    [
        (["websocket"], signal.SIGINT),
        (["polling"], signal.SIGINT),
        (["polling", "websocket"], signal.SIGTERM),
    ],
    ids=["websocket-SIGINT", "polling-SIGINT", "upgrade-SIGTERM"],
)
async def test_run_module_attr(fastio_command, peer, transports, sig):
    srv = await fastio_command("run", "tests.integration.example_app:sio", "--log-level", "info")
    url = f"http://127.0.0.1:{srv.port}"
    assert f"fastio serving on {url}" in srv.stdout.decode()

    await peer.connect(url, transports)
    assert await peer.client.call("add", (40, 2), timeout=10) == 42
    assert await peer.client.call("whoami", timeout=10) == "sio"
    if len(transports) == 1:
        assert peer.client.transport() == transports[0]

    srv.send_signal(sig)
    rc = await srv.wait(timeout=20)
    assert rc == 0, srv.describe()
    await asyncio.wait_for(peer.disconnected.wait(), 10)
    # the server closed the connection on its way out (a close packet, not a dropped connection)
    assert peer.reasons == [peer.client.reason.SERVER_DISCONNECT], peer.reasons
    assert "Traceback" not in srv.stderr.decode(), srv.describe()
    # the port is free again
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{url}/socket.io/?EIO=4&transport=polling")


@pytest.mark.timeout(60)
async def test_run_asgi_app_wrapping_a_server(fastio_command, peer):
    srv = await fastio_command("run", "tests.integration.example_app:app", "--log-level", "warning")
    url = f"http://127.0.0.1:{srv.port}"
    await peer.connect(url, ["polling", "websocket"])
    assert await peer.client.call("whoami", timeout=10) == "asgi"
    assert await peer.client.call("add", (1, 2), timeout=10) == 3
    # the FastAPI app of the ASGIApp serves the other paths
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.get("/api/hello")
        assert r.status_code == 200
        assert r.json() == {"hello": "from fastio run", "clients": 1}
        assert (await http.get("/nowhere")).status_code == 404

    srv.send_signal(signal.SIGINT)
    assert await srv.wait(timeout=20) == 0, srv.describe()
    await asyncio.wait_for(peer.disconnected.wait(), 10)


@pytest.mark.timeout(60)
async def test_run_module_from_the_current_directory(fastio_command, peer, tmp_path):
    (tmp_path / "cli_tmp_app.py").write_text(
        textwrap.dedent(
            """
            import fastio

            server = fastio.AsyncServer()

            @server.on("*")
            async def any_event(event, sid, *args):
                return {"event": event, "args": list(args)}
            """
        )
    )
    srv = await fastio_command("run", "cli_tmp_app:server", cwd=tmp_path)
    await peer.connect(f"http://127.0.0.1:{srv.port}", ["websocket"])
    assert await peer.client.call("anything", [1, "two"], timeout=10) == {"event": "anything", "args": [[1, "two"]]}
    srv.send_signal(signal.SIGINT)
    assert await srv.wait(timeout=20) == 0, srv.describe()
    await asyncio.wait_for(peer.disconnected.wait(), 10)


@pytest.mark.timeout(30)
async def test_run_bad_spec_fails():
    returncode, out, err = await run_cli("run", "tests.integration.example_app", "--port", "0", cwd=REPO_ROOT)
    assert returncode != 0
    assert b"module:attr" in out + err


@pytest.mark.timeout(30)
async def test_version():
    returncode, out, err = await run_cli("--version")
    assert returncode == 0, err
    assert out.decode().strip() == f"fastio {fastio.__version__}"
