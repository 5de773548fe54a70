# cython: language_level=3
# Per-session state of an Engine.IO connection, the write coalescer and the heartbeat sweep
# (contracts in conn.pyi).  Writes never go straight to the socket: a Conn queues them and the
# Flusher writes every dirty connection once per loop iteration, so a read batch or a broadcast
# costs one write per connection.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from fastio._core.wsframe cimport (
    build_frame_c, build_deflated_frame_c, OP_TEXT, OP_BINARY, OP_PONG, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION,
)
from fastio._core.packet cimport Encoded
from fastio._core.eio cimport (
    poll_binary, encode_payload, MAX_PAYLOAD_PACKETS, CLOSE, PING, PONG, MESSAGE, NOOP,
)

import base64
import logging
import time

cdef object _monotonic = time.monotonic
cdef object _b64decode = base64.b64decode
cdef object _logger = logging.getLogger("fastio.engineio")

cdef enum:
    DEFAULT_MAX_BUFFER = 16 * 1024 * 1024
    # Output of at least this many bytes is written as parts (writelines), not joined...
    WRITELINES_MIN = 65536
    # ... unless it has more parts than this: uvloop hands a writelines() of tens of thousands
    # of buffers to libuv as one write request, and that write fails with EINVAL (a flood of
    # tiny pongs did it).  Many parts are small ones, so joining them costs little.
    WRITELINES_MAX_PARTS = 256
    # What one queued item costs beyond its payload (the list slot, the bytes or str object
    # header, the allocator's rounding), so that many tiny items reach max_buffer too.
    ENTRY_OVERHEAD = 64

globals().update(ENTRY_OVERHEAD=ENTRY_OVERHEAD)

# Packets the session sends or expects as they are: the upgrade handshake's (probe ping and
# pong, upgrade), the close, the heartbeat ping, and the noop that ends a long poll.
cdef bytes _PROBE_PING = b"2probe"
cdef bytes _PROBE_PONG = b"3probe"
cdef bytes _UPGRADE_PKT = b"5"
cdef bytes _CLOSE_PKT = b"1"
cdef bytes _PING_PKT = b"2"
cdef bytes _NOOP_PKT = b"6"
# The type byte of a binary MESSAGE on an Engine.IO v3 WebSocket.
cdef bytes _V3_BINARY_TYPE = b"\x04"

# The frames of the last Encoded compressed for a WebSocket, by window bits: a broadcast hands
# the same Encoded to its recipients one after another, so it is deflated once per window size
# (nearly always one), not once per recipient (every session deflates without context
# takeover, so the frames fit them all).  It keeps that one packet alive until the next.
cdef Encoded _dz_enc = None
cdef list _dz_frames = [None] * 16


cdef class WSTransport:
    # The native protocol implements it in C; integrations (ASGI, aiohttp) subclass it in Python.

    cpdef ws_write(self, bytes data):
        raise NotImplementedError

    cpdef ws_close(self, int code=CLOSE_NORMAL, str reason=""):
        raise NotImplementedError

    cpdef ws_send_messages(self, list messages):
        raise NotImplementedError

    cpdef ws_writelines(self, list parts):
        self.ws_write(b"".join(parts))

    cpdef ws_answer_probe(self, Conn conn):
        # Right for a transport that writes at once: "3probe" is on its way before the noop.
        if self.ws_messages:
            self.ws_send_messages([_PROBE_PONG.decode()])
        else:
            self.ws_write(build_frame_c(OP_TEXT, <const unsigned char*>PyBytes_AS_STRING(_PROBE_PONG),
                                        PyBytes_GET_SIZE(_PROBE_PONG)))
        conn.end_poll()


@cython.final
cdef class Flusher:

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
        cdef list dirty = self.dirty
        cdef Conn c
        self.dirty = []
        self.scheduled = False
        for c in dirty:
            try:
                c.flush()
            except Exception as exc:  # a broken transport must not stop the others
                _logger.error("%s: write failed, closing the session: %r", c.sid, exc, exc_info=exc)
                c.close("transport error", False)


cdef class CompiledSink:

    cdef int deliver(self, Conn conn, bytes data, bint binary) except -1:
        raise NotImplementedError


cdef class Conn:

    def __cinit__(self, str sid, object handler, Flusher flusher, Py_ssize_t max_buffer=DEFAULT_MAX_BUFFER):
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
        self.out = OUT_POLL
        self.ws = None
        self.poll_waiter = None
        self.close_reason = None
        self.next_ping = 0.0
        self.pong_deadline = 0.0
        self.partial_deadline = 0.0
        self.ws_close_code = CLOSE_NORMAL
        self.ws_close_text = ""

    @property
    def upgraded(self):
        return self.out != OUT_POLL

    @property
    def transport(self):
        return "polling" if self.out == OUT_POLL else "websocket"

    @property
    def closed(self):
        return self.state != ST_OPEN

    @property
    def pending(self):
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
        self.ws_close_code = CLOSE_POLICY_VIOLATION
        self.ws_close_text = "write buffer full"
        self.handler.overflow(self)
        return 0

    cdef int _queue_ws(self, object msg, Py_ssize_t size) except -1:
        # msg: a frame (bytes) for OUT_FRAMES; str (text) or bytes (binary) for OUT_MESSAGES.
        if self.dropping:
            return 0
        if self.wq is None:
            self.wq = [msg]
        else:
            self.wq.append(msg)
        self.wq_bytes += size + ENTRY_OVERHEAD
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
        self.wq_bytes += PyBytes_GET_SIZE(item) + ENTRY_OVERHEAD
        if self.wq_bytes > self.max_buffer:
            return self._overflowed()
        if self.poll_waiter is not None:
            self._mark()
        return 0

    cdef bytes _data_frame(self, int opcode, bytes payload):
        # A text or binary frame for this session's WebSocket, compressed when it negotiated
        # permessage-deflate and the payload reaches its threshold.
        cdef Py_ssize_t n = PyBytes_GET_SIZE(payload)
        cdef WSTransport ws = self.ws
        if ws.deflate_wbits and n >= ws.deflate_threshold:
            return build_deflated_frame_c(opcode, <const unsigned char*>PyBytes_AS_STRING(payload), n,
                                          ws.deflate_wbits)
        return build_frame_c(opcode, <const unsigned char*>PyBytes_AS_STRING(payload), n)

    cdef int _queue_text(self, bytes pkt) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(pkt)
        if self.out == OUT_FRAMES:
            return self._queue_ws(self._data_frame(OP_TEXT, pkt), n)
        if self.out == OUT_MESSAGES:
            return self._queue_ws(pkt.decode("utf-8"), n)
        return self._queue_poll(pkt)

    cdef int _write_ws(self, list items, Py_ssize_t nbytes) except -1:
        # One hand-over of queued WebSocket output, already taken off the queue (a write may
        # queue more: the transport's callbacks can reach this session again).
        if self.out == OUT_MESSAGES:
            self.ws.ws_send_messages(items)
        elif len(items) == 1:
            self.ws.ws_write(items[0])
        elif nbytes >= WRITELINES_MIN and len(items) <= WRITELINES_MAX_PARTS:
            # Large output (big attachments are parts of their own): hand the parts over as
            # they are instead of copying them into one buffer.
            self.ws.ws_writelines(items)
        else:
            self.ws.ws_write(b"".join(items))
        return 0

    cdef int send_encoded(self, Encoded enc) except -1:
        global _dz_enc
        cdef bytes item
        cdef list frames
        cdef int wbits, k
        if self.state != ST_OPEN:
            return 0
        if self.out == OUT_FRAMES:
            wbits = self.ws.deflate_wbits
            # (v3 binary messages carry a type byte per connection: _send_encoded_v3, which
            # compresses each of them on its own.)
            if wbits and not enc.no_compress and not (self.eio3 and (enc.binary or enc.attachments)):
                if _dz_enc is not enc:
                    _dz_enc = enc
                    for k in range(16):
                        _dz_frames[k] = None
                frames = _dz_frames[wbits & 15]
                if frames is None:
                    frames = [self._data_frame(OP_BINARY if enc.binary else OP_TEXT, enc.message)]
                    for item in enc.attachments:
                        frames.append(self._data_frame(OP_BINARY, item))
                    _dz_frames[wbits & 15] = frames
                for item in frames:
                    self._queue_ws(item, PyBytes_GET_SIZE(item))
                return 0
            if not enc.attachments and not enc.binary:
                item = enc.ws_frames()
                return self._queue_ws(item, PyBytes_GET_SIZE(item))
            if self.eio3:
                return self._send_encoded_v3(enc)
            for item in enc.ws_parts():
                self._queue_ws(item, PyBytes_GET_SIZE(item))
        elif self.out == OUT_MESSAGES:
            if self.eio3 and (enc.binary or enc.attachments):
                return self._send_encoded_v3(enc)
            if enc.binary:
                return self._queue_ws(enc.message, PyBytes_GET_SIZE(enc.message))
            self._queue_ws(enc.message_str(), PyBytes_GET_SIZE(enc.message))
            for item in enc.attachments:
                self._queue_ws(item, PyBytes_GET_SIZE(item))
        else:
            for item in enc.poll_items():
                self._queue_poll(item)
        return 0

    cdef int _send_encoded_v3(self, Encoded enc) except -1:
        # Binary over an Engine.IO v3 WebSocket: each binary message gets its own frame, with
        # the type byte in front, so the shared frames of the broadcast do not fit.
        cdef bytes item
        if enc.binary:
            self.send_binary(enc.message)
            return 0
        self._queue_text(enc.message)
        for item in enc.attachments:
            self.send_binary(item)
        return 0

    def send_packet(self, Encoded enc):
        self.send_encoded(enc)

    cpdef send_eio(self, bytes pkt):
        if self.state == ST_OPEN:
            self._queue_text(pkt)

    cpdef send_binary(self, object data):
        cdef bytes b = data if type(data) is bytes else bytes(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        if self.state != ST_OPEN:
            return
        if self.eio3 and self.out != OUT_POLL:
            b = _V3_BINARY_TYPE + b
            n += 1
        if self.out == OUT_FRAMES:
            self._queue_ws(self._data_frame(OP_BINARY, b), n)
        elif self.out == OUT_MESSAGES:
            self._queue_ws(b, n)
        else:
            self._queue_poll(poll_binary(b))

    cpdef set_close_code(self, int code, str reason):
        self.ws_close_code = code
        self.ws_close_text = reason

    cpdef send_pong(self, bytes payload):
        # A WebSocket pong answering the peer's ping: queued with the session's other output,
        # so a peer that pings and never reads meets max_buffer like any other.
        if self.state == ST_OPEN and self.out == OUT_FRAMES:
            self._queue_ws(build_frame_c(OP_PONG, <const unsigned char*>PyBytes_AS_STRING(payload),
                                         PyBytes_GET_SIZE(payload)), PyBytes_GET_SIZE(payload))

    cpdef on_packet(self, int ptype, bytes data, bint binary):
        cdef object req
        cdef object sink
        if self.state != ST_OPEN or self.dropping:
            # Dropped for not reading: the rest of this read batch is not worth handling.
            return
        if binary or ptype == MESSAGE:
            try:
                sink = self.on_message
                if isinstance(sink, CompiledSink):
                    (<CompiledSink>sink).deliver(self, data, binary)
                else:
                    sink(self, data, binary)
            except Exception as exc:
                # Nothing an application does may escape into the transport's read callback.
                self.handler.message_error(self, exc)
        elif ptype == PONG:
            if self.eio3:
                self.handler.protocol_error(self, "invalid heartbeat direction")
                return
            self.pong_deadline = 0.0
            self.next_ping = _monotonic() + self.handler.heartbeat_interval
        elif ptype == CLOSE:
            if self.out == OUT_POLL and self.poll_waiter is not None:
                # As Node's engine.io: the client's close ends its pending long poll with a noop,
                # and the session is gone at once (no close packet waits for another poll).
                req = self.poll_waiter
                self.poll_waiter = None
                self.handler.answer_poll(self, req, _NOOP_PKT)
            self.close("client disconnect", False)
        elif ptype == NOOP:
            pass
        elif ptype == PING:  # from an older peer: answer it
            if self.eio3:
                # Engine.IO v3: the client pings; the next ping is due within the interval
                # plus the timeout (the sweep closes the session past this deadline).
                self.pong_deadline = _monotonic() + self.handler.heartbeat_interval + self.handler.ping_timeout
            self.send_eio(b"3" + data)
        else:
            self.handler.protocol_error(self, "unexpected packet type %d" % ptype)

    cpdef bint on_probe_packet(self, WSTransport ws, bytes payload) except -1:
        if ws is None:
            raise TypeError("on_probe_packet() needs the probing WebSocket, not None")
        if self.state != ST_OPEN or self.out != OUT_POLL:
            ws.ws_close(CLOSE_NORMAL, "")
            return False
        if payload == _PROBE_PING:
            ws.ws_answer_probe(self)
            self.handler.probe_started(self)
        elif payload == _UPGRADE_PKT:
            self.handler.conn_upgraded(self, ws)
            self.upgrade(ws)
            return True
        # anything else during the probe is ignored, as Engine.IO servers do
        return False

    cpdef end_poll(self):
        # Only a waiting long poll needs ending: a noop queued with no poll waiting would reach
        # the WebSocket once the upgrade completes, ahead of the application's messages.
        if self.out == OUT_POLL and self.poll_waiter is not None:
            self.send_eio(_NOOP_PKT)

    cpdef flush(self):
        cdef object req
        cdef list items
        cdef Py_ssize_t nbytes
        self.dirty = False
        if self.out != OUT_POLL:
            if not self.wq or self.ws.ws_paused:
                return
            items = self.wq
            nbytes = self.wq_bytes
            self.wq = None
            self.wq_bytes = 0
            self._write_ws(items, nbytes)
        elif self.poll_waiter is not None and self.pollq:
            req = self.poll_waiter
            self.poll_waiter = None
            self.handler.answer_poll(self, req, self._take_poll())

    cdef bytes _take_poll(self):
        cdef list items
        cdef bytes item
        if len(self.pollq) <= MAX_PAYLOAD_PACKETS:
            items = self.pollq
            self.pollq = None
            self.wq_bytes = 0
        else:
            items = self.pollq[:MAX_PAYLOAD_PACKETS]
            del self.pollq[:MAX_PAYLOAD_PACKETS]
            for item in items:
                self.wq_bytes -= PyBytes_GET_SIZE(item) + ENTRY_OVERHEAD
        return encode_payload(items)

    def take_poll(self):
        if not self.pollq:
            return None
        return self._take_poll()

    def resume(self):
        if self.wq:
            self._mark()

    def upgrade(self, WSTransport ws not None):
        cdef bytes item
        cdef list pending = self.pollq if self.pollq is not None else []
        self.pollq = None
        self.wq_bytes = 0
        self.ws = ws
        self.out = OUT_MESSAGES if ws.ws_messages else OUT_FRAMES
        for item in pending:
            if item == _NOOP_PKT:
                continue  # it only ever served to end a long poll
            if item[:1] == b"b":
                self.send_binary(_b64decode(item[1:]))
            else:
                self.send_eio(item)

    cpdef close(self, str reason, bint notify_peer=False):
        cdef object req
        cdef list items
        if self.state != ST_OPEN:
            return
        self.state = ST_CLOSING
        self.close_reason = reason
        if self.out != OUT_POLL:
            try:
                if notify_peer:
                    # Past the queue's checks: the close packet goes out even after an overflow.
                    if self.wq is None:
                        self.wq = []
                    self.wq.append(_CLOSE_PKT.decode() if self.out == OUT_MESSAGES
                                   else build_frame_c(OP_TEXT, <const unsigned char*>PyBytes_AS_STRING(_CLOSE_PKT), 1))
                if self.wq and (notify_peer or not self.ws.ws_paused):
                    items = self.wq
                    self.wq = None
                    self._write_ws(items, self.wq_bytes)
                self.ws.ws_close(self.ws_close_code, self.ws_close_text)
                if self.ws.reader is not None:
                    self.ws.reader.discard()
            except Exception:
                pass
            self.wq = None
            self.wq_bytes = 0
        else:
            if notify_peer:
                if self.pollq is None:
                    self.pollq = []
                self.pollq.append(_CLOSE_PKT)
                self.wq_bytes += 1
                self.close_queued = True
            if self.poll_waiter is not None:
                req = self.poll_waiter
                self.poll_waiter = None
                self.handler.answer_poll(self, req, encode_payload(self.pollq) if self.pollq else _CLOSE_PKT)
                self.pollq = None
                self.wq_bytes = 0
        self.state = ST_CLOSED
        self.handler.conn_closed(self, reason)


def sweep(object conns, double now, double interval, double timeout):
    return heartbeat(conns, now, interval, timeout, 0.0)[0]


def heartbeat(object conns, double now, double interval, double timeout, double slack,
              double partial_timeout=0.0, list stalled=None):
    # Pings due by now + slack go out (a little early is harmless); a session is expired only
    # once its deadline has passed.  The deadline counts from when the ping was due, unless the
    # sweep ran more than ``slack`` late (a blocked loop): then the client gets the full timeout.
    # With a ``stalled`` list, sessions holding partial data past its deadline (a WebSocket
    # frame or message incomplete for ``partial_timeout`` seconds, or ``partial_deadline``)
    # go there instead.
    cdef list expired = []
    cdef Conn c
    cdef double due = 0.0
    cdef double t, since, pdl
    for c in conns:
        if c.state != ST_OPEN:
            continue
        if stalled is not None:
            pdl = c.partial_deadline
            if partial_timeout > 0.0 and c.ws is not None and c.ws.reader is not None:
                since = c.ws.reader.partial_since
                if since > 0.0 and (pdl == 0.0 or since + partial_timeout < pdl):
                    pdl = since + partial_timeout
            if pdl > 0.0:
                if now >= pdl:
                    stalled.append(c)
                    continue
                if due == 0.0 or pdl < due:
                    due = pdl
        if c.pong_deadline > 0.0:
            if now >= c.pong_deadline:
                expired.append(c)
                continue
            t = c.pong_deadline
        elif now + slack >= c.next_ping:
            c.send_eio(_PING_PKT)
            if c.next_ping <= now and now - c.next_ping <= slack:
                c.pong_deadline = c.next_ping + timeout
            else:
                c.pong_deadline = now + timeout
            t = c.pong_deadline
        else:
            t = c.next_ping
        if due == 0.0 or t < due:
            due = t
    return expired, due
