cimport cython

from fastio._core.conn cimport Conn, WSTransport


cdef class HttpProtocol


@cython.final
cdef class Request:
    cdef public str method
    cdef public bytes url
    cdef public str path
    cdef public bytes query_string
    cdef public list headers
    cdef public bytes body
    cdef public bint keep_alive
    cdef public bint upgrade
    cdef public str http_version
    cdef public bint responded
    cdef public object on_abort
    cdef public bint streaming
    cdef public bint ended
    # Set by a host that builds the request's WSGI-style environ itself (uvicorn_ws); None: the
    # engine builds it from the request.
    cdef public object environ
    cdef HttpProtocol proto


# Bounds in time and size shared by every connection of one server (one object per server, so an
# idle connection carries a pointer, not its own copy).
@cython.final
cdef class Limits:
    cdef public Py_ssize_t max_header_size
    cdef public Py_ssize_t max_write_buffer
    cdef public double headers_timeout
    cdef public double request_timeout
    cdef public double keep_alive_timeout
    cdef public double upgrade_timeout
    cdef public double close_timeout
    cdef public bint shutting_down
    # permessage-deflate: offered WebSockets negotiate it; messages from this size compressed.
    cdef public bint websocket_compression
    cdef public Py_ssize_t compression_threshold


cdef class HttpProtocol(WSTransport):
    cdef object transport
    cdef object parser
    cdef public object app
    cdef public object peername
    cdef public object sockname
    cdef readonly bint closed
    cdef bint ws_mode
    cdef bint close_sent
    cdef public bint probing
    cdef public Conn conn
    cdef readonly Limits limits
    cdef object pending              # parsed requests waiting their turn (a deque)
    cdef Request active              # the request being served
    cdef bytearray cur_url           # the request being parsed
    cdef list cur_headers
    cdef bytearray cur_body
    cdef Py_ssize_t header_bytes     # URL and complete header lines of the request being parsed
    cdef Py_ssize_t head_bytes       # bytes fed while that request's head was still incomplete
    cdef public Py_ssize_t max_body
    cdef public Py_ssize_t max_message
    cdef bytes upgrade_rest          # bytes after the upgrade request: the first frames
    cdef bytes head_pending          # a new session's 101, sent with its first frames
    cdef bint parse_failed
    # Input not parsed yet (reading is paused while there is any): inbuf[inpos:].
    cdef object inbuf
    cdef Py_ssize_t inpos
    cdef bint reading_paused
    cdef bint pumping                # inside _pump: a response completing must not recurse
    cdef bint pump_scheduled
    cdef bint parsing                # a request's bytes have begun and it is not complete
    cdef bint head_done              # ... and its head (request line + headers) is complete
    cdef bint began_in_slice         # a request began in the slice being fed
    cdef bint upgrade_seen           # the parser stopped at an upgrade request
    cdef bint closing                # transport.close() or abort() called
    cdef bint lost                   # connection_lost() called
    cdef double msg_start
    # When the sweep ends this connection (time.monotonic(); 0: no deadline).
    cdef readonly double deadline
    # The socket written directly (-1: through the transport only), and whether the transport
    # still holds bytes of an earlier write that did not fit (they must go first).
    cdef int wfd
    cdef bint uv_buffered

    cdef _feed(self, object chunk)
    cdef _pump(self)
    cdef _schedule_pump(self)
    cdef _set_reading(self, bint paused)
    cdef _idle_deadline(self)
    cdef _check_write_budget(self)
    cdef _close_gracefully(self)
    cdef _bad_http(self, int status, str reason)
    cdef _linger(self, bytes response)
    cdef int _write(self, bytes data) except -1
    cdef int _writev(self, list parts) except -1
    cdef bint _direct_ok(self) except -1
    cdef write_raw(self, bytes data)
    cdef respond_done(self, Request r, bytes data)
    cdef switch_to_ws(self, Request r, bytes head, Conn conn, bint probe)
    cdef _ws_data(self, data)
    cdef _ws_fail(self, int code, str reason)
