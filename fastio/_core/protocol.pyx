# cython: language_level=3
# The native server's per-connection protocol (contracts in protocol.pyi).  One HttpProtocol per
# TCP connection: httptools parses the requests, served one at a time in arrival order (pipelined
# requests wait their turn behind a long poll); a WebSocket upgrade switches the same object to
# RFC 6455 frames, and it then carries an Engine.IO session (Conn) as its WSTransport.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from fastio._core.conn cimport Conn, WSTransport
from fastio._core.eio cimport MESSAGE
from fastio._core.wsframe cimport (
    FrameReader, build_frame_c, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, DEFAULT_MAX_MESSAGE,
    CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_NO_STATUS, CLOSE_POLICY_VIOLATION,
)

import asyncio
import collections
import httptools

from fastio._core.wsframe import WebSocketError, accept_key, build_close, parse_close

cdef object _HttpParserUpgrade = httptools.HttpParserUpgrade
cdef object _HttpParserError = httptools.HttpParserError
cdef object _HttpRequestParser = httptools.HttpRequestParser
cdef object _parse_url = httptools.parse_url
cdef object _deque = collections.deque
cdef object _get_running_loop = asyncio.get_running_loop

cdef enum:
    _YIELD_AFTER_FRAMES = 1024      # WebSocket frames from one read after which reading yields

cdef dict _REASONS = {
    101: b"Switching Protocols", 200: b"OK", 204: b"No Content", 301: b"Moved Permanently",
    302: b"Found", 304: b"Not Modified", 400: b"Bad Request", 401: b"Unauthorized",
    403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed", 413: b"Payload Too Large",
    431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
    503: b"Service Unavailable",
}

cdef enum:
    MAX_HEADER_BYTES = 65536        # request line and headers together
    DEFAULT_MAX_BODY = 1_000_000


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
        return self.proto.closed

    def accept_websocket(self, Conn conn, bint probe, list extra_headers=None):
        cdef bytes key = self.header(b"sec-websocket-key")
        cdef list parts
        if self.responded:
            return None
        self.responded = True
        parts = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
                 b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n"]
        if extra_headers:
            for k, v in extra_headers:
                parts.append(_b(k) + b": " + _b(v) + b"\r\n")
        parts.append(b"\r\n")
        self.proto.switch_to_ws(self, b"".join(parts), conn, probe)
        return self.proto


cdef class HttpProtocol(WSTransport):

    def __init__(self, app, Py_ssize_t max_body=DEFAULT_MAX_BODY, Py_ssize_t max_message=DEFAULT_MAX_MESSAGE):
        self.app = app
        self.max_body = max_body
        self.max_message = max_message
        self.pending = None
        self.ws_paused = False

    # -- asyncio protocol -------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self.peername = transport.get_extra_info("peername")
        self.sockname = getattr(self.app, "local_addr", None) or transport.get_extra_info("sockname")
        self.parser = _HttpRequestParser(self)
        self.app.connection_opened(self)

    def connection_lost(self, exc):
        cdef Request r
        self.closed = True
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
        self.ws_paused = True

    def resume_writing(self):
        self.ws_paused = False
        if self.ws_mode and self.conn is not None and not self.probing:
            self.conn.resume()

    def eof_received(self):
        return False

    def data_received(self, data):
        if self.ws_mode:
            self._ws_data(data)
            return
        if self.parse_failed:
            return
        try:
            self.parser.feed_data(data)
        except _HttpParserUpgrade as exc:
            self.upgrade_rest = bytes(data[exc.args[0]:]) if exc.args else b""
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
        self._next()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self):
        self.cur_url = bytearray()
        self.cur_headers = []
        self.cur_body = None
        self.header_bytes = 0

    def on_url(self, url):
        self.cur_url += url
        self.header_bytes += len(url)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge(431, "Request header fields too large")

    def on_header(self, name, value):
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge(431, "Request header fields too large")
        self.cur_headers.append((bytes(name).lower(), bytes(value)))

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
        r.keep_alive = self.parser.should_keep_alive()
        r.upgrade = self.parser.should_upgrade()
        r.http_version = self.parser.get_http_version()
        r.responded = False
        if self.pending is None:
            self.pending = _deque()
        self.pending.append(r)

    # -- request scheduling ----------------------------------------------------------------------

    cdef _next(self):
        cdef Request r
        while self.active is None and self.pending and not self.closed and not self.ws_mode:
            r = self.pending.popleft()
            self.active = r
            try:
                self.app.handle_request(r)
            except Exception as exc:
                self.app.log_exception("request handler failed", exc)
                if not r.responded:
                    r.keep_alive = False
                    r.respond(500, [(b"Content-Type", b"text/plain")], b"Internal Server Error")

    cdef _bad_http(self, int status, str reason):
        self.parse_failed = True
        if self.transport is None or self.closed:
            return
        body = ('{"code":3,"message":"%s"}' % reason).encode()
        self.transport.write(status_line(status) + b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        self.transport.close()

    cdef write_raw(self, bytes data):
        if not self.closed:
            self.transport.write(data)

    cdef respond_done(self, Request r, bytes data):
        if self.closed:
            return
        self.transport.write(data)
        if r is self.active:
            self.active = None
            if not r.keep_alive or r.upgrade:
                self.transport.close()
                self.closed = True
                return
            self._next()

    cdef switch_to_ws(self, Request r, bytes head, Conn conn, bint probe):
        cdef bytes rest
        if self.closed:
            return
        if conn is not None and not probe:
            # A new session's first frames (the open packet) go out in the same write as the 101.
            self.head_pending = head
        else:
            self.transport.write(head)
        self.ws_mode = True
        self.active = None
        self.pending = None
        self.parser = None
        self.reader = FrameReader(self.max_message, True)
        self.conn = conn
        self.probing = probe
        rest = self.upgrade_rest
        self.upgrade_rest = None
        if rest:
            self._ws_data(rest)

    # -- WebSocket -----------------------------------------------------------------------------

    cpdef ws_write(self, bytes data):
        if not self.closed and not self.close_sent:
            if self.head_pending is not None:
                data = self.head_pending + data
                self.head_pending = None
            self.transport.write(data)

    cpdef ws_writelines(self, list parts):
        if not self.closed and not self.close_sent:
            if self.head_pending is not None:
                parts.insert(0, self.head_pending)
                self.head_pending = None
            self.transport.writelines(parts)

    cpdef ws_close(self, int code=CLOSE_NORMAL, str reason=""):
        if self.closed:
            return
        if self.head_pending is not None:
            self.transport.write(self.head_pending)
            self.head_pending = None
        if not self.close_sent:
            self.close_sent = True
            self.transport.write(build_frame_c(OP_CLOSE, NULL, 0) if code == CLOSE_NO_STATUS
                                 else _frame(OP_CLOSE, build_close(code, reason)))
        if self.ws_paused:
            # The peer does not read: close() would wait for the buffer to drain, forever.
            self.transport.abort()
        else:
            self.transport.close()

    def close_transport(self):
        if self.closed or self.transport is None:
            return
        if self.ws_mode:
            if self.probing and self.conn is not None and not self.close_sent:
                # A session in the middle of its upgrade: the client may already have moved to
                # this socket (its upgrade packet not read yet), so it gets the close packet here too.
                self.ws_write(_frame(OP_TEXT, b"1"))
            self.ws_close(CLOSE_GOING_AWAY, "server shutdown")
        else:
            self.transport.close()

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
            self.transport.pause_reading()
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
                    self.transport.write(_frame(OP_PONG, payload))
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
            self.transport.resume_reading()

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
