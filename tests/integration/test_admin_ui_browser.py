"""The Socket.IO Admin UI's own page (node_modules/@socket.io/admin-ui/ui/dist, served by the
fastio server itself through ``static_files``) in headless Chromium, logged in to a fastio
server instrumented with ``sio.instrument()`` (tests/integration/node/browser_admin_ui.mjs).

The page logs in through its connection form (refused with a wrong password first), then its
sockets, rooms and servers pages show the server's sockets, their rooms and the server id; a
screenshot lands in the test's tmp_path.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
import socketio as pysio
from integration_support import NODE_DIR, REPO_ROOT, NodeProcess

import fastio

CHROMIUM = os.environ.get("FASTIO_CHROMIUM", "/usr/bin/chromium")
UI_DIST = REPO_ROOT / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"


@pytest.fixture
def ui_ready(node_ready) -> None:
    for need in (REPO_ROOT / "node_modules" / "playwright-core" / "package.json", UI_DIST / "index.html"):
        if not need.is_file():
            pytest.fail(f"the Admin UI test needs {need}: run `npm ci` in {REPO_ROOT}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the Admin UI test needs Chromium at {CHROMIUM} (`apt-get install chromium`; "
                    "FASTIO_CHROMIUM=/path overrides)", pytrace=False)


@pytest.mark.timeout(120)
async def test_admin_ui_page_shows_the_sockets_and_rooms(ui_ready, tmp_path: Path):
    sio = fastio.AsyncServer()

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, (auth or {}).get("room", "nowhere"))

    admin = sio.instrument(auth={"username": "ops", "password": "pa55"}, namespace="/ops",
                           server_id="fastio-under-test", server_stats_interval=0.5)
    app = fastio.ASGIApp(sio, static_files={"/": str(UI_DIST) + "/"})
    server = await fastio.serve(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.port}"
    clients = [pysio.AsyncClient(reconnection=False) for _ in range(2)]
    shot = tmp_path / "admin-ui-sockets.png"
    browser = None
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            page = await http.get("/")
            assert page.status_code == 200 and "Socket.IO Admin UI" in page.text

        for client, room in zip(clients, ("room-red", "room-blue")):
            await client.connect(url, auth={"room": room}, wait_timeout=10)
        sids = [client.get_sid("/") for client in clients]

        browser = NodeProcess(NODE_DIR / "browser_admin_ui.mjs", {
            "url": url + "/",
            "serverUrl": url,
            "namespace": "/ops",
            "username": "ops",
            "password": "pa55",
            "wrongPassword": "nope",
            "socketIds": sids,
            "rooms": ["room-red", "room-blue"],
            "serverId": "fastio-under-test",
            "executablePath": CHROMIUM,
            "userDataDir": str(tmp_path / "chromium-profile"),
            "screenshot": str(shot),
            "timeoutMs": 90000,
        })
        await browser.start()
        await browser.expect("launched", timeout=40)
        refused = await browser.expect("refused", timeout=30)
        assert "invalid credentials" in refused["text"].lower()
        await browser.expect("connected", timeout=30)
        sockets = await browser.expect("sockets", timeout=30)
        shot_ev = await browser.expect("screenshot", timeout=30)
        rooms = await browser.expect("rooms", timeout=30)
        servers = await browser.expect("servers", timeout=30)
        await browser.expect("done", timeout=10)
        await browser.expect_exit(0, timeout=30)
    finally:
        if browser is not None:
            await browser.aclose()
        for client in clients:
            await asyncio.wait_for(client.disconnect(), 5)
        await admin.shutdown()
        await asyncio.wait_for(server.close(), 10)

    for sid in sids:
        assert sid in sockets["text"]
    assert "room-red" in rooms["text"] and "room-blue" in rooms["text"]
    assert "fastio-under-test" in servers["text"]
    assert shot_ev["path"] == str(shot) and shot.is_file() and shot.stat().st_size > 1000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Every request the page made off the test server is a font or icon CDN, never the server.
    blocked = [e["url"] for e in browser.seen("blocked")]
    assert all(not u.startswith(url) for u in blocked), blocked
    assert not browser.seen("page_error"), browser.describe()
