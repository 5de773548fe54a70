"""Node's socket.io-client against the sync server running python-socketio's sync example app
(Flask): on fastio's native server (``start_server(app=flask)``) and as a ``WSGIApp`` under
Werkzeug's threaded server and gunicorn's gthread worker; WebSocket, long-polling and the upgrade between them."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))

from sync_example_app import HOSTS  # noqa: E402


def _response(event: dict[str, Any]) -> Any:
    return event["args"][0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["websocket", "polling", "upgrade"])
@pytest.mark.parametrize("host", list(HOSTS))
async def test_node_client_example_app(sio_client: Any, host: str, mode: str) -> None:
    loop = asyncio.get_running_loop()
    with HOSTS[host]() as (example, url):
        acks = {"question": ["node says hi"]}
        a = await sio_client(url, mode, sockets=[{"name": "/", "nsp": "/", "auth": {"name": "ann"}}], acks=acks)
        b = await sio_client(url, mode, sockets=[{"name": "/", "nsp": "/", "auth": {"name": "ben"}}])
        for proc in (a, b):
            await proc.expect("connect", socket="/")
            assert _response(await proc.expect("ev", type="my_response")) == {"data": "Connected", "count": 0}
            await proc.expect("ev", type="tick")  # the background thread
            await proc.send("emit", name="join", args=[{"room": "lobby"}], ack=True, id="join")
            assert (await proc.expect("ack", id="join"))["args"] == [["lobby"]]
        if mode == "upgrade":
            await a.expect("upgrade", transport="websocket")

        await a.send("emit", name="my_room_event", args=[{"room": "lobby", "data": "hello lobby"}])
        assert _response(await b.expect("ev", type="my_response")) == {"data": "hello lobby"}
        await b.send("emit", name="my_broadcast_event", args=[{"data": "all"}])
        for proc in (a, b):
            assert _response(await proc.expect("ev", type="my_response")) == {"data": "all", "from": "ben"}

        # an emit from a Flask view
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.get("/notify/lobby")
            assert r.status_code == 200 and r.text == "sent"
        for proc in (a, b):
            assert _response(await proc.expect("ev", type="my_response")) == {"data": "from flask"}

        # the server calls the client from a handler thread and acks with its answer
        await a.send("emit", name="ask", args=["who?"], ack=True, id="ask")
        assert (await a.expect("ack", id="ask"))["args"] == ["node says hi"]

        # a handler blocked in one client's thread does not hold up the other client
        await a.send("emit", name="block", args=[], ack=True, id="block", timeoutMs=30000)
        await b.send("emit", name="my_event", args=[{"data": "meanwhile"}])
        assert _response(await b.expect("ev", type="my_response")) == {"data": "meanwhile"}
        assert not a.seen("ack", id="block")
        await b.send("emit", name="unblock", args=[], ack=True, id="unblock")
        assert (await b.expect("ack", id="unblock"))["args"] == ["ok"]
        assert (await a.expect("ack", id="block"))["args"] == ["released"]

        # disconnect on request
        await b.send("emit", name="disconnect_request", args=[])
        assert (await b.expect("disconnect", socket="/"))["reason"] == "io server disconnect"
        if example is not None:  # (in this process)
            assert await loop.run_in_executor(None, example.disconnected.wait, 10)
            assert [(reason, name) for _, reason, name in example.disconnects] == [("server disconnect", "ben")]
