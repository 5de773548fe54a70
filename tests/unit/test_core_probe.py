"""The WebSocket upgrade probe, handled by Conn for every transport, and the Flusher's handling of
a transport whose write fails."""
import asyncio
import logging

from fastio._core.conn import Conn, Flusher
from fastio._core.wsframe import FrameReader


class Handler:
    message_sink = staticmethod(lambda *a: None)

    def __init__(self):
        self.calls = []

    def answer_poll(self, conn, req, body):
        self.calls.append(("answer_poll", req, body))

    def probe_started(self, conn):
        self.calls.append(("probe_started", conn.sid))

    def conn_upgraded(self, conn, ws):
        # told before the session moves: it is still polling here
        self.calls.append(("conn_upgraded", ws, conn.upgraded))

    def conn_closed(self, conn, reason):
        self.calls.append(("conn_closed", reason))

    def overflow(self, conn):
        self.calls.append(("overflow", conn.sid))


def polling_conn(loop, sid="p1"):
    handler = Handler()
    conn = Conn(sid, handler, Flusher(loop))
    conn.poll_waiter = "the pending GET"
    return conn, handler


def test_probe_is_answered_then_the_pending_poll_gets_a_noop(loop, run_flush, framed_ws):
    conn, handler = polling_conn(loop)
    ws = framed_ws()
    assert conn.on_probe_packet(ws, b"2probe") is False
    assert ws.texts() == [b"3probe"]
    assert handler.calls == [("probe_started", "p1")]
    run_flush(loop)
    assert handler.calls[-1] == ("answer_poll", "the pending GET", b"6")
    assert not conn.upgraded


def test_upgrade_packet_moves_the_session_to_the_websocket(loop, run_flush, framed_ws):
    conn, handler = polling_conn(loop)
    conn.poll_waiter = None
    conn.send_eio(b"4queued while polling")
    ws = framed_ws()
    conn.on_probe_packet(ws, b"2probe")
    assert conn.on_probe_packet(ws, b"5") is True
    assert ("conn_upgraded", ws, False) in handler.calls
    assert conn.upgraded and conn.ws is ws and conn.transport == "websocket"
    run_flush(loop)
    # the packet queued for polling now goes out as a frame; no poll was waiting, so no noop
    # was queued, and none may reach the WebSocket ahead of the application's messages
    assert ws.texts() == [b"3probe", b"4queued while polling"]


def test_other_packets_during_the_probe_are_ignored(loop, framed_ws):
    conn, handler = polling_conn(loop)
    ws = framed_ws()
    assert conn.on_probe_packet(ws, b"4hello") is False
    assert conn.on_probe_packet(ws, b"2ping") is False
    assert ws.written == [] and ws.close_codes == [] and handler.calls == []


def test_probe_of_a_closed_or_upgraded_session_closes_the_websocket(loop, framed_ws):
    conn, handler = polling_conn(loop)
    first = framed_ws()
    conn.on_probe_packet(first, b"5")
    second = framed_ws()
    assert conn.on_probe_packet(second, b"2probe") is False
    assert second.close_codes == [1000] and second.written == []
    conn.close("server disconnect")
    third = framed_ws()
    assert conn.on_probe_packet(third, b"5") is False
    assert third.close_codes == [1000]


def test_output_mode_is_decided_when_the_websocket_is_attached(loop, run_flush, framed_ws):
    conn, _ = polling_conn(loop)
    ws = framed_ws()
    conn.upgrade(ws)
    ws.ws_messages = True            # too late: the session frames its output for this transport
    conn.send_eio(b"4x")
    run_flush(loop)
    assert ws.texts() == [b"4x"]


def test_bridge_sends_3probe_before_the_noop_that_ends_the_poll(loop):
    from fastio.hosting.bridge import BridgeWebSocket

    async def scenario():
        conn, handler = polling_conn(asyncio.get_running_loop(), "b1")
        ws = BridgeWebSocket(conn, True)
        sent = []
        gate = asyncio.Event()

        async def send(message):
            await gate.wait()        # the framework's send has to wait
            sent.append(message)

        ws.attach_asgi(send)
        ws.receive_text("2probe")
        assert handler.calls == [("probe_started", "b1")]
        for _ in range(3):
            await asyncio.sleep(0)
        assert not any(c[0] == "answer_poll" for c in handler.calls)   # "3probe" not out yet
        gate.set()
        for _ in range(3):
            await asyncio.sleep(0)
        assert sent == [{"type": "websocket.send", "text": "3probe"}]
        assert handler.calls[-1] == ("answer_poll", "the pending GET", b"6")
        ws.receive_text("5")
        assert conn.upgraded and conn.ws is ws and not ws.probing

    loop.run_until_complete(scenario())


def test_a_failed_write_is_logged_once_and_closes_the_session(loop, run_flush, framed_ws, caplog):
    handler = Handler()
    flusher = Flusher(loop)
    conn = Conn("w1", handler, flusher)

    class BrokenWS(framed_ws):
        def ws_write(self, data):
            raise OSError("connection reset")

    conn.upgrade(BrokenWS())
    healthy = Conn("w2", handler, flusher)
    ok = framed_ws()
    healthy.upgrade(ok)
    conn.send_eio(b"4a")
    healthy.send_eio(b"4b")
    with caplog.at_level(logging.ERROR, logger="fastio.engineio"):
        run_flush(loop)
    records = [r for r in caplog.records if r.name == "fastio.engineio"]
    assert len(records) == 1
    assert "w1" in records[0].getMessage() and "connection reset" in records[0].getMessage()
    assert conn.closed and conn.close_reason == "transport error"
    assert ok.texts() == [b"4b"]     # the other connections are still written


class FakeTransport:
    def __init__(self):
        self.data = b""
        self.closed = False

    def get_extra_info(self, name):
        return ("127.0.0.1", 1)

    def write(self, data):
        self.data += data

    def writelines(self, parts):
        self.data += b"".join(parts)

    def close(self):
        self.closed = True


class Host:
    """The ConnectionHost a native protocol calls: every request is a probing upgrade."""
    local_addr = None

    def __init__(self, conn):
        self.conn = conn

    def handle_request(self, req):
        req.accept_websocket(self.conn, True)

    def connection_opened(self, proto):
        pass

    def connection_closed(self, proto):
        pass

    def log_exception(self, message, exc):
        raise AssertionError(message)

    def log_ws_error(self, proto, code, reason):
        raise AssertionError(reason)


UPGRADE_REQUEST = (b"GET /socket.io/?EIO=4&transport=websocket&sid=n1 HTTP/1.1\r\nHost: x\r\n"
                   b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def client_frame(text):
    from fastio._core.wsframe import OP_TEXT, build_frame
    return build_frame(OP_TEXT, text, True, b"\x01\x02\x03\x04")


def test_native_protocol_probe_goes_through_the_session(loop, run_flush):
    from fastio._core.protocol import HttpProtocol

    conn, handler = polling_conn(loop, "n1")
    proto = HttpProtocol(Host(conn))
    transport = FakeTransport()
    proto.connection_made(transport)
    proto.data_received(UPGRADE_REQUEST)
    assert transport.data.startswith(b"HTTP/1.1 101 ")
    head = transport.data.index(b"\r\n\r\n") + 4
    proto.data_received(client_frame(b"2probe"))
    assert [bytes(p) for _, p in FrameReader(1 << 20, False).feed(transport.data[head:])] == [b"3probe"]
    assert proto.probing and handler.calls == [("probe_started", "n1")]
    run_flush(loop)
    assert handler.calls[-1] == ("answer_poll", "the pending GET", b"6")
    proto.data_received(client_frame(b"5"))
    assert not proto.probing
    assert ("conn_upgraded", proto, False) in handler.calls
    assert conn.ws is proto and conn.upgraded
