"""python-socketio's client manager API on fastio's manager, exercised with python-socketio's client:
the rooms view, the connection and room bookkeeping methods, callbacks, subclasses that override
python-socketio's methods, a generic pub/sub backend, and packet classes as the serializer."""
import asyncio
import json as stdjson
import logging

import pytest
import socketio as pysio
from socketio import packet as pysio_packet

import fastio
from room_server import add_room_handlers, disconnect_and_close


async def _client(url, **kwargs):
    c = pysio.AsyncClient(**kwargs)
    inbox = asyncio.Queue()
    c.on("news", lambda *args: inbox.put_nowait(args[0] if len(args) == 1 else args))
    await c.connect(url, transports=["websocket"], namespaces=kwargs.pop("namespaces", None) or ["/"])
    return c, inbox


async def _wait_for(predicate, timeout=5):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.timeout(30)
async def test_rooms_view_and_bookkeeping_methods():
    sio = fastio.AsyncServer(namespaces=["/", "/chat"])
    srv = await fastio.serve(sio, "127.0.0.1", 0)
    c, inbox = await _client(srv.url)
    mgr = sio.manager
    try:
        sid = c.get_sid()
        eio_sid = c.eio.sid
        # python-socketio's shape: namespace -> room -> {sid: eio_sid}
        assert dict(mgr.rooms["/"]) == {None: {sid: eio_sid}, sid: {sid: eio_sid}}
        await sio.enter_room(sid, "r")
        assert mgr.rooms["/"]["r"] == {sid: eio_sid}
        assert mgr.rooms["/"]["r"].inverse == {eio_sid: sid}  # python-socketio keeps a bidict
        assert "r" in mgr.rooms["/"] and "/" in mgr.rooms and "/chat" not in mgr.rooms
        assert list(mgr.get_participants("/", "r")) == [(sid, eio_sid)]
        assert list(mgr.get_participants("/", ["r", sid])) == [(sid, eio_sid)]
        assert sorted(mgr.get_rooms(sid, "/"), key=str) == sorted([sid, "r"], key=str)
        assert mgr.is_sid_room("/", sid) and not mgr.is_sid_room("/", "r")
        assert mgr.is_connected(sid, "/") and not mgr.is_pre_connected(sid, "/")
        assert mgr.sid_from_eio_sid(eio_sid, "/") == sid and mgr.eio_sid_from_sid(sid, "/") == eio_sid
        # the compiled table's methods stay reachable through the view (earlier fastio code)
        assert set(mgr.rooms.members("/", "r")) == {sid}
        # python-socketio's synchronous room methods and their refusals
        mgr.basic_enter_room(sid, "/", "s")
        assert mgr.rooms["/"]["s"] == {sid: eio_sid}
        mgr.basic_leave_room(sid, "/", "s")
        assert "s" not in mgr.rooms["/"]
        with pytest.raises(ValueError):
            mgr.basic_close_room(sid, "/")
        with pytest.raises(ValueError):
            mgr.basic_enter_room("not-a-sid", "/", "r")
        # emit through the manager, python-socketio's signature
        await mgr.emit("news", {"via": "manager"}, "/", to="r")
        assert await asyncio.wait_for(inbox.get(), 5) == {"via": "manager"}
        await mgr.emit("news", ("a", "b"), namespace="/", room=sid, skip_sid=None)
        assert await asyncio.wait_for(inbox.get(), 5) == ("a", "b")
        # callbacks: an acknowledgement comes back through trigger_callback
        c.on("q", lambda x: x * 2)
        got = asyncio.get_running_loop().create_future()
        await mgr.emit("q", 21, "/", to=sid, callback=lambda v: got.set_result(v))
        assert await asyncio.wait_for(got, 5) == 42
        await mgr.trigger_callback(sid, 12345, [])  # unknown: logged and ignored
        await mgr.close_room("r", "/")
        assert "r" not in mgr.rooms["/"]
    finally:
        await c.disconnect()
        await srv.close()


@pytest.mark.timeout(30)
async def test_connect_pre_connect_and_disconnect_on_a_live_session():
    sio = fastio.AsyncServer(namespaces="*")
    srv = await fastio.serve(sio, "127.0.0.1", 0)
    c, inbox = await _client(srv.url)
    mgr = sio.manager
    try:
        eio_sid = c.eio.sid
        # one step: an Engine.IO session joins a namespace
        sid = await mgr.connect(eio_sid, "/one")
        assert sid and mgr.is_connected(sid, "/one") and mgr.eio_sid_from_sid(sid, "/one") == eio_sid
        assert await mgr.connect(eio_sid, "/one") is None  # already connected there
        # two steps: pre-connected (not yet connected), then connected
        sid2 = await mgr.pre_connect(eio_sid, "/two")
        assert mgr.is_pre_connected(sid2, "/two") and not mgr.is_connected(sid2, "/two")
        assert await mgr.connect(sid2, "/two") == sid2
        assert mgr.is_connected(sid2, "/two") and not mgr.is_pre_connected(sid2, "/two")
        # the sessions are real: emits to them reach the connection
        await sio.enter_room(sid2, "room2", namespace="/two")
        assert mgr.rooms["/two"]["room2"] == {sid2: eio_sid}
        # pre_disconnect hides it, disconnect forgets it and its rooms
        assert mgr.pre_disconnect(sid2, "/two") == eio_sid
        assert not mgr.is_connected(sid2, "/two")
        await mgr.disconnect(sid2, "/two")
        assert mgr.get_socket(sid2, "/two") is None and "/two" not in mgr.rooms
        assert not mgr.pending_disconnect and not mgr.pending_connect
        # the root namespace of the same client is untouched
        await sio.emit("news", "still here", to=c.get_sid())
        assert await asyncio.wait_for(inbox.get(), 5) == "still here"
    finally:
        await c.disconnect()
        await srv.close()


class RecordingManager(fastio.AsyncManager):
    """A subclass written against python-socketio's documentation."""

    def __init__(self):
        super().__init__()
        self.calls = []

    async def connect(self, eio_sid, namespace):
        sid = await super().connect(eio_sid, namespace)
        self.calls.append(("connect", eio_sid, namespace, sid))
        return sid

    async def disconnect(self, sid, namespace, **kwargs):
        self.calls.append(("disconnect", sid, namespace))
        await super().disconnect(sid, namespace, **kwargs)

    async def enter_room(self, sid, namespace, room, eio_sid=None):
        self.calls.append(("enter_room", sid, namespace, room))
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)

    async def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        self.calls.append(("emit", event, to or room))
        await asyncio.sleep(0)  # an override may suspend
        await super().emit(event, {"wrapped": data}, namespace, room=room, skip_sid=skip_sid,
                           callback=callback, to=to, **kwargs)


@pytest.mark.timeout(30)
async def test_subclass_overrides_are_called_by_the_server():
    mgr = RecordingManager()
    sio = fastio.AsyncServer(client_manager=mgr)
    add_room_handlers(sio, room="lobby", skip_sender=False)

    srv = await fastio.serve(sio, "127.0.0.1", 0)
    c, inbox = await _client(srv.url)
    try:
        sid = c.get_sid()
        assert ("connect", c.eio.sid, "/", sid) in mgr.calls
        assert ("enter_room", sid, "/", "lobby") in mgr.calls
        await c.emit("shout", "hi")
        assert await asyncio.wait_for(inbox.get(), 5) == {"wrapped": "hi"}
        assert ("emit", "news", "lobby") in mgr.calls
        await c.disconnect()
        await _wait_for(lambda: ("disconnect", sid, "/") in mgr.calls)
        assert mgr.get_socket(sid, "/") is None
    finally:
        await c.disconnect()
        await srv.close()


class MemoryBus:
    """A pub/sub backend in memory: every subscriber gets every message."""

    def __init__(self):
        self.queues = []

    def subscribe(self):
        q = asyncio.Queue()
        self.queues.append(q)
        return q


class MemoryManager(fastio.AsyncPubSubManager):
    """A backend written to python-socketio's extension points (_publish and _listen)."""

    name = "memory"

    def __init__(self, bus, **kwargs):
        super().__init__(**kwargs)
        self.bus = bus
        self.published = []

    async def _publish(self, data):
        self.published.append(data["method"])
        body = self.json.dumps(data)
        for q in self.bus.queues:
            q.put_nowait(body)

    async def _listen(self):
        q = self.bus.subscribe()
        while True:
            yield await q.get()


@pytest.mark.timeout(30)
async def test_a_pubsub_backend_from_the_two_extension_points():
    bus = MemoryBus()
    records = []

    class ListHandler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    log = logging.getLogger("test-memory-manager")
    log.addHandler(ListHandler())
    log.setLevel(logging.INFO)
    servers = []
    for _ in range(2):
        mgr = MemoryManager(bus, channel="mem", logger=log)
        sio = fastio.AsyncServer(client_manager=mgr)

        @sio.event
        async def connect(sid, environ, auth, sio=sio):
            await sio.enter_room(sid, "r")

        srv = await fastio.serve(sio, "127.0.0.1", 0)
        await mgr.ready()
        servers.append((sio, srv))
    (sio1, srv1), (sio2, srv2) = servers
    a, inbox_a = await _client(srv1.url)
    b, inbox_b = await _client(srv2.url)
    b.on("q", lambda x: {"answer": x, "bin": b"\x01"})
    try:
        assert "memory backend initialized." in records
        await sio1.emit("news", {"bin": b"\x00\xff"}, to="r")
        assert await asyncio.wait_for(inbox_a.get(), 5) == {"bin": b"\x00\xff"}
        assert await asyncio.wait_for(inbox_b.get(), 5) == {"bin": b"\x00\xff"}
        # a call across processes: the acknowledgement comes back as a "callback" message
        assert await sio1.call("q", "x", to=b.get_sid(), timeout=5) == {"answer": "x", "bin": b"\x01"}
        # room changes and disconnects for a client of the other process
        await sio1.enter_room(b.get_sid(), "vip")
        await sio1.emit("news", "vip only", to="vip")
        assert await asyncio.wait_for(inbox_b.get(), 5) == "vip only"
        await sio1.leave_room(b.get_sid(), "vip")
        await sio1.close_room("r")
        await sio1.emit("news", "to r", to="r")
        await sio1.emit("news", "marker", to=b.get_sid())
        assert await asyncio.wait_for(inbox_b.get(), 5) == "marker"
        gone = asyncio.Event()
        b.on("disconnect", lambda *r: gone.set())
        await sio1.disconnect(b.get_sid())
        await asyncio.wait_for(gone.wait(), 5)
        assert {"emit", "callback", "enter_room", "leave_room", "close_room", "disconnect"} <= set(
            sio1.manager.published + sio2.manager.published)
        assert inbox_a.empty()
    finally:
        await disconnect_and_close((a, b), (srv1, srv2))


class CountingJson:
    """A JSON module that counts its use (python-socketio's ``Packet.json`` hook)."""

    dumps_calls = 0
    loads_calls = 0

    @classmethod
    def dumps(cls, obj, **kwargs):
        cls.dumps_calls += 1
        return stdjson.dumps(obj, **kwargs)

    @classmethod
    def loads(cls, s, **kwargs):
        cls.loads_calls += 1
        return stdjson.loads(s, **kwargs)


class CountingPacket(pysio_packet.Packet):
    json = CountingJson


def _server_with_packet_class(cls):
    """``AsyncServer(serializer=cls)``, or, until the server takes a packet class itself, the same
    through the adapter (what that one-line change in server.py does)."""
    try:
        return fastio.AsyncServer(serializer=cls)
    except ValueError:
        from fastio.socketio.packet_class import packet_class_codec

        sio = fastio.AsyncServer()
        sio._encode, sio._new_decoder = packet_class_codec(
            cls, lambda: sio.max_attachments, lambda: sio.eio.max_http_buffer_size)
        sio.manager.encode = sio._encode
        return sio


@pytest.mark.timeout(30)
@pytest.mark.parametrize("packet_class", ["json", "msgpack"])
async def test_packet_class_serializer_with_python_socketio_client(packet_class):
    if packet_class == "json":
        cls = CountingPacket
    else:
        pytest.importorskip("msgpack")
        from socketio.msgpack_packet import MsgPackPacket as cls
    sio = _server_with_packet_class(cls)

    @sio.event
    async def echo(sid, data):
        await sio.emit("news", data, to=sid)
        return data, "ack"

    srv = await fastio.serve(sio, "127.0.0.1", 0)
    before = CountingJson.dumps_calls
    c, inbox = await _client(srv.url, serializer=cls)
    try:
        payload = {"n": 1, "blob": b"\x00\x01\x02", "list": [b"x", "y"]}
        assert await c.call("echo", payload, timeout=5) == (payload, "ack")
        assert await asyncio.wait_for(inbox.get(), 5) == payload
        c.on("q", lambda x: x + "!")
        assert await sio.call("q", "hey", to=c.get_sid(), timeout=5) == "hey!"
        if cls is CountingPacket:
            assert CountingJson.dumps_calls > before
    finally:
        await c.disconnect()
        await srv.close()


def test_packet_class_adapter_decodes_attachments_and_refuses_garbage():
    from fastio.socketio.packet_class import PacketClassDecoder, packet_class_encoder

    enc = packet_class_encoder(pysio_packet.Packet)(2, "/chat", ["ev", {"b": b"\x01\x02"}], 7)
    assert enc.message == b'451-/chat,7["ev",{"b":{"_placeholder":true,"num":0}}]'
    assert enc.attachments == [b"\x01\x02"]
    dec = PacketClassDecoder(pysio_packet.Packet)
    assert dec.feed_text(enc.message[1:]) is None
    pkt = dec.feed_binary(b"\x01\x02")
    assert (pkt.type, pkt.namespace, pkt.data, pkt.id) == (2, "/chat", ["ev", {"b": b"\x01\x02"}], 7)
    for bad in (b"2[1]", b"9", b"2{not json", b"3/x,[]"):
        with pytest.raises(ValueError):
            PacketClassDecoder(pysio_packet.Packet).feed_text(bad)
    with pytest.raises(ValueError):
        PacketClassDecoder(pysio_packet.Packet, max_attachments=1).feed_text(b'52-["e",1]')


@pytest.mark.timeout(30)
async def test_rooms_match_python_socketio_managers_for_the_same_operations():
    """The same connects and room operations on python-socketio's AsyncManager (with a stand-in
    server) and on fastio's (with real clients) give the same ``rooms``, ``get_rooms`` and
    ``get_participants``, up to the ids."""
    from types import SimpleNamespace

    sio = fastio.AsyncServer()
    srv = await fastio.serve(sio, "127.0.0.1", 0)
    c1, _ = await _client(srv.url)
    c2, _ = await _client(srv.url)
    ours = sio.manager
    try:
        s1, s2 = c1.get_sid(), c2.get_sid()
        e1, e2 = c1.eio.sid, c2.eio.sid
        ids = iter([s1, s2])
        theirs = pysio.AsyncManager()
        theirs.set_server(SimpleNamespace(eio=SimpleNamespace(generate_id=lambda: next(ids)),
                                          packet_class=pysio_packet.Packet, logger=logging.getLogger("x")))
        assert await theirs.connect(e1, "/") == s1 and await theirs.connect(e2, "/") == s2
        for mgr in (theirs, ours):
            await mgr.enter_room(s1, "/", "a")
            await mgr.enter_room(s2, "/", "a")
            await mgr.enter_room(s2, "/", "b")
            await mgr.leave_room(s1, "/", "a")
            await mgr.enter_room(s1, "/", "c")
            await mgr.close_room("c", "/")

        def shape(mgr):
            return {ns: {room: dict(members) for room, members in rooms.items()} for ns, rooms in mgr.rooms.items()}

        assert shape(ours) == shape(theirs)
        for sid in (s1, s2):
            assert sorted(ours.get_rooms(sid, "/"), key=str) == sorted(theirs.get_rooms(sid, "/"), key=str)
        for room in (None, "a", "b", s1, ["a", s1], "nope"):
            assert sorted(ours.get_participants("/", room)) == sorted(theirs.get_participants("/", room))
        assert ours.is_sid_room("/", s1) == theirs.is_sid_room("/", s1) is True
        assert ours.is_sid_room("/", "a") == theirs.is_sid_room("/", "a") is False
        await theirs.disconnect(s2, "/")
        await ours.disconnect(s2, "/")
        assert shape(ours) == shape(theirs)
    finally:
        await c1.disconnect()
        await c2.disconnect()
        await srv.close()
