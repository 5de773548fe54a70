"""``fastio demo`` in a real browser: Debian's headless Chromium driven by playwright-core
(tests/integration/node/browser_demo.mjs).

Two pages join one room; one types (the other shows the typing indicator) and sends a message
(the other shows it); one shares a PNG made here through the file input (the other shows it as
an <img class="shared"> with the very same bytes); a screenshot lands in the test's tmp_path.
"""

from __future__ import annotations

import base64
import os
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from integration_support import NODE_DIR, REPO_ROOT, NodeProcess

CHROMIUM = os.environ.get("FASTIO_CHROMIUM", "/usr/bin/chromium")


def make_png(width: int, height: int) -> bytes:
    """An RGB PNG with a colour gradient, written by hand (zlib + struct)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // (width - 1), y * 255 // (height - 1), 128)) for x in range(width))
        for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def console_errors(browser: NodeProcess) -> list[dict]:
    """Console errors of the pages, but for the favicon the demo does not serve."""
    return [e for e in browser.seen("console_error") if not str(e.get("url") or "").endswith("/favicon.ico")]


@pytest.fixture
def browser_ready(node_ready) -> None:
    if not (REPO_ROOT / "node_modules" / "playwright-core" / "package.json").is_file():
        pytest.fail(f"the browser test needs playwright-core: run `npm ci` in {REPO_ROOT}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser test needs Chromium at {CHROMIUM} (Debian's package: "
            "`apt-get install chromium`, as scripts/bootstrap does; FASTIO_CHROMIUM=/path overrides)",
            pytrace=False,
        )


@pytest.mark.timeout(120)
async def test_chat_demo_in_headless_chromium(browser_ready, fastio_command, tmp_path: Path):
    srv = await fastio_command("demo", "--log-level", "warning")
    url = f"http://127.0.0.1:{srv.port}/"

    # the page and the socket.io-client bundle come from the demo server itself
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "fastio chat" in page.text
        bundle = await http.get("/socket.io.min.js")
        assert bundle.status_code == 200, "the demo did not find socket.io-client's bundle (npm ci)"
        assert "javascript" in bundle.headers["content-type"]

    png = make_png(24, 16)
    png_path = tmp_path / "dot.png"
    png_path.write_bytes(png)
    shot = tmp_path / "screenshots" / "demo-bob.png"
    shot.parent.mkdir()
    profile = tmp_path / "chromium-profile"

    cfg = {
        "url": url,
        "executablePath": CHROMIUM,
        "userDataDir": str(profile),
        "pngPath": str(png_path),
        "screenshot": str(shot),
        "room": "r1",
        "text": "hello bob",
        "timeoutMs": 90000,
    }
    browser = NodeProcess(NODE_DIR / "browser_demo.mjs", cfg)
    try:
        await browser.start()
        await browser.expect("launched", timeout=40)
        for who in ("alice", "bob"):
            ev = await browser.expect("joined", who=who, timeout=20)
            assert ev["room"] == "r1"
            assert ev["transport"] in ("polling", "websocket")
        assert (await browser.expect("online", who="alice", timeout=20))["status"] == "r1: 2 online"

        typing = await browser.expect("typing_shown", who="bob", timeout=20)
        assert typing["text"] == "alice is typing\u2026"
        seen = await browser.expect("message_seen", who="bob", timeout=20)
        assert (seen["nick"], seen["text"]) == ("alice", "hello bob")
        own = await browser.expect("own_message", who="alice", timeout=20)
        assert (own["nick"], own["text"]) == ("alice", "hello bob")
        await browser.expect("typing_cleared", who="bob", timeout=20)

        image = await browser.expect("image_seen", who="bob", timeout=20)
        assert image["nick"] == "alice"
        assert (image["naturalWidth"], image["naturalHeight"]) == (24, 16)
        assert base64.b64decode(image["base64"]) == png

        ev = await browser.expect("screenshot", timeout=30)
        await browser.expect("done", timeout=10)
        await browser.expect_exit(0, timeout=30)
    finally:
        await browser.aclose()

    assert ev["path"] == str(shot)
    assert shot.is_file() and shot.stat().st_size > 0
    width, height = png_size(shot.read_bytes())
    assert width > 0 and height > 0
    assert not browser.seen("page_error"), browser.describe()
    assert not console_errors(browser), browser.describe()
    # the demo server kept running the whole time
    assert srv.proc is not None and srv.proc.returncode is None, srv.describe()


@pytest.mark.timeout(60)
async def test_demo_page_shows_the_count_of_the_room_it_joined(browser_ready, fastio_command, tmp_path: Path):
    """A page alone in its room shows "r1: 1 online" once it has joined."""
    srv = await fastio_command("demo", "--log-level", "warning")
    (tmp_path / "unused.png").write_bytes(make_png(2, 2))
    cfg = {
        "url": f"http://127.0.0.1:{srv.port}/",
        "executablePath": CHROMIUM,
        "userDataDir": str(tmp_path / "chromium-profile"),
        "pngPath": str(tmp_path / "unused.png"),
        "screenshot": str(tmp_path / "unused-shot.png"),
        "scenario": "alone",
        "statusTimeoutMs": 5000,
        "timeoutMs": 45000,
    }
    browser = NodeProcess(NODE_DIR / "browser_demo.mjs", cfg)
    try:
        await browser.start()
        await browser.expect("joined", who="alice", timeout=40)
        status = await browser.expect("status", who="alice", timeout=20)
        await browser.expect_exit(0, timeout=30)
    finally:
        await browser.aclose()
    assert status["status"] == "r1: 1 online", browser.describe()
    assert not browser.seen("page_error"), browser.describe()
