"""The same scenarios against Node's socket.io server and against fastio, seen by the official
socket.io-client: the observations (answers, errors, their order) must be equal.

tests/interop/node/sio_features_server.mjs is Node's server running the scenarios;
build_fastio_server below is the same application written with fastio's Node-style API;
tests/interop/node/sio_features_client.mjs runs the clients and prints what they observed.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

import fastio
from fastio.exceptions import ConnectionRefusedError
from fastio.socketio.operators import BroadcastTimeoutError
from nodeproc import NodeProcess

pytestmark = pytest.mark.timeout(90)


class NoAdmin(Exception):
    """A middleware failure that is not a ConnectionRefusedError (Node's plain Error)."""


def build_fastio_server() -> fastio.AsyncServer:
    sio = fastio.AsyncServer(cors_allowed_origins="*")
    steps: dict[str, list[str]] = {}

    def mw1(sid: str, environ: Any, auth: Any) -> None:
        steps[sid] = ["mw1"]
        if not auth or auth.get("token") != "ok":
            raise ConnectionRefusedError("unauthorized", {"code": 401})

    async def mw2(sid: str, environ: Any, auth: Any) -> None:
        await asyncio.sleep(0.001)
        steps[sid].append("mw2")

    sio.use(mw1)
    sio.use(mw2)

    def no_admin(sid: str, environ: Any, auth: Any) -> None:
        raise NoAdmin("no admin")

    async def later(sid: str, environ: Any, auth: Any) -> None:
        await asyncio.sleep(0.001)
        raise ConnectionRefusedError("later", {"retry": 5})

    sio.of("/admin").use(no_admin)
    sio.of("/async").use(later)

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any) -> None:
        if sid in steps:
            steps[sid].append("connection")
        rooms = (auth or {}).get("rooms")
        if rooms:
            await sio.of("/").in_(sid).sockets_join(rooms)
        if (auth or {}).get("name"):
            (await sio.in_(sid).fetch_sockets())[0].data["name"] = auth["name"]

    # -- scenario "events" --
    log: list[list[str]] = []
    sio.on_any(lambda sid, event, *args: log.append(["any", event]))

    def mw1(sid: str, event: str, args: list[Any]) -> None:
        log.append(["mw1", event])

    async def mw2(sid: str, event: str, args: list[Any]) -> None:
        await asyncio.sleep(0.001)
        log.append(["mw2", event])
        if event == "forbidden":
            raise PermissionError("not allowed")

    sio.use_events(mw1)
    sio.use_events(mw2, on_error=lambda sid, exc: log.append(["error", str(exc)]))

    @sio.on("echo")
    def echo(sid: str, *args: Any) -> list[Any]:
        log.append(["handler", "echo"])
        return list(args)

    sio.on("forbidden", lambda sid, *args: log.append(["handler", "forbidden"]))
    sio.on("log", lambda sid: list(log))

    # -- scenario "operators" --
    def select(opts: dict[str, Any]) -> Any:
        op = sio.of("/")
        if opts.get("to"):
            op = op.to(opts["to"])
        if opts.get("except"):
            op = op.except_(opts["except"])
        return op

    @sio.on("op")
    async def op(sid: str, opts: dict[str, Any]) -> str:
        await select(opts).emit(opts["event"], opts["event"] + "!")
        return "ok"

    @sio.on("fetch")
    async def fetch(sid: str, opts: dict[str, Any]) -> list[Any]:
        found = await select(opts).fetch_sockets()
        return sorted([s.data["name"], sorted(r for r in s.rooms if r != s.sid)] for s in found)

    @sio.on("join")
    async def join(sid: str, opts: dict[str, Any]) -> str:
        await select(opts).sockets_join(opts["room"])
        return "ok"

    @sio.on("leave")
    async def leave(sid: str, opts: dict[str, Any]) -> str:
        await select(opts).sockets_leave(opts["room"])
        return "ok"

    @sio.on("kick")
    async def kick(sid: str, opts: dict[str, Any]) -> str:
        await select(opts).disconnect_sockets()
        return "ok"

    sio.on("steps", lambda sid: steps.get(sid, []))

    @sio.event
    async def run(sid: str, opts: dict[str, Any]) -> dict[str, Any]:
        op = sio.to(opts["room"])
        if opts.get("except"):
            op = op.except_(opts["except"])
        try:
            responses = await op.timeout(opts["timeoutMs"] / 1000).emit_with_ack("q", 7)
            return {"err": None, "responses": sorted(responses)}
        except BroadcastTimeoutError as exc:
            return {"err": str(exc), "responses": sorted(exc.responses)}

    return sio


async def observe_fastio(scenario: str, transports: list[str]) -> list[dict[str, Any]]:
    sio = build_fastio_server()
    server = await fastio.serve(sio, host="127.0.0.1", port=0)
    try:
        return await run_client(f"http://127.0.0.1:{server.port}", scenario, transports)
    finally:
        await server.close()


async def observe_node(scenario: str, transports: list[str]) -> list[dict[str, Any]]:
    async with NodeProcess("sio_features_server.mjs", {"timeoutMs": 60000}) as node:
        port = (await node.expect("listening"))["port"]
        return await run_client(f"http://127.0.0.1:{port}", scenario, transports)


async def run_client(url: str, scenario: str, transports: list[str]) -> list[dict[str, Any]]:
    async with NodeProcess("sio_features_client.mjs", {"url": url, "scenario": scenario,
                                                       "transports": transports,
                                                       "timeoutMs": 30000}) as client:
        await client.expect("done", timeout=30)
        return [{k: v for k, v in e.items() if k != "event"} for e in client.seen("observed")]


def split(observed: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[str, Any]]]:
    """(the ordered observations, the broadcast deliveries as a sorted list: clients of a room
    receive a broadcast in no particular order)."""
    ordered = [o for o in observed if o["what"] != "asked"]
    asked = sorted((o["name"], o["x"]) for o in observed if o["what"] == "asked")
    return ordered, asked


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_middleware_refusal_matches_node(transports: list[str]) -> None:
    node = await observe_node("middleware", transports)
    ours = await observe_fastio("middleware", transports)
    assert ours == node
    # What Node answered, spelled out (so a change on either side is visible here):
    assert node == [
        {"what": "bad token", "connect_error": "unauthorized", "data": {"code": 401}},
        {"what": "good token", "connected": True},
        {"what": "steps", "steps": ["mw1", "mw2", "connection"]},
        {"what": "/admin", "connect_error": "no admin", "data": None},
        {"what": "/async", "connect_error": "later", "data": {"retry": 5}},
        {"what": "/nowhere", "connect_error": "Invalid namespace", "data": None},
    ]


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_broadcast_ack_with_timeout_matches_node(transports: list[str]) -> None:
    node = await observe_node("broadcast_ack", transports)
    ours = await observe_fastio("broadcast_ack", transports)
    assert split(ours) == split(node)
    ordered, asked = split(node)
    assert ordered == [
        {"what": "all answer", "err": None, "responses": ["a7", "b7"]},
        {"what": "one silent", "err": "operation has timed out", "responses": ["a7", "b7"]},
        {"what": "nobody", "err": None, "responses": []},
        {"what": "except", "err": None, "responses": ["a7", "b7"]},
    ]
    assert asked == sorted([("a", 7), ("b", 7), ("a", 7), ("b", 7), ("c", 7), ("a", 7), ("b", 7)])


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_operators_match_node(transports: list[str]) -> None:
    node = await observe_node("operators", transports)
    ours = await observe_fastio("operators", transports)
    assert ours == node
    got = {o["name"]: o["events"] for o in node if o["what"] == "got"}
    assert got == {
        "a": [["e1", "e1!"], ["e3", "e3!"], ["e4", "e4!"], ["end", "end!"]],
        "b": [["e3", "e3!"], ["e4", "e4!"], ["disconnect", "io server disconnect"]],
        "c": [["e2", "e2!"], ["e3", "e3!"], ["end", "end!"]],
        "d": [["e2", "e2!"], ["end", "end!"]],
    }
    fetched = [o["answer"] for o in node if o["what"] == "fetch"]
    assert fetched == [
        [["a", ["r"]], ["b", ["r", "vip"]]],
        [["a", ["r"]], ["b", ["r", "vip"]], ["c", ["blue", "r"]]],
        [["a", ["r"]], ["c", ["blue", "r"]]],
        [["a", ["r"]], ["c", ["blue", "r"]], ["d", []]],
    ]


@pytest.mark.parametrize("transports", [["websocket"]], ids=["websocket"])
async def test_event_middleware_and_on_any_match_node(transports: list[str]) -> None:
    node = await observe_node("events", transports)
    ours = await observe_fastio("events", transports)
    assert ours == node
    assert node[0] == {"what": "echo", "answer": [1, {"two": 2}]}
    assert node[1] == {"what": "forbidden", "answer": {"error": "operation has timed out"}}
    assert node[2]["answer"] == [
        ["any", "echo"], ["mw1", "echo"], ["mw2", "echo"], ["handler", "echo"],
        ["any", "forbidden"], ["mw1", "forbidden"], ["mw2", "forbidden"], ["error", "not allowed"],
        ["any", "log"], ["mw1", "log"], ["mw2", "log"],
    ]
