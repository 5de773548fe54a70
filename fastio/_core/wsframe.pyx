# cython: language_level=3
# (boundscheck and wraparound, on in a FASTIO_DEBUG=1 build, and cdivision come from setup.py)
# RFC 6455 WebSocket framing: an incremental frame reader and frame builders (contracts in
# wsframe.pyi).
cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from binascii import b2a_base64
from hashlib import sha1

cdef extern from "zlib.h":
    ctypedef struct z_stream:
        const unsigned char* next_in
        unsigned int avail_in
        unsigned char* next_out
        unsigned int avail_out
        const char* msg
    int Z_OK, Z_STREAM_END, Z_BUF_ERROR, Z_NO_FLUSH, Z_SYNC_FLUSH, Z_DEFLATED
    int Z_DEFAULT_STRATEGY, Z_DEFAULT_COMPRESSION
    int deflateInit2(z_stream* strm, int level, int method, int windowBits, int memLevel,
                     int strategy) nogil
    int deflate(z_stream* strm, int flush) nogil
    int deflateReset(z_stream* strm) nogil
    int deflateEnd(z_stream* strm) nogil
    unsigned long deflateBound(z_stream* strm, unsigned long sourceLen) nogil
    int inflateInit2(z_stream* strm, int windowBits) nogil
    int inflate(z_stream* strm, int flush) nogil
    int inflateReset(z_stream* strm) nogil

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX
    bint PyUnicode_Check(object o)


globals().update(
    DEFAULT_PARTIAL_BUDGET=DEFAULT_PARTIAL_BUDGET,
    OP_CONT=OP_CONT,
    OP_TEXT=OP_TEXT,
    OP_BINARY=OP_BINARY,
    OP_CLOSE=OP_CLOSE,
    OP_PING=OP_PING,
    OP_PONG=OP_PONG,
)

cdef enum:
    _LEN16_MAX = 65535          # payload lengths past this take the 8-byte length field
    _SHRINK_ABOVE = 65536       # free a larger reassembly buffer once its message is done
    # A frame's payload up to this size gets its final buffer when the header arrives; a larger
    # one grows as its bytes arrive, so a header alone cannot make us reserve a declared size.
    _PREALLOC_MAX = 65536
    _MIN_ALLOC = 256
    _MAX_CLOSE_REASON = 123     # 125-byte control payload minus the 2-byte code
    _MAX_HEADER = 14
    # permessage-deflate: zlib's default level and memLevel (Node's ws uses the same), so a
    # deflate stream at the 2**15 window holds about 256 KiB; there is one per window size in
    # the process, none per connection.
    _DEFLATE_MEM_LEVEL = 8
    _INFLATE_CHUNK_MIN = 4096
    _UINT_CHUNK = 1 << 30       # zlib's avail_in/avail_out are unsigned int

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocketError(Exception):

    def __init__(self, code, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


# ---------------------------------------------------------------------------
# The process-wide budget for partial messages (every FrameReader and Socket.IO Decoder)

cdef Py_ssize_t _partial_total = 0
cdef Py_ssize_t _partial_budget = DEFAULT_PARTIAL_BUDGET


cdef bint partial_take(Py_ssize_t n) noexcept:
    global _partial_total
    if n > 0 and _partial_total + n > _partial_budget:
        return False
    _partial_total += n
    return True


cdef void partial_give(Py_ssize_t n) noexcept:
    global _partial_total
    _partial_total -= n


cdef double monotonic_now() noexcept nogil:
    # The clock of Python's time.monotonic() on Linux and the BSDs.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def set_partial_budget(Py_ssize_t limit):
    global _partial_budget
    if limit < 0:
        raise ValueError("the partial message budget must be >= 0")
    _partial_budget = limit


def partial_budget():
    return _partial_budget


def partial_bytes():
    return _partial_total


# ---------------------------------------------------------------------------
# C helpers


cdef void unmask_copy(unsigned char* dst, const unsigned char* src, Py_ssize_t n,
                      const unsigned char* key) noexcept nogil:
    cdef uint32_t k32
    cdef uint64_t k64, w0, w1, w2, w3
    cdef Py_ssize_t i = 0
    memcpy(&k32, key, 4)
    # Both halves hold the key in memory order, so this is endian-neutral.
    k64 = (<uint64_t>k32 << 32) | k32
    while i + 32 <= n:
        memcpy(&w0, src + i, 8)
        memcpy(&w1, src + i + 8, 8)
        memcpy(&w2, src + i + 16, 8)
        memcpy(&w3, src + i + 24, 8)
        w0 ^= k64
        w1 ^= k64
        w2 ^= k64
        w3 ^= k64
        memcpy(dst + i, &w0, 8)
        memcpy(dst + i + 8, &w1, 8)
        memcpy(dst + i + 16, &w2, 8)
        memcpy(dst + i + 24, &w3, 8)
        i += 32
    while i + 8 <= n:
        memcpy(&w0, src + i, 8)
        w0 ^= k64
        memcpy(dst + i, &w0, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ key[i & 3]
        i += 1


cdef bint validate_utf8(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef uint64_t w0, w1
    cdef unsigned char c, c1
    while i < n:
        c = s[i]
        if c < 0x80:
            while i + 16 <= n:
                memcpy(&w0, s + i, 8)
                memcpy(&w1, s + i + 8, 8)
                if (w0 | w1) & 0x8080808080808080ULL:
                    break
                i += 16
            if i + 8 <= n:
                memcpy(&w0, s + i, 8)
                if (w0 & 0x8080808080808080ULL) == 0:
                    i += 8
            while i < n and s[i] < 0x80:
                i += 1
            continue
        if c < 0xC2:
            # stray continuation byte, or C0/C1 (always an overlong 2-byte form)
            return False
        elif c < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif c < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if c == 0xE0:
                if c1 < 0xA0 or c1 > 0xBF:      # overlong
                    return False
            elif c == 0xED:
                if c1 < 0x80 or c1 > 0x9F:      # UTF-16 surrogates U+D800..U+DFFF
                    return False
            elif (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80:
                return False
            i += 3
        elif c < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if c == 0xF0:
                if c1 < 0x90 or c1 > 0xBF:      # overlong
                    return False
            elif c == 0xF4:
                if c1 < 0x80 or c1 > 0x8F:      # above U+10FFFF
                    return False
            elif (c1 & 0xC0) != 0x80:
                return False
            if (s[i + 2] & 0xC0) != 0x80 or (s[i + 3] & 0xC0) != 0x80:
                return False
            i += 4
        else:
            return False
    return True


cdef inline Py_ssize_t _header_size(Py_ssize_t n, bint masked) noexcept nogil:
    cdef Py_ssize_t size = 2
    if n > _LEN16_MAX:
        size = 10
    elif n >= 126:
        size = 4
    if masked:
        size += 4
    return size


cdef inline Py_ssize_t _write_header(unsigned char* o, unsigned char b0, Py_ssize_t n,
                                     const unsigned char* key) noexcept nogil:
    cdef unsigned char mbit = 0x80 if key != NULL else 0
    cdef uint64_t v
    cdef Py_ssize_t pos, k
    o[0] = b0
    if n < 126:
        o[1] = mbit | <unsigned char>n
        pos = 2
    elif n <= _LEN16_MAX:
        o[1] = mbit | 126
        o[2] = <unsigned char>(n >> 8)
        o[3] = <unsigned char>n
        pos = 4
    else:
        o[1] = mbit | 127
        v = <uint64_t>n
        for k in range(8):
            o[2 + k] = <unsigned char>(v >> (56 - 8 * k))
        pos = 10
    if key != NULL:
        memcpy(o + pos, key, 4)
        pos += 4
    return pos


cdef inline bint _valid_close_code(int code) noexcept nogil:
    # Codes a peer may put on the wire (RFC 6455 7.4 plus the IANA registry);
    # 1004/1005/1006/1015 are reserved and must never be sent.
    if 1000 <= code <= 1003 or 1007 <= code <= 1014:
        return True
    return 3000 <= code <= 4999


cdef inline Py_ssize_t _grow_capacity(Py_ssize_t cap, Py_ssize_t need,
                                      Py_ssize_t limit) noexcept nogil:
    cdef Py_ssize_t new_cap
    if cap > PY_SSIZE_T_MAX // 2:
        new_cap = PY_SSIZE_T_MAX
    else:
        new_cap = cap * 2
    if new_cap < _MIN_ALLOC:
        new_cap = _MIN_ALLOC
    if limit >= need and new_cap > limit:
        new_cap = limit
    if new_cap < need:
        new_cap = need
    return new_cap


# ---------------------------------------------------------------------------
# permessage-deflate (RFC 7692)

cdef z_stream _deflaters[16]        # by window bits, 9..15; created on first use
cdef bint _deflater_ready[16]
cdef z_stream _inflater
cdef bint _inflater_ready = False
cdef unsigned char _TAIL[4]
_TAIL[0] = 0
_TAIL[1] = 0
_TAIL[2] = 0xFF
_TAIL[3] = 0xFF
cdef int _deflate_level = Z_DEFAULT_COMPRESSION


def set_deflate_level(int level):
    global _deflate_level
    cdef int k
    if not -1 <= level <= 9:
        raise ValueError("the deflate level must be -1 (zlib's default) or 0..9")
    _deflate_level = level
    for k in range(16):
        # Streams made with the old level are freed and remade on next use.
        if _deflater_ready[k]:
            deflateEnd(&_deflaters[k])
            _deflater_ready[k] = False


cdef z_stream* _deflater(int wbits) except NULL:
    cdef z_stream* z
    if wbits < 9 or wbits > 15:
        raise ValueError("window bits must be 9..15")
    z = &_deflaters[wbits]
    if not _deflater_ready[wbits]:
        memset(z, 0, sizeof(z_stream))
        # Negative window bits: a raw deflate stream, no zlib header or trailer.
        if deflateInit2(z, _deflate_level, Z_DEFLATED, -wbits, _DEFLATE_MEM_LEVEL,
                        Z_DEFAULT_STRATEGY) != Z_OK:
            raise MemoryError("deflateInit2 failed")
        _deflater_ready[wbits] = True
    else:
        deflateReset(z)
    return z


cdef bytes build_deflated_frame_c(int opcode, const unsigned char* data, Py_ssize_t n, int wbits):
    cdef z_stream* z = _deflater(wbits)
    cdef Py_ssize_t cap, hl, out_n, pos = 0, take
    cdef unsigned char* buf
    cdef bytes out
    cdef int rc
    # What a sync flush can need, plus room for the frame header in front.
    cap = <Py_ssize_t>deflateBound(z, <unsigned long>n) + 16
    buf = <unsigned char*>malloc(cap + _MAX_HEADER)
    if buf == NULL:
        raise MemoryError()
    try:
        z.next_out = buf + _MAX_HEADER
        z.avail_out = <unsigned int>cap if cap < _UINT_CHUNK else _UINT_CHUNK
        while True:
            take = n - pos
            if take > _UINT_CHUNK:
                take = _UINT_CHUNK
            z.next_in = data + pos
            z.avail_in = <unsigned int>take
            pos += take
            with nogil:
                rc = deflate(z, Z_SYNC_FLUSH if pos == n else Z_NO_FLUSH)
            if rc != Z_OK and not (rc == Z_BUF_ERROR and take == 0):
                raise MemoryError("deflate failed")
            if pos == n:
                break
        if z.avail_in != 0 or z.avail_out == 0:
            # deflateBound leaves room for the flush: not reached, but never send a cut stream.
            raise MemoryError("deflate output larger than its bound")
        out_n = (z.next_out - buf) - _MAX_HEADER
        # RFC 7692 7.2.1: a sync flush ends with 00 00 FF FF, which the sender leaves off.
        if out_n >= 4 and memcmp(z.next_out - 4, _TAIL, 4) == 0:
            out_n -= 4
        hl = _header_size(out_n, False)
        _write_header(buf + _MAX_HEADER - hl, <unsigned char>(0xC0 | opcode), out_n, NULL)
        out = PyBytes_FromStringAndSize(<char*>buf + _MAX_HEADER - hl, hl + out_n)
    finally:
        free(buf)
    return out


cdef bytes inflate_message(const unsigned char* data, Py_ssize_t n, Py_ssize_t limit):
    global _inflater_ready
    cdef z_stream* z = &_inflater
    cdef unsigned char* buf = NULL
    cdef unsigned char* nb
    cdef Py_ssize_t cap, used = 0, stop
    cdef int rc, step
    cdef bytes out
    if not _inflater_ready:
        memset(z, 0, sizeof(z_stream))
        # The largest window: it reads a stream deflated with any smaller one.
        if inflateInit2(z, -15) != Z_OK:
            raise MemoryError("inflateInit2 failed")
        _inflater_ready = True
    else:
        inflateReset(z)
    # Output may grow to limit + 1 bytes: one byte past the limit proves the message too big,
    # so a small frame that inflates to gigabytes costs no more than the limit.
    stop = limit + 1 if limit < PY_SSIZE_T_MAX else limit
    cap = n * 4 if n < stop // 4 else stop
    if cap < _INFLATE_CHUNK_MIN:
        cap = _INFLATE_CHUNK_MIN if stop > _INFLATE_CHUNK_MIN else stop
    buf = <unsigned char*>malloc(cap if cap > 0 else 1)
    if buf == NULL:
        raise MemoryError()
    try:
        # Two steps: the message, then the 00 00 FF FF the sender removed (RFC 7692 7.2.2).
        for step in range(2):
            if step == 0:
                z.next_in = data
                z.avail_in = <unsigned int>n
            else:
                z.next_in = _TAIL
                z.avail_in = 4
            while True:
                if used == cap:
                    if cap >= stop:
                        raise WebSocketError(CLOSE_TOO_BIG, "message too big")
                    cap = _grow_capacity(cap, cap + 1, stop)
                    nb = <unsigned char*>realloc(buf, cap)
                    if nb == NULL:
                        raise MemoryError()
                    buf = nb
                z.next_out = buf + used
                z.avail_out = <unsigned int>(cap - used) if cap - used < _UINT_CHUNK else _UINT_CHUNK
                with nogil:
                    rc = inflate(z, Z_SYNC_FLUSH)
                used = z.next_out - buf
                if used > limit:
                    raise WebSocketError(CLOSE_TOO_BIG, "message too big")
                if rc == Z_STREAM_END:
                    # A final block: nothing after it may follow in this message.
                    if z.avail_in and step == 0:
                        raise WebSocketError(CLOSE_INVALID_DATA, "invalid compressed data")
                    break
                if rc == Z_BUF_ERROR and z.avail_in == 0:
                    break
                if rc != Z_OK:
                    raise WebSocketError(CLOSE_INVALID_DATA, "invalid compressed data")
                if z.avail_in == 0 and z.avail_out != 0:
                    break
            if rc == Z_STREAM_END:
                break
        out = PyBytes_FromStringAndSize(<char*>buf, used)
    finally:
        free(buf)
    return out


def deflate_frame(int opcode, object payload, int wbits=15):
    cdef const unsigned char* data
    cdef Py_ssize_t n
    cdef Py_buffer view
    if opcode != OP_TEXT and opcode != OP_BINARY:
        raise ValueError("only data frames are compressed")
    if PyUnicode_Check(payload):
        data = <const unsigned char*>PyUnicode_AsUTF8AndSize(payload, &n)
        return build_deflated_frame_c(opcode, data, n, wbits)
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        return build_deflated_frame_c(opcode, <const unsigned char*>view.buf, view.len, wbits)
    finally:
        PyBuffer_Release(&view)


def inflate_payload(object payload, Py_ssize_t limit=DEFAULT_MAX_MESSAGE):
    cdef Py_buffer view
    if limit < 0:
        raise ValueError("limit must be >= 0")
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        return inflate_message(<const unsigned char*>view.buf, view.len, limit)
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------------------
# Reader


@cython.final
cdef class FrameReader:

    def __init__(self, Py_ssize_t max_message_size=DEFAULT_MAX_MESSAGE, bint require_mask=True,
                 bint compression=False):
        if max_message_size < 0:
            raise ValueError("max_message_size must be >= 0")
        self.max_message_size = max_message_size
        self.require_mask = require_mask
        self.compression = compression
        self._msg_compressed = False
        self._release_buffers()
        self._hlen = 0
        self._need = 0
        self._got = 0
        self._dest = None
        self._dptr = NULL
        self._msg_len = 0
        self._msg_opcode = 0
        self._error_code = 0
        self._error_reason = None
        self._unaccount()
        self.partial_since = 0.0

    def __dealloc__(self):
        self._unaccount()
        self._release_buffers()

    cdef void _unaccount(self) noexcept:
        if self._accounted:
            partial_give(self._accounted)
            self._accounted = 0

    cdef int _account(self) except -1:
        # Bring this reader's share of the partial budget up to date after a feed: what it
        # holds while a frame or message is incomplete, nothing once the stream is between
        # messages (a small kept reassembly buffer is not partial data).
        cdef Py_ssize_t held = 0
        cdef bint partial = self._hlen > 0 or self._need > 0 or self._msg_opcode != 0
        if partial:
            held = self._msg_cap + (PyBytes_GET_SIZE(self._dest) if self._dest is not None else 0)
            if self.partial_since == 0.0:
                self.partial_since = monotonic_now()
        else:
            self.partial_since = 0.0
        if held > self._accounted:
            if not partial_take(held - self._accounted):
                self._fail(CLOSE_POLICY_VIOLATION, "server busy: too much partial message data")
        elif held < self._accounted:
            partial_give(self._accounted - held)
        self._accounted = held
        return 0

    cdef void _release_buffers(self) noexcept:
        free(self._msg)
        self._msg = NULL
        self._msg_cap = 0

    cdef int _fail(self, int code, str reason) except -1:
        self._error_code = code
        self._error_reason = reason
        self._dest = None
        self._unaccount()
        self._release_buffers()
        raise WebSocketError(code, reason)

    @property
    def reserved(self):
        return self._msg_cap + (PyBytes_GET_SIZE(self._dest) if self._dest is not None else 0)

    cpdef discard(self):
        # The connection is closing: free what is held now, not when the transport goes.
        self._discarded = True
        self._dest = None
        self._dptr = NULL
        self._hlen = 0
        self._need = 0
        self._msg_opcode = 0
        self._msg_len = 0
        self.partial_since = 0.0
        self._unaccount()
        self._release_buffers()

    cpdef list feed(self, data):
        cdef list out = []
        cdef Py_buffer view
        if self._discarded:
            return out
        if self._error_code:
            raise WebSocketError(self._error_code, self._error_reason)
        if PyBytes_CheckExact(data):
            self._consume(<const unsigned char*>PyBytes_AS_STRING(data),
                          PyBytes_GET_SIZE(data), out)
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                self._consume(<const unsigned char*>view.buf, view.len, out)
            finally:
                PyBuffer_Release(&view)
        return out

    cdef int _consume(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t pos = 0
        if n == 0:
            return 0
        try:
            try:
                if self._hlen > 0 or self._need > 0:
                    pos = self._feed_pending(p, n, out)
                if pos < n:
                    self._feed_direct(p + pos, n - pos, out)
                self._account()
            finally:
                if self._inflated:
                    partial_give(self._inflated)
                    self._inflated = 0
        except WebSocketError:
            raise
        except BaseException:
            # e.g. MemoryError: the stream position is lost, so stop here.
            if not self._error_code:
                self._error_code = CLOSE_INTERNAL_ERROR
                self._error_reason = "internal error while reading frames"
                self._dest = None
                self._unaccount()
            raise
        return 0

    cdef Py_ssize_t _parse_header(self, const unsigned char* p, Py_ssize_t n,
                                  FrameHeader* h) except -1:
        # Validate and decode a frame header; 0 if more bytes are needed.
        #
        # The rules that depend only on the first two bytes are checked as soon
        # as those are available, the length limits once the header is whole.
        cdef unsigned char b0, b1, len7
        cdef int opcode
        cdef Py_ssize_t hl, off, k
        cdef uint64_t length, room
        if n < 2:
            return 0
        b0 = p[0]
        b1 = p[1]
        opcode = b0 & 0x0F
        if b0 & 0x70:
            # RFC 7692 6: with permessage-deflate, RSV1 marks the first frame of a compressed
            # data message; never a continuation or a control frame.
            if (b0 & 0x30 or not self.compression or opcode == OP_CONT
                    or opcode >= OP_CLOSE):
                self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set without a negotiated extension")
        len7 = b1 & 0x7F
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not (b0 & 0x80):
                self._fail(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if len7 > 125:
                self._fail(CLOSE_PROTOCOL_ERROR, "control frame payload longer than 125 bytes")
        elif opcode > OP_BINARY:
            self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        elif opcode == OP_CONT:
            if self._msg_opcode == 0:
                self._fail(CLOSE_PROTOCOL_ERROR, "continuation frame without a message in progress")
        elif self._msg_opcode != 0:
            self._fail(CLOSE_PROTOCOL_ERROR, "new data frame while a fragmented message is in progress")
        if (b1 >> 7) != self.require_mask:
            if self.require_mask:
                self._fail(CLOSE_PROTOCOL_ERROR, "unmasked frame from client")
            self._fail(CLOSE_PROTOCOL_ERROR, "masked frame from server")

        if len7 == 126:
            hl = 4
        elif len7 == 127:
            hl = 10
        else:
            hl = 2
        off = hl
        if b1 & 0x80:
            hl += 4
        if n < hl:
            return 0

        if len7 == 126:
            length = (<uint64_t>p[2] << 8) | p[3]
        elif len7 == 127:
            length = 0
            for k in range(8):
                length = (length << 8) | p[2 + k]
            if length >> 63:
                self._fail(CLOSE_PROTOCOL_ERROR, "64-bit payload length with the high bit set")
        else:
            length = len7

        if opcode < OP_CLOSE:
            room = <uint64_t>self.max_message_size
            if opcode == OP_CONT:
                room -= <uint64_t>self._msg_len
            if length > room or length > <uint64_t>(PY_SSIZE_T_MAX - _MAX_HEADER):
                self._fail(CLOSE_TOO_BIG, "message too big")

        h.fin = b0 >> 7
        h.opcode = opcode
        h.masked = b1 >> 7
        h.rsv1 = (b0 >> 6) & 1
        if h.masked:
            memcpy(h.key, p + off, 4)
        h.length = length
        h.header_len = hl
        return hl

    cdef int _msg_reserve(self, Py_ssize_t n, Py_ssize_t final=0) except -1:
        # ``final``: the message's whole size when known (its last frame is arriving), so the
        # doubling stops there instead of holding up to twice what the message needs.
        cdef Py_ssize_t need = self._msg_len + n
        cdef Py_ssize_t new_cap
        cdef unsigned char* nb
        if need > self._msg_cap:
            new_cap = _grow_capacity(self._msg_cap, need, self.max_message_size)
            if final >= need and new_cap > final:
                new_cap = final
            # Refused before the allocation, not after: the budget bounds memory, not a count.
            if not partial_take(new_cap - self._msg_cap):
                self._fail(CLOSE_POLICY_VIOLATION, "server busy: too much partial message data")
            self._accounted += new_cap - self._msg_cap
            nb = <unsigned char*>realloc(self._msg, new_cap)
            if nb == NULL:
                raise MemoryError()
            self._msg = nb
            self._msg_cap = new_cap
        return 0

    cdef int _complete_message(self, list out) except -1:
        cdef int opcode = self._msg_opcode
        cdef bytes res
        if self._msg_compressed:
            res = self._finish_payload(opcode, True, None)
        else:
            if opcode == OP_TEXT and not validate_utf8(self._msg, self._msg_len):
                self._fail(CLOSE_INVALID_DATA, "invalid UTF-8 in text message")
            res = PyBytes_FromStringAndSize(<char*>self._msg, self._msg_len)
        self._msg_opcode = 0
        self._msg_len = 0
        if self._msg_cap > _SHRINK_ABOVE:
            free(self._msg)
            self._msg = NULL
            self._msg_cap = 0
        out.append((opcode, res))
        return 0

    cdef bytes _finish_payload(self, int opcode, bint compressed, bytes res):
        # A complete compressed message (``res``, or the reassembly buffer when None): inflate
        # it within max_message_size, then check text as UTF-8.
        cdef const unsigned char* p
        cdef Py_ssize_t n
        if res is None:
            p = self._msg
            n = self._msg_len
        else:
            p = <const unsigned char*>PyBytes_AS_STRING(res)
            n = PyBytes_GET_SIZE(res)
        try:
            res = inflate_message(p, n, self.max_message_size)
        except WebSocketError as exc:
            self._fail(exc.args[0], exc.args[1])
        n = PyBytes_GET_SIZE(res)
        if not partial_take(n):
            self._fail(CLOSE_POLICY_VIOLATION, "server busy: too much inflated message data")
        self._inflated += n
        if opcode == OP_TEXT and not validate_utf8(
                <const unsigned char*>PyBytes_AS_STRING(res), PyBytes_GET_SIZE(res)):
            self._fail(CLOSE_INVALID_DATA, "invalid UTF-8 in text message")
        return res

    cdef int _handle_frame(self, FrameHeader* h, const unsigned char* payload,
                           list out) except -1:
        # Process a frame whose whole payload is at ``payload``.
        cdef int opcode = h.opcode
        cdef Py_ssize_t n = <Py_ssize_t>h.length
        cdef bytes res
        cdef unsigned char* dst
        if opcode == OP_CONT or not h.fin:
            if opcode != OP_CONT:
                self._msg_opcode = opcode
                self._msg_compressed = h.rsv1
                self._msg_len = 0
            if n:
                self._msg_reserve(n)
                if h.masked:
                    unmask_copy(self._msg + self._msg_len, payload, n, h.key)
                else:
                    memcpy(self._msg + self._msg_len, payload, n)
                self._msg_len += n
            if h.fin:
                self._complete_message(out)
            return 0

        res = PyBytes_FromStringAndSize(NULL, n)
        if n:
            dst = <unsigned char*>PyBytes_AS_STRING(res)
            if h.masked:
                unmask_copy(dst, payload, n, h.key)
            else:
                memcpy(dst, payload, n)
            if opcode == OP_TEXT and not h.rsv1 and not validate_utf8(dst, n):
                self._fail(CLOSE_INVALID_DATA, "invalid UTF-8 in text message")
        if h.rsv1:
            res = self._finish_payload(opcode, True, res)
        out.append((opcode, res))
        return 0

    cdef int _begin_payload(self, FrameHeader* h) except -1:
        # Set up the destination of a frame whose payload is incomplete.
        cdef Py_ssize_t n = <Py_ssize_t>h.length
        self._cur = h[0]
        if h.opcode == OP_CONT or not h.fin or n > _PREALLOC_MAX:
            # Into the reassembly buffer, which _stream_payload grows as bytes arrive; a large
            # unfragmented frame is handled as a one-fragment message.
            if h.opcode != OP_CONT:
                self._msg_opcode = h.opcode
                self._msg_compressed = h.rsv1
                self._msg_len = 0
            self._dest = None
            self._dptr = NULL
        else:
            self._dest = PyBytes_FromStringAndSize(NULL, n)
            self._dptr = <unsigned char*>PyBytes_AS_STRING(self._dest)
        self._need = n
        self._got = 0
        return 0

    cdef Py_ssize_t _stream_payload(self, const unsigned char* p, Py_ssize_t n,
                                    list out) except -1:
        # Move up to ``n`` payload bytes into place; returns bytes taken.
        cdef Py_ssize_t take = self._need
        cdef unsigned char key[4]
        cdef int k, phase
        cdef bytes res
        cdef int opcode
        if take > n:
            take = n
        if self._dest is None:
            self._msg_reserve(self._got + take,
                              self._msg_len + self._got + self._need if self._cur.fin else 0)
            self._dptr = self._msg + self._msg_len
        if self._cur.masked:
            # The mask continues where the previous piece stopped.
            phase = self._got & 3
            for k in range(4):
                key[k] = self._cur.key[(k + phase) & 3]
            unmask_copy(self._dptr + self._got, p, take, key)
        else:
            memcpy(self._dptr + self._got, p, take)
        self._got += take
        self._need -= take
        if self._need:
            return take

        self._dptr = NULL
        if self._dest is None:
            self._msg_len += self._got
            if self._cur.fin:
                self._complete_message(out)
        else:
            res = <bytes>self._dest
            self._dest = None
            opcode = self._cur.opcode
            if self._cur.rsv1:
                res = self._finish_payload(opcode, True, res)
            elif opcode == OP_TEXT and not validate_utf8(
                    <const unsigned char*>PyBytes_AS_STRING(res), self._got):
                self._fail(CLOSE_INVALID_DATA, "invalid UTF-8 in text message")
            out.append((opcode, res))
        return take

    cdef Py_ssize_t _feed_pending(self, const unsigned char* p, Py_ssize_t n,
                                  list out) except -1:
        # Finish the partial header or payload left by the previous feed.
        cdef FrameHeader h
        cdef Py_ssize_t pos = 0, take, need, hl
        cdef unsigned char b1
        if self._hlen > 0:
            if self._hlen < 2:
                self._hbuf[1] = p[0]
                self._hlen = 2
                pos = 1
            # Take exactly the rest of this header, never bytes beyond it.
            b1 = self._hbuf[1]
            need = 2
            if (b1 & 0x7F) == 126:
                need = 4
            elif (b1 & 0x7F) == 127:
                need = 10
            if b1 & 0x80:
                need += 4
            take = need - self._hlen
            if take > n - pos:
                take = n - pos
            memcpy(self._hbuf + self._hlen, p + pos, take)
            self._hlen += take
            pos += take
            hl = self._parse_header(self._hbuf, self._hlen, &h)
            if hl == 0:
                return pos
            self._hlen = 0
            if h.length == 0:
                self._handle_frame(&h, NULL, out)
                return pos
            self._begin_payload(&h)
        if pos < n:
            pos += self._stream_payload(p + pos, n - pos, out)
        return pos

    cdef int _feed_direct(self, const unsigned char* p, Py_ssize_t n,
                          list out) except -1:
        cdef FrameHeader h
        cdef Py_ssize_t pos = 0, hl
        while pos < n:
            hl = self._parse_header(p + pos, n - pos, &h)
            if hl == 0:
                # an incomplete header is shorter than _MAX_HEADER bytes
                memcpy(self._hbuf, p + pos, n - pos)
                self._hlen = n - pos
                return 0
            pos += hl
            if h.length <= <uint64_t>(n - pos):
                self._handle_frame(&h, p + pos, out)
                pos += <Py_ssize_t>h.length
            else:
                self._begin_payload(&h)
                self._stream_payload(p + pos, n - pos, out)
                return 0
        return 0


# ---------------------------------------------------------------------------
# Builders


cdef Py_ssize_t frame_size(Py_ssize_t n) noexcept nogil:
    return _header_size(n, False) + n


cdef Py_ssize_t write_frame_header(unsigned char* o, int opcode, Py_ssize_t n) noexcept nogil:
    return _write_header(o, <unsigned char>(0x80 | opcode), n, NULL)


cdef Py_ssize_t write_frame(unsigned char* o, int opcode, const unsigned char* data,
                            Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t hl = _write_header(o, <unsigned char>(0x80 | opcode), n, NULL)
    if n:
        memcpy(o + hl, data, n)
    return hl + n


cdef bytes build_frame_c(int opcode, const unsigned char* data, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, _header_size(n, False) + n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t hl = _write_header(o, <unsigned char>(0x80 | opcode), n, NULL)
    if n:
        memcpy(o + hl, data, n)
    return out


cpdef bytes build_frame(int opcode, object payload, bint fin=True, object mask_key=None):
    cdef Py_buffer pview
    cdef Py_buffer kview
    cdef bint have_view = False
    cdef const unsigned char* data
    cdef const unsigned char* key = NULL
    cdef unsigned char keybuf[4]
    cdef Py_ssize_t n, hl
    cdef bytes out
    cdef unsigned char* o

    if not (OP_CONT <= opcode <= OP_BINARY or OP_CLOSE <= opcode <= OP_PONG):
        raise ValueError(f"invalid opcode {opcode}")
    if mask_key is not None:
        PyObject_GetBuffer(mask_key, &kview, PyBUF_SIMPLE)
        try:
            if kview.len != 4:
                raise ValueError("mask_key must be exactly 4 bytes")
            memcpy(keybuf, kview.buf, 4)
        finally:
            PyBuffer_Release(&kview)
        key = keybuf

    if PyBytes_CheckExact(payload):
        data = <const unsigned char*>PyBytes_AS_STRING(payload)
        n = PyBytes_GET_SIZE(payload)
    elif PyUnicode_Check(payload):
        data = <const unsigned char*>PyUnicode_AsUTF8AndSize(payload, &n)
    else:
        PyObject_GetBuffer(payload, &pview, PyBUF_SIMPLE)
        have_view = True
        data = <const unsigned char*>pview.buf
        n = pview.len
    try:
        if opcode >= OP_CLOSE:
            if n > 125:
                raise ValueError("control frame payload longer than 125 bytes")
            if not fin:
                raise ValueError("control frames cannot be fragmented")
        out = PyBytes_FromStringAndSize(NULL, _header_size(n, key != NULL) + n)
        o = <unsigned char*>PyBytes_AS_STRING(out)
        hl = _write_header(o, <unsigned char>((0x80 if fin else 0) | opcode), n, key)
        if n:
            if key != NULL:
                unmask_copy(o + hl, data, n, key)
            else:
                memcpy(o + hl, data, n)
    finally:
        if have_view:
            PyBuffer_Release(&pview)
    return out


cpdef bytes build_close(int code=CLOSE_NORMAL, str reason=""):
    cdef const unsigned char* r = NULL
    cdef Py_ssize_t rn = 0
    cdef bytes out
    cdef unsigned char* o
    if code == CLOSE_NO_STATUS:
        return b""
    if not _valid_close_code(code):
        raise ValueError(f"close code {code} cannot be sent")
    if reason:
        r = <const unsigned char*>PyUnicode_AsUTF8AndSize(reason, &rn)
        if rn > _MAX_CLOSE_REASON:
            # Cut at a character boundary so the reason stays valid UTF-8.
            rn = _MAX_CLOSE_REASON
            while rn > 0 and (r[rn] & 0xC0) == 0x80:
                rn -= 1
    out = PyBytes_FromStringAndSize(NULL, 2 + rn)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    o[0] = <unsigned char>(code >> 8)
    o[1] = <unsigned char>code
    if rn:
        memcpy(o + 2, r, rn)
    return out


cpdef tuple parse_close(bytes payload):
    cdef const unsigned char* p
    cdef Py_ssize_t n
    cdef int code
    if payload is None:
        raise TypeError("payload must be bytes, not None")
    p = <const unsigned char*>PyBytes_AS_STRING(payload)
    n = PyBytes_GET_SIZE(payload)
    if n == 0:
        return (CLOSE_NO_STATUS, "")
    if n == 1:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "close frame payload of 1 byte")
    code = (p[0] << 8) | p[1]
    if not _valid_close_code(code):
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    if not validate_utf8(p + 2, n - 2):
        raise WebSocketError(CLOSE_INVALID_DATA, "invalid UTF-8 in close reason")
    return (code, PyUnicode_DecodeUTF8(<char*>p + 2, n - 2, NULL))


def accept_key(key):
    if isinstance(key, str):
        key = key.encode("latin-1")
    else:
        key = bytes(key)
    return b2a_base64(sha1(key + _GUID).digest(), newline=False).decode("ascii")


# ---------------------------------------------------------------------------
# permessage-deflate negotiation (RFC 7692 5 and 7.1), on the server


cdef tuple _offer_params(str offer):
    # "permessage-deflate; a; b=1; c=\"2\"" -> ("permessage-deflate", {"a": True, ...});
    # None for a malformed or repeated parameter (RFC 7692 7: the offer is declined).
    cdef list parts = offer.split(";")
    cdef dict params = {}
    cdef str part, name, value
    for part in parts[1:]:
        part = part.strip()
        if not part:
            return None
        if "=" in part:
            name, value = part.split("=", 1)
            name = name.strip().lower()
            value = value.strip()
            if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            if name in params or not value:
                return None
            params[name] = value
        else:
            name = part.lower()
            if name in params:
                return None
            params[name] = True
    return (parts[0].strip().lower(), params)


def negotiate_deflate(object header):
    cdef tuple parsed
    cdef dict params
    cdef str offer, name
    cdef object v
    cdef int wbits
    cdef list answer
    if header is None:
        return None
    if isinstance(header, (bytes, bytearray)):
        header = bytes(header).decode("latin-1")
    for offer in header.split(","):
        parsed = _offer_params(offer)
        if parsed is None or parsed[0] != "permessage-deflate":
            continue
        params = parsed[1]
        wbits = 15
        answer = ["permessage-deflate", "server_no_context_takeover", "client_no_context_takeover"]
        for name, v in params.items():
            if name == "server_no_context_takeover" or name == "client_no_context_takeover":
                if v is not True:
                    break
            elif name == "server_max_window_bits":
                # zlib has no raw deflate with a 256-byte window: an offer asking for 8 is
                # declined, as RFC 7692 7.1.2.1 lets a server do.
                if v is True or not v.isdigit() or not 9 <= int(v) <= 15:
                    break
                wbits = int(v)
                answer.append("server_max_window_bits=%d" % wbits)
            elif name == "client_max_window_bits":
                # The client may use any window: fastio inflates with the largest, and a
                # client without context takeover needs nothing more from the answer.
                if v is not True and (not v.isdigit() or not 8 <= int(v) <= 15):
                    break
            else:
                break           # an unknown parameter: decline this offer
        else:
            return ("; ".join(answer), wbits)
    return None


def deflate_payload(object payload, int wbits=15):
    # The frame builder's deflate, without the frame: for a client library that frames itself.
    cdef bytes frame = deflate_frame(OP_BINARY, payload, wbits)
    cdef int len7 = (<const unsigned char*>PyBytes_AS_STRING(frame))[1] & 0x7F
    return frame[2 if len7 < 126 else (4 if len7 == 126 else 10):]
