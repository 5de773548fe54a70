# cython: language_level=3
"""Per-session state of an Engine.IO connection, the write coalescer and the heartbeat sweep.

A ``Conn`` is one Engine.IO session, whichever transport carries it (HTTP long-polling, then
maybe WebSocket).  Writes never go straight to the socket: they are queued on the ``Conn`` and
the ``Flusher`` writes every dirty connection once per event-loop iteration, so a read batch or a
broadcast costs one ``transport.write`` per connection.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from fastio._core.wsframe cimport build_frame_c, OP_TEXT, OP_BINARY
from fastio._core.packet cimport Encoded
from fastio._core.eio cimport poll_binary, encode_payload

import base64
import time

cdef object _monotonic = time.monotonic
cdef object _b64decode = base64.b64decode

# Packets in one long-polling response.  Engine.IO sets no limit, but python-engineio's
# client refuses payloads of more than 16 packets; the rest go out with the next poll.
cdef enum:
    MAX_POLL_PACKETS = 16
    # Output of at least this many bytes is written as parts (writelines), not joined.
    _WRITELINES_MIN = 65536

# Engine.IO packet type characters
cdef enum:
    C_OPEN = 48
    C_CLOSE = 49
    C_PING = 50
    C_PONG = 51
    C_MESSAGE = 52
    C_UPGRADE = 53
    C_NOOP = 54


cdef class WSTransport:
    """Base of every WebSocket that can carry a ``Conn``.

    The native protocol implements it in C; integrations (ASGI, aiohttp) subclass it in Python.
    """

    cpdef ws_write(self, bytes data):
        """Write already-framed bytes to the peer."""
        raise NotImplementedError

    cpdef ws_close(self, int code=1000, str reason=""):
        """Send a close frame with ``code`` and close the connection."""
        raise NotImplementedError

    cpdef ws_send_messages(self, list messages):
        """Send whole messages (``str``: text, ``bytes``: binary); used when ``ws_messages``."""
        raise NotImplementedError

    cpdef ws_writelines(self, list parts):
        """Write already-framed bytes given as parts, in order (default: joined, one write)."""
        self.ws_write(b"".join(parts))


@cython.final
cdef class Flusher:
    """Writes every connection that has pending output once, at the end of the loop iteration."""

    def __cinit__(self, loop):
        self.dirty = []
        self.scheduled = False
        self.loop = loop
        self._run_cb = self.run

    cdef int mark(self, Conn conn) except -1:
        self.dirty.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._run_cb)
        return 0

    def run(self):
        """Flush all connections marked since the last run."""
        cdef list dirty = self.dirty
        cdef Conn c
        self.dirty = []
        self.scheduled = False
        for c in dirty:
            try:
                c.flush()
            except Exception as exc:  # a broken transport must not stop the others
                c.close("transport error", False)


cdef class Conn:
    """One Engine.IO session.

    ``handler`` is the engine object: every call the session makes into it is declared by
    ``fastio._core.contract.EngineCallbacks``; ``on_message`` (its ``message_sink``) receives
    the session's messages.
    """

    def __cinit__(self, str sid, object handler, Flusher flusher, Py_ssize_t max_buffer=16 * 1024 * 1024):
        self.sid = sid
        self.handler = handler
        self.on_message = handler.message_sink
        self.flusher = flusher
        self.max_buffer = max_buffer
        # Queues are created on first use and dropped when drained: an idle connection has none.
        self.wq = None
        self.wq_bytes = 0
        self.pollq = None
        self.state = ST_OPEN
        self.upgraded = False
        self.ws = None
        self.poll_waiter = None
        self.close_reason = None
        self.next_ping = 0.0
        self.pong_deadline = 0.0

    @property
    def transport(self):
        """'websocket' once upgraded, else 'polling'."""
        return "websocket" if self.upgraded else "polling"

    @property
    def closed(self):
        """True once the session has ended."""
        return self.state != ST_OPEN

    @property
    def pending(self):
        """Bytes queued for this connection and not yet handed to the transport."""
        return self.wq_bytes

    cdef int _mark(self) except -1:
        if not self.dirty:
            self.dirty = True
            self.flusher.mark(self)
        return 0

    cdef int _overflowed(self) except -1:
        # A peer that does not read: drop what is queued and end the session.  Nothing more is
        # queued until the engine closes it (it may still be adding the rest of a packet, and
        # a packet's parts must never go out without its beginning).
        self.wq = None
        self.pollq = None
        self.wq_bytes = 0
        self.dropping = True
        self.handler.overflow(self)
        return 0

    cdef int _queue_ws(self, bytes frames) except -1:
        return self._queue_msg(frames, PyBytes_GET_SIZE(frames))

    cdef int _queue_msg(self, object msg, Py_ssize_t size) except -1:
        if self.dropping:
            return 0
        if self.wq is None:
            self.wq = [msg]
        else:
            self.wq.append(msg)
        self.wq_bytes += size
        if self.wq_bytes > self.max_buffer:
            return self._overflowed()
        return self._mark()

    cdef int _queue_poll(self, bytes item) except -1:
        if self.dropping:
            return 0
        if self.pollq is None:
            self.pollq = [item]
        else:
            self.pollq.append(item)
        self.wq_bytes += PyBytes_GET_SIZE(item)
        if self.wq_bytes > self.max_buffer:
            return self._overflowed()
        if self.poll_waiter is not None:
            self._mark()
        return 0

    cdef int send_encoded(self, Encoded enc) except -1:
        """Queue one shared, already-encoded Socket.IO packet."""
        cdef bytes item
        if self.state != ST_OPEN:
            return 0
        if self.upgraded:
            if self.ws is not None and self.ws.ws_messages:
                if enc.binary:
                    return self._queue_msg(enc.message, PyBytes_GET_SIZE(enc.message))
                self._queue_msg(enc.message_str(), PyBytes_GET_SIZE(enc.message))
                for item in enc.attachments:
                    self._queue_msg(item, PyBytes_GET_SIZE(item))
                return 0
            if not enc.attachments and not enc.binary:
                return self._queue_ws(enc.ws_frames())
            for item in enc.ws_parts():
                self._queue_ws(item)
            return 0
        for item in enc.poll_items():
            self._queue_poll(item)
        return 0

    def send_packet(self, Encoded enc):
        """Queue an encoded Socket.IO packet (Python entry point of ``send_encoded``)."""
        self.send_encoded(enc)

    cpdef send_eio(self, bytes pkt):
        """Queue a text Engine.IO packet given with its type character, e.g. ``b"4hello"``."""
        if self.state != ST_OPEN:
            return
        if self.upgraded:
            if self.ws is not None and self.ws.ws_messages:
                self._queue_msg(pkt.decode("utf-8"), PyBytes_GET_SIZE(pkt))
                return
            self._queue_ws(build_frame_c(OP_TEXT, <const unsigned char*>PyBytes_AS_STRING(pkt),
                                         PyBytes_GET_SIZE(pkt)))
        else:
            self._queue_poll(pkt)

    cpdef send_binary(self, object data):
        """Queue a binary Engine.IO message."""
        cdef bytes b = data if type(data) is bytes else bytes(data)
        if self.state != ST_OPEN:
            return
        if self.upgraded:
            if self.ws is not None and self.ws.ws_messages:
                self._queue_msg(b, PyBytes_GET_SIZE(b))
                return
            self._queue_ws(build_frame_c(OP_BINARY, <const unsigned char*>PyBytes_AS_STRING(b),
                                         PyBytes_GET_SIZE(b)))
        else:
            self._queue_poll(poll_binary(b))

    cpdef on_packet(self, int ptype, bytes data, bint binary):
        """Handle one Engine.IO packet from the peer (any transport)."""
        if self.state != ST_OPEN:
            return
        if binary or ptype == 4:
            try:
                self.on_message(self, data, binary)
            except Exception as exc:
                # Nothing an application does may escape into the transport's read callback.
                self.handler.message_error(self, exc)
        elif ptype == 3:  # pong
            self.pong_deadline = 0.0
            self.next_ping = _monotonic() + self.handler.heartbeat_interval
        elif ptype == 1:
            self.close("client disconnect", False)
        elif ptype == 6:
            pass
        elif ptype == 2:  # a ping from an older peer: answer it
            self.send_eio(b"3" + data)
        else:
            self.handler.protocol_error(self, "unexpected packet type %d" % ptype)

    cpdef flush(self):
        """Hand everything queued to the transport (one write), or answer a waiting poll."""
        cdef object req
        cdef bytes data
        cdef list msgs
        self.dirty = False
        if self.upgraded:
            if not self.wq or self.ws is None or self.ws.ws_paused:
                return
            if self.ws.ws_messages:
                msgs = self.wq
                self.wq = None
                self.wq_bytes = 0
                self.ws.ws_send_messages(msgs)
                return
            if len(self.wq) == 1:
                data = self.wq[0]
            elif self.wq_bytes >= _WRITELINES_MIN:
                # Large output (big attachments are parts of their own): hand the parts over
                # as they are instead of copying them into one buffer.
                msgs = self.wq
                self.wq = None
                self.wq_bytes = 0
                self.ws.ws_writelines(msgs)
                return
            else:
                data = b"".join(self.wq)
            self.wq = None
            self.wq_bytes = 0
            self.ws.ws_write(data)
        elif self.poll_waiter is not None and self.pollq:
            req = self.poll_waiter
            self.poll_waiter = None
            self.handler.answer_poll(self, req, self._take_poll())

    cdef bytes _take_poll(self):
        cdef list items
        cdef bytes item
        if len(self.pollq) <= MAX_POLL_PACKETS:
            items = self.pollq
            self.pollq = None
            self.wq_bytes = 0
        else:
            items = self.pollq[:MAX_POLL_PACKETS]
            del self.pollq[:MAX_POLL_PACKETS]
            for item in items:
                self.wq_bytes -= PyBytes_GET_SIZE(item)
        return encode_payload(items)

    def take_poll(self):
        """Return the next polling payload (or None when nothing is queued)."""
        if not self.pollq:
            return None
        return self._take_poll()

    def resume(self):
        """The transport can take writes again: flush what accumulated."""
        if self.wq:
            self._mark()

    def upgrade(self, WSTransport ws):
        """Make ``ws`` this session's transport; queued polling packets move to it."""
        cdef bytes item
        cdef list pending = self.pollq if self.pollq is not None else []
        self.pollq = None
        self.wq_bytes = 0
        self.ws = ws
        self.upgraded = True
        for item in pending:
            if item[:1] == b"b":
                self.send_binary(_b64decode(item[1:]))
            else:
                self.send_eio(item)

    cpdef close(self, str reason, bint notify_peer=False):
        """End the session once: tell the peer if asked, close the transport, notify the engine."""
        cdef object req
        if self.state != ST_OPEN:
            return
        self.state = ST_CLOSING
        self.close_reason = reason
        if self.upgraded:
            if self.ws is not None:
                try:
                    if notify_peer:
                        if self.wq is None:
                            self.wq = []
                        if self.ws.ws_messages:
                            self.wq.append("1")
                        else:
                            self.wq.append(build_frame_c(OP_TEXT, <const unsigned char*>b"1", 1))
                    if self.wq and not self.ws.ws_paused:
                        if self.ws.ws_messages:
                            self.ws.ws_send_messages(self.wq)
                        else:
                            self.ws.ws_write(b"".join(self.wq))
                    self.ws.ws_close(1000, "")
                except Exception:
                    pass
            self.wq = None
            self.wq_bytes = 0
        else:
            if notify_peer:
                if self.pollq is None:
                    self.pollq = []
                self.pollq.append(b"1")
                self.wq_bytes += 1
            if self.poll_waiter is not None:
                req = self.poll_waiter
                self.poll_waiter = None
                self.handler.answer_poll(self, req, encode_payload(self.pollq) if self.pollq else b"1")
                self.pollq = None
                self.wq_bytes = 0
        self.state = ST_CLOSED
        self.handler.conn_closed(self, reason)


def sweep(object conns, double now, double interval, double timeout):
    """Heartbeat for every session at once: send due pings, return sessions past their deadline."""
    cdef list expired = []
    cdef Conn c
    for c in conns:
        if c.state != ST_OPEN:
            continue
        if c.pong_deadline > 0.0:
            if now >= c.pong_deadline:
                expired.append(c)
        elif now >= c.next_ping:
            c.send_eio(b"2")
            c.pong_deadline = now + timeout
    return expired
