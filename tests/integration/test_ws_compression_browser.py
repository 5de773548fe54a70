"""permessage-deflate with a browser's own WebSocket: headless Chromium (Debian's, driven by
playwright-core, tests/integration/node/browser_ws_deflate.mjs) offers the extension, fastio's
native server accepts it, and messages under and over the threshold cross both ways."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from integration_support import NODE_DIR, REPO_ROOT, NodeProcess

import fastio

CHROMIUM = os.environ.get("FASTIO_CHROMIUM", "/usr/bin/chromium")
SIZES = [100, 1000, 5000, 200_000]


@pytest.fixture
def browser_ready(node_ready) -> None:
    if not (REPO_ROOT / "node_modules" / "playwright-core" / "package.json").is_file():
        pytest.fail(f"the browser test needs playwright-core: run `npm ci` in {REPO_ROOT}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser test needs Chromium at {CHROMIUM} (FASTIO_CHROMIUM=/path overrides)",
                    pytrace=False)


@pytest.mark.timeout(120)
async def test_chromium_negotiates_and_exchanges_compressed_messages(browser_ready, tmp_path: Path):
    sio = fastio.AsyncServer(websocket_compression=True, cors_allowed_origins="*")
    received: list[int] = []

    @sio.event
    async def echo(sid, text):
        received.append(len(text))
        await sio.emit("echo", text, to=sid)

    srv = await fastio.serve(sio, "127.0.0.1", 0)
    cfg = {
        "url": f"ws://127.0.0.1:{srv.port}/socket.io/?EIO=4&transport=websocket",
        "executablePath": CHROMIUM,
        "userDataDir": str(tmp_path / "profile"),
        "sizes": SIZES,
        "timeoutMs": 90000,
    }
    browser = NodeProcess(NODE_DIR / "browser_ws_deflate.mjs", cfg)
    try:
        await browser.start()
        await browser.expect("launched", timeout=40)
        opened = await browser.expect("opened", timeout=40)
        assert opened["extensions"] == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        for size in SIZES:
            assert (await browser.expect("echo", timeout=20)) == {"event": "echo", "size": size, "ok": True}
        await browser.expect("done", timeout=20)
        await browser.expect_exit(0, timeout=30)
    finally:
        await browser.aclose()
        await srv.close()
    assert received == SIZES
    assert not browser.seen("page_error"), browser.describe()
