"""``fastio run module:app`` with a sync ``fastio.Server`` in a ``WSGIApp`` (Flask): Socket.IO on the
native server, the Flask app in the WSGI thread pool (``--wsgi-threads``); stopped by a signal."""
from __future__ import annotations

import asyncio
import signal
import textwrap

import httpx
import pytest
import socketio


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]],
                         ids=["websocket", "polling", "upgrade"])
async def test_run_sync_wsgi_app(fastio_command, tmp_path, transports):
    (tmp_path / "sync_cli_app.py").write_text(textwrap.dedent(
        """
        import threading
        from flask import Flask
        import fastio as socketio

        sio = socketio.Server()
        flask_app = Flask(__name__)
        app = socketio.WSGIApp(sio, flask_app)

        @flask_app.route("/hello")
        def hello():
            return {"hello": "flask", "thread": threading.current_thread().name}

        @sio.event
        def add(sid, a, b):
            return a + b

        @sio.event
        def where(sid):
            return threading.current_thread().name
        """))
    srv = await fastio_command("run", "sync_cli_app:app", "--wsgi-threads", "4", "--log-level", "info",
                               cwd=tmp_path)
    url = f"http://127.0.0.1:{srv.port}"
    client = socketio.AsyncClient(reconnection=False)
    disconnected = asyncio.Event()
    client.on("disconnect", lambda *reason: disconnected.set())
    await client.connect(url, transports=transports, wait_timeout=10)
    try:
        assert await client.call("add", (40, 2), timeout=10) == 42
        assert (await client.call("where", timeout=10)).startswith("fastio-handler")
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            r = await http.get("/hello")
            assert r.status_code == 200, r.text
            assert r.json()["hello"] == "flask" and r.json()["thread"].startswith("fastio-wsgi")
            assert (await http.get("/nowhere")).status_code == 404
        srv.send_signal(signal.SIGTERM)
        assert await srv.wait(timeout=20) == 0, srv.describe()
        await asyncio.wait_for(disconnected.wait(), 10)
        assert "Traceback" not in srv.stderr.decode(), srv.describe()
    finally:
        if client.connected:
            await client.disconnect()
