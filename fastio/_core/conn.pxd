from fastio._core.packet cimport Encoded
from fastio._core.wsframe cimport FrameReader


cdef enum ConnState:
    ST_OPEN = 1
    ST_CLOSING = 2
    ST_CLOSED = 3


# How a session's output leaves it, decided when its transport is attached.
cdef enum OutMode:
    OUT_POLL = 0        # long-polling: payload items wait for the next GET
    OUT_FRAMES = 1      # a WebSocket framed here: bytes frames, ws_write/ws_writelines
    OUT_MESSAGES = 2    # a framework's WebSocket: whole messages, ws_send_messages


cdef class WSTransport:
    cdef public bint ws_paused
    # Read once, when a Conn attaches the transport: whole messages (ws_send_messages) rather
    # than frames.
    cdef public bint ws_messages
    # The frame reader of a transport that frames here (None otherwise): the heartbeat sweep
    # reads its partial_since.
    cdef FrameReader reader
    # permessage-deflate negotiated on this transport: the window bits its messages are
    # deflated with (0: not negotiated), and the smallest message that gets compressed.
    cdef public int deflate_wbits
    cdef public Py_ssize_t deflate_threshold
    cpdef ws_write(self, bytes data)
    cpdef ws_send_messages(self, list messages)
    cpdef ws_writelines(self, list parts)
    cpdef ws_close(self, int code=*, str reason=*)
    cpdef ws_answer_probe(self, Conn conn)


cdef class Flusher:
    cdef list dirty
    cdef bint scheduled
    cdef object loop
    cdef object _run_cb
    cdef int mark(self, Conn conn) except -1


cdef class Conn:
    cdef readonly str sid
    cdef public object handler
    cdef public object on_message
    cdef readonly WSTransport ws
    cdef OutMode out
    cdef public object environ
    cdef public object data
    cdef public object ext
    cdef public object poll_waiter
    cdef public double next_ping
    cdef public double pong_deadline
    cdef public Py_ssize_t max_buffer
    cdef readonly int state
    cdef readonly str close_reason
    cdef list wq                    # OUT_FRAMES: bytes; OUT_MESSAGES: str and bytes
    cdef Py_ssize_t wq_bytes
    cdef list pollq
    cdef Flusher flusher
    cdef bint dirty
    cdef readonly bint dropping     # past max_buffer: queue nothing more until the close
    cdef readonly bint close_queued # closed with a close packet waiting for the next poll
    # An Engine.IO v3 client: it pings (the server answers), and its WebSocket binary messages
    # carry the packet type as their first byte.
    cdef public bint eio3
    # When a partial message held for this session (a Socket.IO packet waiting for its
    # attachments) must be complete (time.monotonic(); 0.0: none).  The sweep closes the
    # session past it; the WebSocket frame reader's own partial data is checked there too.
    cdef public double partial_deadline
    cdef readonly int ws_close_code # the close code the WebSocket gets when the session closes
    cdef str ws_close_text          # and the reason that goes with it
    cpdef set_close_code(self, int code, str reason)

    cdef int _mark(self) except -1
    cdef int _overflowed(self) except -1
    cdef int _queue_ws(self, object msg, Py_ssize_t size) except -1
    cdef int _queue_poll(self, bytes item) except -1
    cdef int _queue_text(self, bytes pkt) except -1
    cdef bytes _data_frame(self, int opcode, bytes payload)
    cdef int _write_ws(self, list items, Py_ssize_t nbytes) except -1
    cdef bytes _take_poll(self)
    cdef int send_encoded(self, Encoded enc) except -1
    cdef int _send_encoded_v3(self, Encoded enc) except -1
    cpdef send_eio(self, bytes pkt)
    cpdef send_binary(self, object data)
    cpdef send_pong(self, bytes payload)
    cpdef on_packet(self, int ptype, bytes data, bint binary)
    cpdef bint on_probe_packet(self, WSTransport ws, bytes payload) except -1
    cpdef end_poll(self)
    cpdef flush(self)
    cpdef close(self, str reason, bint notify_peer=*)


# A message sink written in C (fastio._core.dispatch): a session hands its messages to it with
# a C call instead of a Python one.
cdef class CompiledSink:
    cdef int deliver(self, Conn conn, bytes data, bint binary) except -1
