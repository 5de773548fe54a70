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
    cdef object pending              # parsed requests waiting their turn (a deque)
    cdef Request active              # the request being served
    cdef bytearray cur_url           # the request being parsed
    cdef list cur_headers
    cdef bytearray cur_body
    cdef Py_ssize_t header_bytes
    cdef public Py_ssize_t max_body
    cdef public Py_ssize_t max_message
    cdef bytes upgrade_rest          # bytes after the upgrade request: the first frames
    cdef bytes head_pending          # a new session's 101, sent with its first frames
    cdef bint parse_failed

    cdef _next(self)
    cdef _bad_http(self, int status, str reason)
    cdef write_raw(self, bytes data)
    cdef respond_done(self, Request r, bytes data)
    cdef switch_to_ws(self, Request r, bytes head, Conn conn, bint probe)
    cdef _ws_data(self, data)
    cdef _ws_fail(self, int code, str reason)
