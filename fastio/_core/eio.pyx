# Engine.IO v4 packets (contracts in eio.pyi).

from cpython.buffer cimport PyObject_CheckBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.memoryview cimport PyMemoryView_Check
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check
from libc.string cimport memchr, memcpy

__all__ = [
    "OPEN", "CLOSE", "PING", "PONG", "MESSAGE", "UPGRADE", "NOOP",
    "decode_payload", "encode_payload", "poll_binary",
    "decode_packet", "encode_packet",
]

cdef unsigned char RS = 0x1e   # record separator between polling packets

# One-byte packets, b"0" .. b"6", reused instead of allocated.
cdef tuple _TYPE_BYTES = tuple(bytes((0x30 + i,)) for i in range(7))

# ---------------------------------------------------------------- base64

cdef const char* _B64_ALPHABET = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)
cdef unsigned char _B64_INVALID = 0x80
cdef unsigned char _B64_DECODE[256]


cdef void _init_b64_table() noexcept:
    cdef int i
    for i in range(256):
        _B64_DECODE[i] = _B64_INVALID
    for i in range(64):
        _B64_DECODE[<unsigned char>_B64_ALPHABET[i]] = <unsigned char>i


_init_b64_table()


cdef bytes b64encode_prefixed(const unsigned char* data, Py_ssize_t n,
                              unsigned char prefix):
    cdef Py_ssize_t head = 1 if prefix else 0
    cdef Py_ssize_t out_len = head + ((n + 2) // 3) * 4
    cdef bytes out = PyBytes_FromStringAndSize(NULL, out_len)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef const unsigned char* a = <const unsigned char*>_B64_ALPHABET
    cdef Py_ssize_t i = 0
    cdef unsigned int v
    if head:
        o[0] = prefix
        o += 1
    while i + 3 <= n:
        v = (<unsigned int>data[i] << 16) | (<unsigned int>data[i + 1] << 8) | data[i + 2]
        o[0] = a[(v >> 18) & 63]
        o[1] = a[(v >> 12) & 63]
        o[2] = a[(v >> 6) & 63]
        o[3] = a[v & 63]
        o += 4
        i += 3
    if n - i == 1:
        v = <unsigned int>data[i] << 16
        o[0] = a[(v >> 18) & 63]
        o[1] = a[(v >> 12) & 63]
        o[2] = 61  # '='
        o[3] = 61
    elif n - i == 2:
        v = (<unsigned int>data[i] << 16) | (<unsigned int>data[i + 1] << 8)
        o[0] = a[(v >> 18) & 63]
        o[1] = a[(v >> 12) & 63]
        o[2] = a[(v >> 6) & 63]
        o[3] = 61
    return out


cdef bytes b64decode_c(const unsigned char* s, Py_ssize_t n):
    cdef Py_ssize_t pad = 0
    cdef Py_ssize_t m, rem, out_len, i = 0
    cdef unsigned char c0, c1, c2, c3
    cdef unsigned char* o
    cdef bytes out
    if n >= 1 and s[n - 1] == 61:
        pad = 1
        if n >= 2 and s[n - 2] == 61:
            pad = 2
        if n % 4 != 0:
            raise ValueError("bad base64: padding on a length that is not a multiple of 4")
    m = n - pad
    rem = m % 4
    if rem == 1:
        raise ValueError("bad base64: truncated input")
    out_len = (m // 4) * 3 + (rem - 1 if rem else 0)
    out = PyBytes_FromStringAndSize(NULL, out_len)
    o = <unsigned char*>PyBytes_AS_STRING(out)
    while i + 4 <= m:
        c0 = _B64_DECODE[s[i]]
        c1 = _B64_DECODE[s[i + 1]]
        c2 = _B64_DECODE[s[i + 2]]
        c3 = _B64_DECODE[s[i + 3]]
        if (c0 | c1 | c2 | c3) & _B64_INVALID:
            raise ValueError("bad base64: invalid character")
        o[0] = <unsigned char>((c0 << 2) | (c1 >> 4))
        o[1] = <unsigned char>((c1 << 4) | (c2 >> 2))
        o[2] = <unsigned char>((c2 << 6) | c3)
        o += 3
        i += 4
    if rem:
        c0 = _B64_DECODE[s[i]]
        c1 = _B64_DECODE[s[i + 1]]
        c2 = _B64_DECODE[s[i + 2]] if rem == 3 else 0
        if (c0 | c1 | c2) & _B64_INVALID:
            raise ValueError("bad base64: invalid character")
        o[0] = <unsigned char>((c0 << 2) | (c1 >> 4))
        if rem == 3:
            o[1] = <unsigned char>((c1 << 4) | (c2 >> 2))
    return out


cdef bytes as_bytes(object obj):
    if PyBytes_CheckExact(obj):
        return <bytes>obj
    if PyMemoryView_Check(obj):
        return obj.tobytes()
    if PyObject_CheckBuffer(obj):
        return memoryview(obj).tobytes()
    raise TypeError(f"expected a bytes-like object, got {type(obj).__name__}")


# ---------------------------------------------------------------- polling

cdef inline tuple _decode_poll_packet(const unsigned char* p, Py_ssize_t n):
    cdef unsigned char c
    if n == 0:
        raise ValueError("empty packet in payload")
    c = p[0]
    if 0x30 <= c <= 0x36:
        return (c - 0x30, PyBytes_FromStringAndSize(<const char*>p + 1, n - 1), False)
    if c == 0x62:  # 'b'
        return (MESSAGE, b64decode_c(p + 1, n - 1), True)
    raise ValueError(f"unknown packet type {bytes((c,))!r}")


cpdef list decode_payload(bytes body, Py_ssize_t max_packets=MAX_PAYLOAD_PACKETS):
    if body is None:
        raise TypeError("body must be bytes, not None")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    cdef const unsigned char* base = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef const unsigned char* p = base
    cdef const unsigned char* end = base + n
    cdef const unsigned char* sep
    cdef Py_ssize_t count = 0
    cdef list out = []
    if n == 0:
        raise ValueError("empty payload")
    while True:
        sep = <const unsigned char*>memchr(p, RS, end - p)
        count += 1
        if 0 < max_packets < count:
            raise ValueError(f"too many packets in payload (limit {max_packets})")
        if sep == NULL:
            out.append(_decode_poll_packet(p, end - p))
            return out
        out.append(_decode_poll_packet(p, sep - p))
        p = sep + 1


cpdef bytes encode_payload(list items):
    if items is None:
        raise TypeError("items must be a list, not None")
    cdef Py_ssize_t k = PyList_GET_SIZE(items)
    cdef Py_ssize_t i, total, sz
    cdef object item
    cdef bytes out
    cdef char* o
    if k == 1:
        item = <object>PyList_GET_ITEM(items, 0)
        if not PyBytes_CheckExact(item):
            raise TypeError(f"payload items must be bytes, got {type(item).__name__}")
        return <bytes>item
    total = k - 1 if k else 0
    for i in range(k):
        item = <object>PyList_GET_ITEM(items, i)
        if not PyBytes_CheckExact(item):
            raise TypeError(f"payload items must be bytes, got {type(item).__name__}")
        total += PyBytes_GET_SIZE(item)
    out = PyBytes_FromStringAndSize(NULL, total)
    o = PyBytes_AS_STRING(out)
    for i in range(k):
        item = <object>PyList_GET_ITEM(items, i)
        if i:
            o[0] = <char>RS
            o += 1
        sz = PyBytes_GET_SIZE(item)
        memcpy(o, PyBytes_AS_STRING(item), sz)
        o += sz
    return out


cpdef bytes poll_binary(data):
    cdef bytes b = as_bytes(data)
    return b64encode_prefixed(<const unsigned char*>PyBytes_AS_STRING(b),
                              PyBytes_GET_SIZE(b), 0x62)


# ---------------------------------------------------------------- websocket

cpdef tuple decode_packet(bytes pkt):
    if pkt is None:
        raise TypeError("pkt must be bytes, not None")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(pkt)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(pkt)
    cdef unsigned char c
    if n == 0:
        raise ValueError("empty packet")
    c = p[0]
    if not (0x30 <= c <= 0x36):
        raise ValueError(f"unknown packet type {bytes((c,))!r}")
    if n == 1:
        return (c - 0x30, b"")
    return (c - 0x30, PyBytes_FromStringAndSize(<const char*>p + 1, n - 1))


cpdef bytes encode_packet(int type, data=None):
    cdef const char* src
    cdef Py_ssize_t n
    cdef bytes out
    cdef char* o
    if type < 0 or type > 6:
        raise ValueError(f"unknown packet type {type}")
    if data is None:
        return <bytes>_TYPE_BYTES[type]
    if PyBytes_CheckExact(data):
        src = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
    elif PyUnicode_Check(data):
        src = PyUnicode_AsUTF8AndSize(data, &n)
    else:
        raise TypeError(f"packet data must be bytes, str or None, got {data.__class__.__name__}")
    if n == 0:
        return <bytes>_TYPE_BYTES[type]
    out = PyBytes_FromStringAndSize(NULL, n + 1)
    o = PyBytes_AS_STRING(out)
    o[0] = <char>(0x30 + type)
    memcpy(o + 1, src, n)
    return out
