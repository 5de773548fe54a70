# cython: language_level=3
# The native server's per-connection protocol (contracts in protocol.pyi).  One HttpProtocol per
# TCP connection: httptools parses the requests, served one at a time in arrival order (pipelined
# requests wait their turn behind a long poll); a WebSocket upgrade switches the same object to
# RFC 6455 frames, and it then carries an Engine.IO session (Conn) as its WSTransport.
#
# Every connection is bounded in time and memory: input is parsed in slices and only while the
# peer reads its responses (reading pauses otherwise), a request head is refused while it is still
# arriving once it passes max_header_size, and each connection carries a deadline that one sweep
# per server (expired(), run by the host) enforces: no timer per connection.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from fastio._core.conn cimport Conn, WSTransport
from fastio._core.eio cimport MESSAGE
from fastio._core.wsframe cimport (
    FrameReader, build_frame_c, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, DEFAULT_MAX_MESSAGE,
    CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_NO_STATUS, CLOSE_POLICY_VIOLATION,
)

cdef extern from *:
    '''
    /* Direct socket writes (Linux): the bytes sent, 0 when the socket is full, -1 on any other
       error (then the transport's own write reports it).  Elsewhere they are not compiled in. */
    #if defined(__linux__)
    #include <errno.h>
    #include <sys/socket.h>
    #include <sys/uio.h>
    #define FASTIO_DIRECT_WRITES 1
    #define FASTIO_IOV_STACK 64
    static Py_ssize_t fastio_send(int fd, const char *buf, size_t n) {
        ssize_t r;
        do { r = send(fd, buf, n, MSG_NOSIGNAL); } while (r < 0 && errno == EINTR);
        if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        return (Py_ssize_t)r;
    }
    /* parts: a list of bytes (checked by the caller); *total gets their length. */
    static Py_ssize_t fastio_sendv(int fd, PyObject *parts, Py_ssize_t *total) {
        struct iovec stack[FASTIO_IOV_STACK];
        struct iovec *iov = stack;
        struct msghdr msg;
        Py_ssize_t i, count = PyList_GET_SIZE(parts);
        ssize_t r;
        *total = 0;
        if (count > FASTIO_IOV_STACK) {
            iov = (struct iovec *)PyMem_Malloc(sizeof(struct iovec) * (size_t)count);
            if (iov == NULL) return -1;
        }
        for (i = 0; i < count; i++) {
            PyObject *part = PyList_GET_ITEM(parts, i);
            iov[i].iov_base = PyBytes_AS_STRING(part);
            iov[i].iov_len = (size_t)PyBytes_GET_SIZE(part);
            *total += PyBytes_GET_SIZE(part);
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)count;
        do { r = sendmsg(fd, &msg, MSG_NOSIGNAL); } while (r < 0 && errno == EINTR);
        if (iov != stack) PyMem_Free(iov);
        if (r < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        return (Py_ssize_t)r;
    }
    #else
    #define FASTIO_DIRECT_WRITES 0
    static Py_ssize_t fastio_send(int fd, const char *buf, size_t n) { return -1; }
    static Py_ssize_t fastio_sendv(int fd, PyObject *parts, Py_ssize_t *total) { *total = 0; return -1; }
    #endif
    '''
    int FASTIO_DIRECT_WRITES
    Py_ssize_t fastio_send(int fd, const char *buf, size_t n)
    Py_ssize_t fastio_sendv(int fd, list parts, Py_ssize_t *total)

import collections
import time
import httptools
from asyncio import get_running_loop

from fastio._core.wsframe import (
    WebSocketError, accept_key, build_close, negotiate_deflate, parse_close,
)

cdef object _HttpParserUpgrade = httptools.HttpParserUpgrade
cdef object _HttpParserError = httptools.HttpParserError
cdef object _HttpRequestParser = httptools.HttpRequestParser
cdef object _parse_url = httptools.parse_url
cdef object _deque = collections.deque
cdef object _monotonic = time.monotonic
cdef object _get_running_loop = get_running_loop

# uvloop's TCP transport: its socket is written with send()/sendmsg() here while nothing waits in
# the transport's own buffer (see HttpProtocol._write), which saves the transport's Python-level
# write call per write.  Any other transport (TLS, the standard library's loop) is written
# through its write() as usual.
try:
    from uvloop.loop import TCPTransport as _UVTCPTransport
except ImportError:  # pragma: no cover - uvloop is a dependency where available
    _UVTCPTransport = None

cdef enum:
    _YIELD_AFTER_FRAMES = 1024      # WebSocket frames from one read after which reading yields

cdef dict _REASONS = {
    101: b"Switching Protocols", 200: b"OK", 204: b"No Content", 301: b"Moved Permanently",
    302: b"Found", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized",
    403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
    413: b"Payload Too Large", 414: b"URI Too Long",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    503: b"Service Unavailable",
}

cdef enum:
    DEFAULT_MAX_HEADER = 65536      # request line and headers together
    DEFAULT_MAX_BODY = 1_000_000
    DEFAULT_MAX_WRITE_BUFFER = 16 * 1024 * 1024
    FEED_SLICE = 16384              # input handed to the parser at a time
    MAX_PENDING = 32                # parsed requests waiting their turn before reading stops
    PUMP_REQUESTS = 64              # requests served per loop iteration and connection
    PUMP_SLICES = 16                # slices parsed per loop iteration and connection
    LINGER_BYTES = 1 << 20          # input dropped after an error answer before the abort


cdef inline bytes _b(object v):
    if type(v) is bytes:
        return <bytes>v
    if isinstance(v, str):
        return (<str>v).encode("latin-1")
    return bytes(v)


def status_line(int status):
    return b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown"))


@cython.final
cdef class Request:

    def header(self, bytes name, default=None):
        cdef tuple h
        for h in self.headers:
            if h[0] == name:
                return h[1]
        return default

    @property
    def client(self):
        return self.proto.peername

    @property
    def server(self):
        return self.proto.sockname

    @property
    def protocol(self):
        return self.proto

    def respond(self, int status, list headers, body=b""):
        cdef list parts
        cdef bytes b = _b(body)
        if self.responded:
            return
        self.responded = True
        parts = [status_line(status)]
        for k, v in headers:
            parts.append(_b(k) + b": " + _b(v) + b"\r\n")
        parts.append(b"Content-Length: %d\r\n" % PyBytes_GET_SIZE(b))
        if not self.keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        parts.append(b)
        self.proto.respond_done(self, b"".join(parts))

    def start_response(self, int status, list headers):
        cdef list parts
        if self.responded:
            return
        self.responded = True
        self.streaming = True
        parts = [status_line(status)]
        for k, v in headers:
            parts.append(_b(k) + b": " + _b(v) + b"\r\n")
        parts.append(b"Transfer-Encoding: chunked\r\n")
        if not self.keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        self.proto.write_raw(b"".join(parts))

    def write(self, data):
        cdef bytes b = _b(data)
        if not self.streaming or self.ended or not b:
            return
        self.proto.write_raw(b"%x\r\n" % PyBytes_GET_SIZE(b) + b + b"\r\n")

    def end(self):
        if not self.streaming or self.ended:
            return
        self.ended = True
        self.proto.respond_done(self, b"0\r\n\r\n")

    @property
    def closed(self):
        return self.proto.closed or self.proto.closing

    def accept_websocket(self, Conn conn, bint probe, list extra_headers=None):
        cdef bytes key = self.header(b"sec-websocket-key")
        cdef list parts
        cdef tuple h
        cdef object deflate = None
        cdef Limits limits = self.proto.limits
        if self.responded:
            return None
        self.responded = True
        parts = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                 b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n"]
        if limits.websocket_compression:
            # Every Sec-WebSocket-Extensions line, in order, is one list of offers.
            deflate = negotiate_deflate(b",".join([h[1] for h in self.headers
                                                   if h[0] == b"sec-websocket-extensions"]) or None)
            if deflate is not None:
                parts.append(b"Sec-WebSocket-Extensions: " + deflate[0].encode() + b"\r\n")
                self.proto.deflate_wbits = deflate[1]
                self.proto.deflate_threshold = limits.compression_threshold
        if extra_headers:
            for k, v in extra_headers:
                parts.append(_b(k) + b": " + _b(v) + b"\r\n")
        parts.append(b"\r\n")
        self.proto.switch_to_ws(self, b"".join(parts), conn, probe)
        return self.proto


@cython.final
cdef class Limits:

    def __init__(self, Py_ssize_t max_header_size=DEFAULT_MAX_HEADER,
                 Py_ssize_t max_write_buffer=DEFAULT_MAX_WRITE_BUFFER, double headers_timeout=60.0,
                 double request_timeout=300.0, double keep_alive_timeout=5.0,
                 double upgrade_timeout=10.0, double close_timeout=5.0,
                 bint websocket_compression=False, Py_ssize_t compression_threshold=1024):
        self.websocket_compression = websocket_compression
        self.compression_threshold = compression_threshold
        self.max_header_size = max_header_size
        self.max_write_buffer = max_write_buffer
        self.headers_timeout = headers_timeout
        self.request_timeout = request_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.upgrade_timeout = upgrade_timeout
        self.close_timeout = close_timeout
        self.shutting_down = False

    def shortest_timeout(self):
        cdef double best = 0.0
        cdef double t
        for t in (self.headers_timeout, self.request_timeout, self.keep_alive_timeout,
                  self.upgrade_timeout, self.close_timeout):
            if t > 0.0 and (best == 0.0 or t < best):
                best = t
        return best


cdef Limits _DEFAULT_LIMITS = Limits()


def expired(object connections, double now):
    cdef list out = []
    cdef HttpProtocol p
    for p in connections:
        if p.deadline != 0.0 and p.deadline <= now:
            out.append(p)
    return out


cdef class HttpProtocol(WSTransport):

    def __init__(self, app, Py_ssize_t max_body=DEFAULT_MAX_BODY, Py_ssize_t max_message=DEFAULT_MAX_MESSAGE,
                 Limits limits=None):
        self.app = app
        self.max_body = max_body
        self.max_message = max_message
        self.limits = limits if limits is not None else _DEFAULT_LIMITS
        self.pending = None
        self.ws_paused = False

    # -- asyncio protocol -------------------------------------------------------------------

    def connection_made(self, transport):
        cdef double t = self.limits.headers_timeout
        self.transport = transport
        self.wfd = -1
        self.uv_buffered = False
        if FASTIO_DIRECT_WRITES and _UVTCPTransport is not None and type(transport) is _UVTCPTransport:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self.wfd = sock.fileno()
        self.peername = transport.get_extra_info("peername")
        self.sockname = getattr(self.app, "local_addr", None) or transport.get_extra_info("sockname")
        self.parser = _HttpRequestParser(self)
        # A new connection owes its first request head within headers_timeout.
        self.deadline = _monotonic() + t if t > 0.0 else 0.0
        self.app.connection_opened(self)

    def connection_lost(self, exc):
        cdef Request r
        self.wfd = -1
        self.closed = True
        self.lost = True
        self.deadline = 0.0
        self.inbuf = None
        self.app.connection_closed(self)
        if self.ws_mode:
            if self.conn is not None and not self.probing and self.conn.ws is self:
                self.conn.close("transport close" if exc is None or self.close_sent else "transport error")
            self.conn = None
            return
        r = self.active
        self.active = None
        if r is not None and r.on_abort is not None and (not r.responded or (r.streaming and not r.ended)):
            r.on_abort(r)
        self.pending = None

    def pause_writing(self):
        cdef double t
        self.ws_paused = True
        if not self.ws_mode and not self.closing:
            # The peer is not reading its responses: read nothing more until it does, and give
            # it request_timeout to catch up.
            self._set_reading(True)
            t = self.limits.request_timeout
            if t > 0.0:
                self.deadline = _monotonic() + t

    def resume_writing(self):
        self.ws_paused = False
        if self.ws_mode:
            if self.conn is not None and not self.probing:
                self.conn.resume()
        elif not self.closed and not self.closing:
            self._pump()

    def eof_received(self):
        return False

    def data_received(self, data):
        if self.ws_mode:
            self._ws_data(data)
            return
        if self.parse_failed or self.closing or self.closed:
            if self.parse_failed and not self.lost:
                # Lingering after an error answer: dropped, up to LINGER_BYTES.
                self.head_bytes += len(data)
                if self.head_bytes > LINGER_BYTES:
                    self.abort()
            return
        if self.upgrade_seen:
            # The upgrade request is not answered yet (reading pauses meanwhile): these are the
            # WebSocket's first frames.
            self.upgrade_rest = (self.upgrade_rest or b"") + bytes(data)
            return
        if self.inbuf is None:
            self.inbuf = data
            self.inpos = 0
        else:
            self.inbuf = bytes(self.inbuf[self.inpos:]) + bytes(data)
            self.inpos = 0
        self._pump()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self):
        cdef double t = self.limits.headers_timeout
        self.cur_url = bytearray()
        self.cur_headers = []
        self.cur_body = None
        self.header_bytes = 0
        self.head_bytes = 0
        self.parsing = True
        self.head_done = False
        self.began_in_slice = True
        self.msg_start = _monotonic()
        if t > 0.0:
            self.deadline = self.msg_start + t

    def on_url(self, url):
        cdef Py_ssize_t limit = self.limits.max_header_size
        self.cur_url += url
        self.header_bytes += len(url)
        if len(self.cur_url) > limit:
            raise _TooLarge(414, "Request URI too long")
        if self.header_bytes > limit:
            raise _TooLarge(431, "Request header fields too large")

    def on_header(self, name, value):
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.limits.max_header_size:
            raise _TooLarge(431, "Request header fields too large")
        self.cur_headers.append((bytes(name).lower(), bytes(value)))

    def on_headers_complete(self):
        cdef double t = self.limits.request_timeout
        cdef tuple h
        self.head_done = True
        if t > 0.0:
            self.deadline = self.msg_start + t
        for h in self.cur_headers:
            if h[0] == b"content-length":
                # Refused before a byte of the body is read (llhttp has checked the digits).
                try:
                    if int(h[1]) > self.max_body:
                        raise _TooLarge(413, "Request body too large")
                except ValueError:
                    raise _TooLarge(400, "Bad Content-Length")

    def on_body(self, body):
        if self.cur_body is None:
            self.cur_body = bytearray(body)
        else:
            self.cur_body += body
        if len(self.cur_body) > self.max_body:
            raise _TooLarge(413, "Request body too large")

    def on_message_complete(self):
        cdef Request r = Request.__new__(Request)
        cdef bytes url = bytes(self.cur_url)
        parsed = _parse_url(url)
        r.proto = self
        r.method = self.parser.get_method().decode("latin-1")
        r.url = url
        r.path = parsed.path.decode("latin-1") if parsed.path else "/"
        r.query_string = parsed.query or b""
        r.headers = self.cur_headers
        r.body = bytes(self.cur_body) if self.cur_body is not None else b""
        # The request owns them now; an idle connection keeps none of its last request.
        self.cur_headers = None
        self.cur_url = None
        self.cur_body = None
        self.parsing = False
        r.keep_alive = self.parser.should_keep_alive()
        r.upgrade = self.parser.should_upgrade()
        r.http_version = self.parser.get_http_version()
        r.responded = False
        if self.pending is None:
            self.pending = _deque()
        self.pending.append(r)

    # -- input and request scheduling ------------------------------------------------------------

    cdef _feed(self, object chunk):
        # One slice to the parser.  httptools keeps an incomplete header line in its own buffer,
        # out of the callbacks' sight: what it was fed while the head is incomplete is counted
        # here, so an endless header is refused while it arrives.  A slice in which the request
        # began is not counted (where it began is unknown): the bound is max_header_size plus
        # one slice, and the work stays constant per byte.
        cdef Py_ssize_t n = len(chunk)
        cdef Py_ssize_t off
        cdef Py_ssize_t limit = self.limits.max_header_size
        self.began_in_slice = False
        try:
            self.parser.feed_data(chunk)
        except _HttpParserUpgrade as exc:
            off = exc.args[0] if exc.args else n
            self.upgrade_rest = bytes(chunk[off:])
            self.upgrade_seen = True
            return
        except _HttpParserError as exc:
            # httptools reports an exception raised by a callback as a parser error.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _TooLarge):
                self._bad_http(cause.args[0], cause.args[1])
            else:
                self._bad_http(400, "Malformed HTTP request")
            return
        except _TooLarge as exc:
            self._bad_http(exc.args[0], exc.args[1])
            return
        if self.parsing and not self.head_done:
            if not self.began_in_slice:
                self.head_bytes += n
            # (An endless URL is refused by on_url, which sees every fragment of it.)
            if self.head_bytes > limit:
                self._bad_http(431, "Request header fields too large")

    cdef _pump(self):
        # The one place requests are parsed and served, iteratively: a response completing
        # inside a handler returns here instead of starting the next request on its stack.  Per
        # call it parses at most PUMP_SLICES slices and serves at most PUMP_REQUESTS requests;
        # the rest waits for the next loop iteration with reading paused, so one connection's
        # input never blocks the loop.  It serves nothing while the transport's write buffer is
        # above its high-water mark (resume_writing pumps again).
        cdef Request r
        cdef int requests = PUMP_REQUESTS
        cdef int slices = PUMP_SLICES
        cdef Py_ssize_t n, end
        cdef object buf
        cdef double t
        if self.pumping:
            return
        self.pumping = True
        try:
            while not self.closed and not self.closing and not self.ws_mode and not self.parse_failed:
                if self.active is None and self.pending:
                    if self.ws_paused:
                        break
                    if requests == 0:
                        self._schedule_pump()
                        break
                    requests -= 1
                    r = self.pending.popleft()
                    self.active = r
                    if r.upgrade:
                        t = self.limits.upgrade_timeout
                        self.deadline = _monotonic() + t if t > 0.0 else 0.0
                    elif not self.parsing:
                        self.deadline = 0.0
                    try:
                        self.app.handle_request(r)
                    except Exception as exc:
                        self.app.log_exception("request handler failed", exc)
                        if not r.responded:
                            r.keep_alive = False
                            r.respond(500, [(b"Content-Type", b"text/plain")], b"Internal Server Error")
                    continue
                if (self.inbuf is not None and not self.upgrade_seen and not self.ws_paused
                        and (self.pending is None or len(self.pending) < MAX_PENDING)):
                    if slices == 0:
                        self._schedule_pump()
                        break
                    slices -= 1
                    buf = self.inbuf
                    n = len(buf)
                    if self.inpos == 0 and n <= FEED_SLICE:
                        self.inbuf = None
                        self._feed(buf)
                    else:
                        end = self.inpos + FEED_SLICE
                        if end >= n:
                            self.inbuf = None
                            self._feed(memoryview(buf)[self.inpos:])
                            self.inpos = 0
                        else:
                            self._feed(memoryview(buf)[self.inpos:end])
                            self.inpos = end
                    if self.upgrade_seen and self.inbuf is not None:
                        self.upgrade_rest += bytes(self.inbuf[self.inpos:])
                        self.inbuf = None
                        self.inpos = 0
                    continue
                break
            if not self.closed and not self.closing and not self.ws_mode and not self.parse_failed:
                self._set_reading(self.inbuf is not None or self.upgrade_seen or self.ws_paused
                                  or self.pump_scheduled
                                  or (self.pending is not None and len(self.pending) >= MAX_PENDING))
                self._idle_deadline()
        finally:
            self.pumping = False

    cdef _schedule_pump(self):
        if not self.pump_scheduled:
            self.pump_scheduled = True
            _get_running_loop().call_soon(self._scheduled_pump)

    def _scheduled_pump(self):
        self.pump_scheduled = False
        self._pump()

    cdef _set_reading(self, bint paused):
        if paused == self.reading_paused or self.transport is None or self.transport.is_closing():
            return
        self.reading_paused = paused
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    cdef _idle_deadline(self):
        # Nothing parsed, served or waiting: the connection is idle for keep_alive_timeout.
        cdef double t
        if (not self.parsing and self.active is None and not self.pending and self.inbuf is None
                and not self.upgrade_seen):
            t = self.limits.keep_alive_timeout
            self.deadline = _monotonic() + t if t > 0.0 else 0.0

    cdef _check_write_budget(self):
        # Responses the peer does not read count against the same budget as a session's queue.
        if self.ws_paused and self.transport.get_write_buffer_size() > self.limits.max_write_buffer:
            self.abort()

    def timed_out(self):
        if self.lost or self.transport is None:
            return
        if (not self.ws_mode and not self.closed and not self.closing and not self.parse_failed and self.parsing
                and self.active is None and not self.ws_paused):
            self._linger(status_line(408) + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            if self.closing:
                return
        self.abort()

    def abort(self):
        if self.transport is None or self.lost:
            return
        self.closing = True
        self.deadline = 0.0
        self.inbuf = None
        self.wfd = -1
        self.transport.abort()

    cdef _close_gracefully(self):
        # transport.close() waits until the write buffer is sent; a peer that never reads gets
        # close_timeout (the sweep aborts then), or the shutdown deadline when the server stops.
        cdef double t = self.limits.close_timeout
        if self.closing or self.closed:
            return
        self.closing = True
        self.inbuf = None
        if self.limits.shutting_down:
            self.deadline = 0.0
        else:
            self.deadline = _monotonic() + t if t > 0.0 else 0.0
        self.wfd = -1
        self.transport.close()

    cdef _bad_http(self, int status, str reason):
        self.parse_failed = True
        self.inbuf = None
        if self.transport is None or self.closed or self.closing:
            return
        body = ('{"code":3,"message":"%s"}' % reason).encode()
        self._linger(status_line(status) + b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)

    cdef _linger(self, bytes response):
        # An error answer to a peer that may still be sending.  Closing with its input unread
        # would reset the connection, and the reset can destroy the answer before the peer reads
        # it; so the answer goes out, then our half of the connection is shut (FIN), and what the
        # peer still sends is read and dropped until it closes, close_timeout passes (the sweep
        # aborts then) or LINGER_BYTES were dropped.  Constant work per byte, nothing kept.
        cdef double t = self.limits.close_timeout
        self.parse_failed = True
        self.inbuf = None
        self.head_bytes = 0
        self._write(response)
        if self.limits.shutting_down or t <= 0.0 or not self.transport.can_write_eof():
            self._close_gracefully()
            return
        self.closing = True
        self.deadline = _monotonic() + t
        self.wfd = -1
        self.transport.write_eof()
        if self.reading_paused and not self.transport.is_closing():
            self.reading_paused = False
            self.transport.resume_reading()

    cdef int _write(self, bytes data) except -1:
        # Every byte of this connection leaves through here (or _writev), in order: straight to
        # the socket while the transport holds nothing, through transport.write() otherwise.
        cdef Py_ssize_t n
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        if self.wfd < 0 or size == 0 or not self._direct_ok():
            self.transport.write(data)
            return 0
        n = fastio_send(self.wfd, PyBytes_AS_STRING(data), <size_t>size)
        if n == size:
            return 0
        if n < 0:
            # An error the transport reports and handles its own way (connection_lost).
            self.transport.write(data)
            return 0
        # The socket is full: the rest waits in the transport, which writes it when it can.
        self.uv_buffered = True
        self.transport.write(data[n:])
        return 0

    cdef int _writev(self, list parts) except -1:
        cdef Py_ssize_t n, total = 0
        cdef object part
        if self.wfd < 0 or not parts or not self._direct_ok():
            self.transport.writelines(parts)
            return 0
        for part in parts:
            if type(part) is not bytes:
                self.transport.writelines(parts)
                return 0
        n = fastio_sendv(self.wfd, parts, &total)
        if n == total:
            return 0
        if n < 0:
            self.transport.writelines(parts)
            return 0
        self.uv_buffered = True
        self.transport.write(b"".join(parts)[n:])
        return 0

    cdef bint _direct_ok(self) except -1:
        # Not while the transport still holds earlier bytes (they go first), and never once it
        # is closing: its socket may be closed and its number taken by another connection.
        if self.transport.is_closing():
            self.wfd = -1
            return False
        if self.uv_buffered:
            if self.transport.get_write_buffer_size():
                return False
            self.uv_buffered = False
        return True

    cdef write_raw(self, bytes data):
        if not self.closed and not self.closing:
            self._write(data)
            self._check_write_budget()

    cdef respond_done(self, Request r, bytes data):
        if self.closed or self.closing:
            return
        self._write(data)
        if r is self.active:
            self.active = None
            if not r.keep_alive or r.upgrade:
                self._close_gracefully()
                self.closed = True
                return
            self._check_write_budget()
            self._pump()
        else:
            self._check_write_budget()

    cdef switch_to_ws(self, Request r, bytes head, Conn conn, bint probe):
        cdef bytes rest
        cdef double t = self.limits.upgrade_timeout
        if self.closed:
            return
        if conn is not None and not probe:
            # A new session's first frames (the open packet) go out in the same write as the 101.
            self.head_pending = head
        else:
            self._write(head)
        self.ws_mode = True
        self.active = None
        self.pending = None
        self.parser = None
        self.inbuf = None
        self.upgrade_seen = False
        self.reader = FrameReader(self.max_message, True, self.deflate_wbits != 0)
        self.conn = conn
        self.probing = probe
        # A new session's socket is watched by its heartbeat; a probe has upgrade_timeout to
        # finish the upgrade.
        self.deadline = _monotonic() + t if probe and t > 0.0 else 0.0
        self._set_reading(False)
        rest = self.upgrade_rest
        self.upgrade_rest = None
        if rest:
            self._ws_data(rest)

    # -- WebSocket -----------------------------------------------------------------------------

    cpdef ws_write(self, bytes data):
        if not self.closed and not self.close_sent and not self.closing:
            if self.head_pending is not None:
                data = self.head_pending + data
                self.head_pending = None
            self._write(data)

    cpdef ws_writelines(self, list parts):
        if not self.closed and not self.close_sent and not self.closing:
            if self.head_pending is not None:
                parts.insert(0, self.head_pending)
                self.head_pending = None
            self._writev(parts)

    cpdef ws_close(self, int code=CLOSE_NORMAL, str reason=""):
        if self.closed:
            return
        if self.head_pending is not None:
            self._write(self.head_pending)
            self.head_pending = None
        if not self.close_sent:
            self.close_sent = True
            self._write(build_frame_c(OP_CLOSE, NULL, 0) if code == CLOSE_NO_STATUS
                                 else _frame(OP_CLOSE, build_close(code, reason)))
        if self.conn is not None and self.conn.dropping and not self.limits.shutting_down:
            # Dropped for not reading: what is still buffered would never be read; the socket
            # goes now rather than when the peer does.
            self.abort()
        else:
            self._close_gracefully()

    def close_transport(self):
        if self.closed or self.transport is None:
            return
        if self.closing:
            return
        if self.ws_mode:
            if self.probing and self.conn is not None and not self.close_sent:
                # A session in the middle of its upgrade: the client may already have moved to
                # this socket (its upgrade packet not read yet), so it gets the close packet here too.
                self.ws_write(_frame(OP_TEXT, b"1"))
            self.ws_close(CLOSE_GOING_AWAY, "server shutdown")
        else:
            self._close_gracefully()

    cdef _ws_data(self, data):
        cdef list frames
        cdef tuple f
        cdef int op
        cdef bytes payload
        cdef Conn conn
        try:
            frames = self.reader.feed(data)
        except WebSocketError as exc:
            self._ws_fail(exc.args[0], exc.args[1])
            return
        if len(frames) >= _YIELD_AFTER_FRAMES and not self.closed:
            # libuv reads a socket up to 32 times per loop iteration: a flood of tiny frames
            # would hold the loop for hundreds of ms.  Read again on the next iteration.
            self._set_reading(True)
            _get_running_loop().call_soon(self._resume_ws_reading)
        for f in frames:
            if self.closed:
                return
            op = f[0]
            payload = f[1]
            conn = self.conn
            if op == OP_TEXT:
                if PyBytes_GET_SIZE(payload) == 0:
                    self._ws_fail(CLOSE_PROTOCOL_ERROR, "empty Engine.IO packet")
                    return
                if self.probing:
                    if conn is None:
                        self.ws_close(CLOSE_NORMAL, "")
                    elif conn.on_probe_packet(self, payload):
                        self.probing = False
                        self.deadline = 0.0
                elif conn is not None:
                    conn.on_packet(<int>(<unsigned char>PyBytes_AS_STRING(payload)[0]) - 48,
                                   payload[1:], False)
            elif op == OP_BINARY:
                if conn is not None and not self.probing:
                    conn.on_packet(MESSAGE, payload, True)
            elif op == OP_PING:
                if conn is not None and not self.probing and conn.ws is self:
                    conn.send_pong(payload)  # counted against the session's write budget
                elif self.ws_paused:
                    # No session's budget to count it against: a probe that pings and never reads.
                    self._ws_fail(CLOSE_POLICY_VIOLATION, "pings from a peer that does not read")
                    return
                else:
                    self._write(_frame(OP_PONG, payload))
            elif op == OP_CLOSE:
                try:
                    code, reason = parse_close(payload)
                except WebSocketError as exc:
                    self._ws_fail(exc.args[0], exc.args[1])
                    return
                # RFC 6455 5.5.1: answer a close with a close, echoing the code.
                self.ws_close(code, "")
                if conn is not None and not self.probing and conn.ws is self:
                    conn.close("transport close")
                return

    def _resume_ws_reading(self):
        if not self.closed:
            self._set_reading(False)

    cdef _ws_fail(self, int code, str reason):
        cdef Conn conn = self.conn
        self.app.log_ws_error(self, code, reason)
        self.ws_close(code, reason)
        if conn is not None and not self.probing and conn.ws is self:
            conn.close("transport error")


cdef inline bytes _frame(int op, bytes payload):
    return build_frame_c(op, <const unsigned char*>PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))


class _TooLarge(Exception):
    pass
