"""A client manager for several server processes joined by a pub/sub backend.

Each process keeps its own clients in the compiled room table.  An emit is delivered to the local
recipients at once (one encode, the compiled fan-out) and published on a channel; every other
process delivers it to its own recipients of the same rooms.  Room changes, disconnects and
acknowledgements for a client of another process travel the same way.

The messages are python-socketio's (JSON objects with ``method``: ``emit``, ``callback``,
``disconnect``, ``enter_room``, ``leave_room``, ``close_room``, and the sender's ``host_id``), so
fastio and python-socketio processes can share a channel, and python-socketio's write-only
managers can emit to fastio's clients.

A backend subclasses ``AsyncPubSubManager`` and implements python-socketio's two extension
points: ``async _publish(data)`` (send one message, a dict) and ``async _listen()`` (an async
generator of received messages: bytes, str or dicts).  Messages are handed to ``_publish`` in
order, one at a time, by a writer task, so an emit never waits for the backend.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import logging
import uuid
from functools import partial
from typing import Any, AsyncIterator, Callable, Hashable

from fastio.socketio.manager import AsyncManager
from fastio.socketio.operators import BroadcastFlags

__all__ = ["AsyncPubSubManager"]

logger = logging.getLogger("fastio.socketio")


class _OrjsonCodec:
    """JSON for the pub/sub messages with orjson, which encodes what fastio's packets encode
    (datetimes, dataclasses, non-string keys), so data that reaches local clients also crosses.
    ``dumps`` returns str, as the standard library's does."""

    def __init__(self) -> None:
        import orjson

        self._dumps = orjson.dumps
        self._option = orjson.OPT_NON_STR_KEYS
        self.loads = orjson.loads

    def dumps(self, obj: Any) -> str:
        return self._dumps(obj, option=self._option).decode()  # type: ignore[no-any-return]


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    """Binary values become Socket.IO placeholders; their bytes go to ``attachments``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(v, attachments) for v in data]
    if isinstance(data, dict):
        return {k: _deconstruct(v, attachments) for k, v in data.items()}
    return data


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, list):
        return [_reconstruct(v, attachments) for v in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True and isinstance(data.get("num"), int) and len(data) == 2:
            return attachments[data["num"]]
        return {k: _reconstruct(v, attachments) for k, v in data.items()}
    return data


def _is_many(value: Any) -> bool:
    return isinstance(value, (list, tuple, set, frozenset))


def _has_binary(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, (list, tuple)):
        return any(_has_binary(v) for v in data)
    if isinstance(data, dict):
        return any(_has_binary(v) for v in data.values())
    return False


def pack_args(args: list[Any]) -> tuple[list[Any], bool]:
    """python-socketio's form of arguments with binary values: ``[deconstructed, *base64]``."""
    if not _has_binary(args):
        return args, False
    attachments: list[bytes] = []
    return [_deconstruct(args, attachments), *[base64.b64encode(a).decode("ascii") for a in attachments]], True


def unpack_args(data: Any, binary: Any) -> Any:
    """The inverse of ``pack_args``."""
    if binary and isinstance(data, list) and data:
        return _reconstruct(data[0], [base64.b64decode(a) for a in data[1:]])
    return data


class AsyncPubSubManager(AsyncManager):
    """python-socketio's ``AsyncPubSubManager``: emits, rooms, disconnects and acknowledgements
    shared by the server processes on one channel.

    :param channel: the channel (or exchange) shared by the cooperating processes.
    :param write_only: publish only: an emitter outside the server processes, usable without a
                       server (``await mgr.emit(...)``).
    :param logger: a ``logging.Logger`` for the manager's messages (default: the server's).
    :param json: a module with ``dumps``/``loads`` for the messages (default: orjson).
    """

    name = "asyncpubsub"

    def __init__(self, channel: str = "socketio", write_only: bool = False, logger: logging.Logger | None = None,
                 json: Any = None) -> None:
        super().__init__()
        self.channel = channel
        self.write_only = write_only
        self.host_id = uuid.uuid4().hex
        self.logger = logger
        self.json: Any = json if json is not None else _OrjsonCodec()
        self.thread: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Published in order by one writer task: (message, its JSON, a future to resolve or None).
        self._outbox: collections.deque[tuple[dict[str, Any], bytes, asyncio.Future[None] | None]] = \
            collections.deque()
        self._writer: asyncio.Task[None] | None = None
        self._warned: set[str] = set()

    # -- life cycle --------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Start listening on the channel (the server calls this when it starts serving; it can
        be called again harmlessly)."""
        super().initialize()
        if not self.write_only and (self.thread is None or self.thread.done()):
            self.thread = asyncio.get_running_loop().create_task(self._thread())
            self._get_logger().info("%s backend initialized.", self.name)

    async def ready(self) -> None:
        """Wait until this process receives what others publish (at start-up and in tests);
        returns at once for a write-only manager."""
        if self.write_only:
            return
        if self.thread is None:
            self.initialize()
        await self._subscribed.wait()

    def _set_subscribed(self) -> None:
        """Backends call this once their subscription is active (``ready()`` returns then)."""
        self._subscribed.set()

    async def aclose(self) -> None:
        """Publish what is queued (up to 5 s), stop listening and release the backend."""
        if self._writer is not None and not self._writer.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 5)
            except (asyncio.TimeoutError, Exception):
                pass
        if self.thread is not None:
            self.thread.cancel()
            try:
                await self.thread
            except asyncio.CancelledError:
                pass
            self.thread = None
        await self._close_backend()

    async def _close_backend(self) -> None:
        """Backends release their connections here."""

    # -- the server's calls -------------------------------------------------------------------------

    def _emit(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any,
              callback: Callable[..., Any] | None, ignore_queue: bool) -> int:
        """Deliver locally, then publish for the other processes (unless ``ignore_queue``)."""
        if ignore_queue or (callback is not None and isinstance(room, str) and self.is_connected(room, namespace)):
            # This process's clients only; or a client of this process, whose ack comes back here.
            return self.emit_local(event, data, namespace, room, skip_sid, callback)
        message, payload = self._emit_message(event, data, namespace, room, skip_sid, callback)
        n = self.emit_local(event, data, namespace, room, skip_sid, callback)
        self._send(message, payload)
        return n

    def _emit_message(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any,
                      callback: Callable[..., Any] | None) -> tuple[dict[str, Any], bytes]:
        remote_callback = None
        if callback is not None:
            if self.server is None:
                raise RuntimeError("Callbacks can only be issued from the context of a server.")
            if room is None or _is_many(room):
                raise ValueError("Cannot use callback without a single room (sid) set.")
            remote_callback = [room, namespace, self._generate_ack_id(room, callback)]
        args, binary = pack_args(list(data) if isinstance(data, tuple) else [data])
        message = {
            "method": "emit", "event": event, "data": args, "binary": binary, "namespace": namespace,
            "room": list(room) if _is_many(room) else room,
            "skip_sid": list(skip_sid) if _is_many(skip_sid) else skip_sid,
            "callback": remote_callback, "host_id": self.host_id}
        try:
            # Encoded before anything is delivered, so data that cannot cross fails as a whole.
            payload = self._encode_message(message)
        except TypeError:
            if remote_callback is not None:
                self.discard_callback(room, namespace, callback)  # type: ignore[arg-type]
            raise
        return message, payload

    async def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
                   skip_sid: Any = None, callback: Callable[..., Any] | None = None,
                   to: Any = None, **kwargs: Any) -> None:
        """Emit an event here and in every other process; returns once it is published (so a
        write-only emitter may exit after it).  ``ignore_queue=True``: this process only."""
        room = to if to is not None else room
        namespace = namespace or "/"
        if kwargs.get("ignore_queue") or (
                callback is not None and isinstance(room, str) and self.is_connected(room, namespace)):
            self.emit_local(event, data, namespace, room, skip_sid, callback)
            return
        message, payload = self._emit_message(event, data, namespace, room, skip_sid, callback)
        self.emit_local(event, data, namespace, room, skip_sid, callback)
        done = asyncio.get_running_loop().create_future()
        self._send(message, payload, done)
        await done

    # -- Node's adapter operations (the broadcast operators) -----------------------------------------

    async def broadcast(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                        exclude: list[Hashable] | None, flags: BroadcastFlags) -> None:
        """Deliver here and publish python-socketio's emit message, with two keys fastio's
        processes read and python-socketio's ignore: ``except_rooms`` and ``volatile``
        (``flags.local``: nothing is published)."""
        self.broadcast_local(namespace, args, to, exclude, flags)
        if flags.local:
            return
        packed, binary = pack_args(list(args[1:]))
        message = {"method": "emit", "event": args[0], "data": packed, "binary": binary, "namespace": namespace,
                   "room": to, "skip_sid": None, "callback": None, "host_id": self.host_id}
        if exclude:
            message["except_rooms"] = exclude
        if flags.volatile:
            message["volatile"] = True
        done = asyncio.get_running_loop().create_future()
        self._send(message, self._encode_message(message), done)
        await done

    def _cluster_only_here(self, operation: str, flags: BroadcastFlags) -> None:
        # The other operators' messages between processes are not defined yet: they act on
        # this process's sockets, and say so once.
        if not flags.local and operation not in self._warned:
            self._warned.add(operation)
            self._get_logger().warning("%s reaches only this process's sockets with %s", operation,
                                       type(self).__name__)

    async def broadcast_with_ack(self, namespace: str, args: list[Any], to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags,
                                 client_count: Callable[[int], None], on_answer: Callable[[Any], None]) -> int:
        """This process's clients only, for now (a warning says so once)."""
        self._cluster_only_here("emit_with_ack", flags)
        return await super().broadcast_with_ack(namespace, args, to, exclude, flags, client_count, on_answer)

    async def fetch_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                            flags: BroadcastFlags) -> list[Any]:
        """This process's sockets only, for now (a warning says so once)."""
        self._cluster_only_here("fetch_sockets", flags)
        return await super().fetch_sockets(namespace, to, exclude, flags)

    async def add_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """This process's sockets only, for now (a warning says so once)."""
        self._cluster_only_here("sockets_join", flags)
        await super().add_sockets(namespace, to, exclude, flags, rooms)

    async def del_sockets(self, namespace: str, to: list[Hashable] | None, exclude: list[Hashable] | None,
                          flags: BroadcastFlags, rooms: list[Hashable]) -> None:
        """This process's sockets only, for now (a warning says so once)."""
        self._cluster_only_here("sockets_leave", flags)
        await super().del_sockets(namespace, to, exclude, flags, rooms)

    async def disconnect_sockets(self, namespace: str, to: list[Hashable] | None,
                                 exclude: list[Hashable] | None, flags: BroadcastFlags, close: bool) -> None:
        """This process's sockets only, for now (a warning says so once)."""
        self._cluster_only_here("disconnect_sockets", flags)
        await super().disconnect_sockets(namespace, to, exclude, flags, close)

    async def server_side_emit(self, namespace: str, args: list[Any]) -> None:
        """Not carried between processes yet (a warning says so once)."""
        self._cluster_only_here("server_side_emit", BroadcastFlags())

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """True for a client of this process; for another process's client, ask it to disconnect."""
        if self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace):
            return True
        self._post({"method": "disconnect", "sid": sid, "namespace": namespace or "/"})
        return False

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """Disconnect ``sid`` wherever it is connected (``ignore_queue=True``: forget it here)."""
        if kwargs.get("ignore_queue"):
            self.basic_disconnect(sid, namespace)
            return
        message = {"method": "disconnect", "sid": sid, "namespace": namespace or "/"}
        await self._handle_disconnect(message)
        self._post(message)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Add ``sid`` to ``room`` here, or in the process the client is connected to."""
        if self.get_socket(sid, namespace) is not None:
            self._enter(sid, namespace, room)
        else:
            self._post({"method": "enter_room", "sid": sid, "room": room, "namespace": namespace or "/"})

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Remove ``sid`` from ``room`` here, or in the process the client is connected to."""
        if self.get_socket(sid, namespace) is not None:
            self.basic_leave_room(sid, namespace, room)
        else:
            self._post({"method": "leave_room", "sid": sid, "room": room, "namespace": namespace or "/"})

    async def close_room(self, room: Any, namespace: str | None = None) -> None:  # type: ignore[override]
        """Empty ``room`` in every process."""
        self.room_table.close_room(namespace or "/", room)
        self._post({"method": "close_room", "room": room, "namespace": namespace or "/"})

    # -- publishing ---------------------------------------------------------------------------------

    async def _publish(self, data: dict[str, Any]) -> None:
        """Send one message (a dict) on the channel: the backend's extension point."""
        raise NotImplementedError("This method must be implemented in a subclass.")

    async def _publish_encoded(self, data: dict[str, Any], payload: bytes) -> None:
        """Send one message, given also as its JSON.  Backends that send bytes override this to
        skip a second encoding; by default it calls ``_publish(data)``."""
        await self._publish(data)

    def _encode_message(self, message: dict[str, Any]) -> bytes:
        try:
            payload = self.json.dumps(message)
        except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
            raise TypeError("data published to other processes must be JSON-serializable: %s" % exc) from None
        return payload.encode() if isinstance(payload, str) else payload  # type: ignore[no-any-return]

    def _post(self, message: dict[str, Any]) -> None:
        message.setdefault("host_id", self.host_id)
        self._send(message, self._encode_message(message))

    def _send(self, message: dict[str, Any], payload: bytes, done: asyncio.Future[None] | None = None) -> None:
        self._outbox.append((message, payload, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_outbox())

    async def _write_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            message, payload, done = outbox.popleft()
            try:
                await self._publish_encoded(message, payload)
            except asyncio.CancelledError:
                if done is not None and not done.done():
                    done.cancel()
                raise
            except Exception as exc:
                self._get_logger().exception("publishing to the %s backend failed", self.name)
                if done is not None and not done.done():
                    done.set_exception(exc)
                continue
            if done is not None and not done.done():
                done.set_result(None)

    # -- receiving ----------------------------------------------------------------------------------

    def _listen(self) -> AsyncIterator[Any]:
        """Yield the messages published on the channel: the backend's extension point."""
        raise NotImplementedError("This method must be implemented in a subclass.")

    async def _thread(self) -> None:
        if not self._signals_subscription:
            self._subscribed.set()
        while True:
            try:
                async for message in self._listen():
                    await self._handle_message(message)
                self._get_logger().error("pubsub listen() exited unexpectedly")
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._get_logger().exception("Unexpected error in the pubsub listener")
                await asyncio.sleep(1)

    # Backends that call ``_set_subscribed`` when subscribed set this.
    _signals_subscription = False

    async def _handle_message(self, raw: Any) -> None:
        """Act on one received message."""
        if isinstance(raw, dict):
            data = raw
        else:
            try:
                data = self.json.loads(raw)
            except Exception:
                self._get_logger().warning("ignoring an unreadable pub/sub message")
                return
        if not isinstance(data, dict) or "method" not in data:
            return
        method = data["method"]
        try:
            if method == "callback":
                await self._handle_callback(data)
            elif data.get("host_id") != self.host_id:
                if method == "emit":
                    await self._handle_emit(data)
                elif method == "disconnect":
                    await self._handle_disconnect(data)
                elif method == "enter_room":
                    await self._handle_enter_room(data)
                elif method == "leave_room":
                    await self._handle_leave_room(data)
                elif method == "close_room":
                    await self._handle_close_room(data)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._get_logger().exception("handling a pub/sub %r message failed", method)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        data = unpack_args(message.get("data"), message.get("binary"))
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        callback = None
        remote = message.get("callback")
        if isinstance(remote, list) and len(remote) == 3:
            callback = partial(self._ack_to_origin, str(message.get("host_id")), *remote)
        skip_sid = message.get("skip_sid")
        except_rooms = message.get("except_rooms")
        if callback is None and (except_rooms or message.get("volatile")):
            # A broadcast operator's emit (fastio's keys).
            args = [message["event"], *(data if isinstance(data, tuple) else (data,))]
            self.broadcast_local(message.get("namespace") or "/", args, message.get("room"), except_rooms or None,
                                 BroadcastFlags(volatile=bool(message.get("volatile"))),
                                 tuple(skip_sid) if isinstance(skip_sid, list) else skip_sid)
            return
        self.emit_local(message["event"], data, message.get("namespace") or "/", message.get("room"),
                        tuple(skip_sid) if isinstance(skip_sid, list) else skip_sid, callback)

    def _ack_to_origin(self, host_id: str, sid: str, namespace: str, callback_id: int, *args: Any) -> None:
        # A local client acknowledged an emit of another process: send the arguments back.
        # Binary arguments use the emit's form and a "binary" flag (python-socketio itself
        # cannot send them in an acknowledgement between processes).
        packed, binary = pack_args(list(args))
        message: dict[str, Any] = {"method": "callback", "host_id": host_id, "sid": sid,
                                   "namespace": namespace, "id": callback_id, "args": packed}
        if binary:
            message["binary"] = True
        self._post(message)

    async def _return_callback(self, host_id: str, sid: str, namespace: str, callback_id: int, *args: Any) -> None:
        """python-socketio's name: run the callback here, or send it to the host that emitted."""
        if host_id == self.host_id:
            await self.trigger_callback(sid, callback_id, args)
        else:
            self._ack_to_origin(host_id, sid, namespace, callback_id, *args)

    async def _handle_callback(self, message: dict[str, Any]) -> None:
        if message.get("host_id") != self.host_id:
            return
        sid, ack_id, args = message.get("sid"), message.get("id"), message.get("args")
        if not isinstance(sid, str) or not isinstance(ack_id, int) or not isinstance(args, list):
            return
        await self.trigger_callback(sid, ack_id, unpack_args(args, message.get("binary")))

    async def _handle_disconnect(self, message: dict[str, Any]) -> None:
        if self.server is not None:
            await self.server.disconnect(message.get("sid"), message.get("namespace") or "/", ignore_queue=True)

    async def _handle_enter_room(self, message: dict[str, Any]) -> None:
        sid, namespace = message.get("sid"), message.get("namespace") or "/"
        if isinstance(sid, str) and (self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)):
            self._enter(sid, namespace, message.get("room"))

    async def _handle_leave_room(self, message: dict[str, Any]) -> None:
        sid, namespace = message.get("sid"), message.get("namespace") or "/"
        if isinstance(sid, str) and (self.is_connected(sid, namespace) or self.is_pre_connected(sid, namespace)):
            self.basic_leave_room(sid, namespace, message.get("room"))

    async def _handle_close_room(self, message: dict[str, Any]) -> None:
        self.room_table.close_room(message.get("namespace") or "/", message.get("room"))
