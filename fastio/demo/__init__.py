"""The fastio demo: a chat with nicknames, rooms, a typing indicator, online counts and images.

``fastio demo`` serves it on the native server: the page, the official socket.io-client browser
bundle (from the project's npm install, never a CDN), and the Socket.IO app below.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fastio

HERE = Path(__file__).resolve().parent
MAX_IMAGE = 4 * 1024 * 1024


def find_client_bundle() -> Path | None:
    """Locate socket.io-client's browser bundle installed by npm (FASTIO_CLIENT_BUNDLE overrides)."""
    env = os.environ.get("FASTIO_CLIENT_BUNDLE")
    if env:
        return Path(env)
    for base in [Path.cwd(), *Path.cwd().parents, HERE.parents[1]]:
        p = base / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
        if p.is_file():
            return p
    return None


class StaticFiles:
    """Serves the demo page and the client bundle for paths outside /socket.io/."""

    def __init__(self) -> None:
        bundle = find_client_bundle()
        self.files: dict[str, tuple[bytes, str]] = {
            "/": ((HERE / "index.html").read_bytes(), "text/html; charset=utf-8"),
        }
        if bundle is not None:
            self.files["/socket.io.min.js"] = (bundle.read_bytes(), "application/javascript")

    def handle_request(self, req: Any) -> None:
        """Answer GET for a known file, 404 otherwise."""
        item = self.files.get(req.path)
        if item is None or req.method not in ("GET", "HEAD"):
            req.respond(404, [("Content-Type", "text/plain")], b"Not Found")
            return
        body, ctype = item
        req.respond(200, [("Content-Type", ctype), ("Cache-Control", "no-cache")],
                    body if req.method == "GET" else b"")


def create_app(logger: bool = False) -> fastio.AsyncServer:
    """Build the chat's Socket.IO server."""
    sio = fastio.AsyncServer(cors_allowed_origins="*", logger=logger,
                             max_http_buffer_size=MAX_IMAGE + 65536)

    async def room_count(room: str) -> None:
        count = len(sio.manager.rooms.members("/", room))
        await sio.emit("online", {"room": room, "count": count}, to=room)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        nick = (auth or {}).get("nick") if isinstance(auth, dict) else None
        await sio.save_session(sid, {"nick": str(nick or "guest-" + sid[:4])[:32], "room": None})

    @sio.event
    async def join(sid: str, room: str) -> dict[str, Any]:
        room = str(room)[:64] or "lobby"
        async with sio.session(sid) as s:
            old = s["room"]
            s["room"] = room
            nick = s["nick"]
        if old is not None:
            await sio.leave_room(sid, old)
            await sio.emit("system", {"text": "%s left" % nick}, to=old)
            await room_count(old)
        await sio.enter_room(sid, room)
        await sio.emit("system", {"text": "%s joined %s" % (nick, room)}, to=room)
        await room_count(room)
        return {"room": room, "nick": nick, "count": len(sio.manager.rooms.members("/", room))}

    @sio.event
    async def message(sid: str, text: str) -> bool:
        s = await sio.get_session(sid)
        if s["room"] is None:
            return False
        await sio.emit("message", {"nick": s["nick"], "text": str(text)[:2000]}, to=s["room"], skip_sid=sid)
        return True

    @sio.event
    async def typing(sid: str, active: bool) -> None:
        s = await sio.get_session(sid)
        if s["room"] is not None:
            await sio.emit("typing", {"nick": s["nick"], "active": bool(active)}, to=s["room"], skip_sid=sid)

    @sio.event
    async def image(sid: str, data: dict[str, Any]) -> bool:
        s = await sio.get_session(sid)
        blob = data.get("data") if isinstance(data, dict) else None
        if s["room"] is None or not isinstance(blob, bytes) or len(blob) > MAX_IMAGE:
            return False
        await sio.emit("image", {"nick": s["nick"], "type": str(data.get("type", "image/png"))[:64],
                                 "data": blob}, to=s["room"], skip_sid=sid)
        return True

    @sio.event
    async def disconnect(sid: str, reason: str) -> None:
        s = await sio.get_session(sid)
        if s.get("room") is not None:
            await sio.emit("system", {"text": "%s left" % s["nick"]}, to=s["room"], skip_sid=sid)
            room = s["room"]
            sio.manager.rooms.leave("/", room, sid)
            await room_count(room)

    return sio


def main(host: str = "127.0.0.1", port: int = 8000, log_level: str | None = "info") -> None:
    """Run the demo until Ctrl-C."""
    sio = create_app()
    static = StaticFiles()
    if "/socket.io.min.js" not in static.files:
        print("warning: socket.io-client bundle not found; run `npm ci` in the project root")
    fastio.run(sio, host, port, other_app=static, log_level=log_level)
