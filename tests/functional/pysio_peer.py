"""A python-socketio server as a peer of fastio's servers in a test: served by uvicorn on a
free port (or as a server that puts its clients into a room), stopped with its pub/sub manager's
listener and connections; the wait until a freshly started listener hears the channel; and the
check that emits and acknowledgements cross between the two implementations."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Sequence

START_TIMEOUT = 10.0


async def serve_asgi(app: Any) -> tuple[Any, asyncio.Task, int]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1, a free port; return the uvicorn
    server, the task serving it and the port, once it listens."""
    import uvicorn

    userver = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(userver.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while not userver.started:
        assert not task.done(), "uvicorn did not start"
        assert loop.time() < deadline, "uvicorn did not start in time"
        await asyncio.sleep(0.01)
    return userver, task, userver.servers[0].sockets[0].getsockname()[1]


async def serve_room_server(pmgr: Any, room: str = "r",
                            **server_kwargs: Any) -> tuple[Any, Any, asyncio.Task, int]:
    """Serve, as :func:`serve_asgi` does, a python-socketio AsyncServer on the client manager
    ``pmgr`` (``server_kwargs`` passed on) that puts every connecting client into ``room``;
    return the server, the uvicorn server, the task serving it and the port."""
    import socketio as pysio

    psio = pysio.AsyncServer(client_manager=pmgr, async_mode="asgi", **server_kwargs)

    @psio.event
    async def connect(sid, environ, auth):
        await psio.enter_room(sid, room)

    userver, task, port = await serve_asgi(pysio.ASGIApp(psio))
    return psio, userver, task, port


async def stop_asgi(userver: Any, task: asyncio.Task) -> None:
    """Stop a server :func:`serve_asgi` started."""
    userver.should_exit = True
    await asyncio.wait_for(task, 10)


async def close_pubsub_manager(pmgr: Any) -> None:
    """Close a python-socketio pub/sub manager (Redis or aio-pika): its listener first, then
    its connections.  Left running, the listener retries on the closed connection and can be
    stuck at the loop's shutdown (seen on uvloop), hanging the test run."""
    listener = getattr(pmgr, "thread", None)
    if listener is not None:
        listener.cancel()
        await asyncio.wait({listener}, timeout=5)
    if getattr(pmgr, "pubsub", None) is not None:
        await pmgr.pubsub.aclose()
    if getattr(pmgr, "redis", None) is not None:
        await pmgr.redis.aclose()
    if getattr(pmgr, "publisher_connection", None) is not None:
        await pmgr.publisher_connection.close()


async def check_emits_and_acks_cross(fsio: Any, psio: Any, f_inbox: asyncio.Queue, p_client: Any,
                                     p_inbox: asyncio.Queue, timeout: float, room: str = "r") -> None:
    """A fastio server ``fsio`` and a python-socketio server ``psio`` on one pub/sub channel,
    each with a client in ``room`` whose ``news`` events go to ``f_inbox`` and ``p_inbox``: a
    room emit (with binary) from either reaches both clients as sent, and a call from fastio to
    the python-socketio server's client ``p_client`` comes back acknowledged."""
    await fsio.emit("news", {"from": "fastio", "bin": b"\x01\x02"}, to=room)
    assert await asyncio.wait_for(p_inbox.get(), timeout) == {"from": "fastio", "bin": b"\x01\x02"}
    assert await asyncio.wait_for(f_inbox.get(), timeout) == {"from": "fastio", "bin": b"\x01\x02"}
    await psio.emit("news", {"from": "python-socketio", "bin": b"\x03"}, to=room)
    assert await asyncio.wait_for(f_inbox.get(), timeout) == {"from": "python-socketio", "bin": b"\x03"}
    p_client.on("question", lambda q: q * 2)
    assert await fsio.call("question", "ab", to=p_client.get_sid(), timeout=timeout) == "abab"


async def until_heard(send: Callable[[], Awaitable[Any]], inbox: asyncio.Queue, expected: Any,
                      tries: int, wait: float) -> bool:
    """Call ``send`` until ``expected`` comes out of ``inbox`` within ``wait`` seconds of a
    call, ``tries`` times at the most; return whether it came.  (A pub/sub listener that is
    just starting gives no sign of being subscribed.)"""
    for _ in range(tries):
        await send()
        try:
            if await asyncio.wait_for(inbox.get(), wait) == expected:
                return True
        except asyncio.TimeoutError:
            pass
    return False


async def fence(emit: Callable[[Any], Awaitable[Any]], inboxes: Sequence[asyncio.Queue], timeout: float) -> None:
    """Emit a marker with ``emit`` and read each inbox up to it. One sender's messages arrive in
    order, so whatever it sent before (late copies of ``until_heard``'s probe) is gone from
    every inbox when this returns."""
    marker = "fence"
    await emit(marker)
    for inbox in inboxes:
        while await asyncio.wait_for(inbox.get(), timeout) != marker:
            pass
