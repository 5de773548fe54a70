# Socket.IO v5 packets (contracts in packet.pyi).

cimport cython
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.bytearray cimport PyByteArray_Check
from cpython.dict cimport PyDict_Check
from cpython.float cimport PyFloat_CheckExact
from cpython.list cimport PyList_Check, PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_Check, PyLong_CheckExact
from cpython.memoryview cimport PyMemoryView_Check
from cpython.sequence cimport PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from cpython.tuple cimport PyTuple_Check
from cpython.unicode cimport (
    PyUnicode_AsUTF8AndSize,
    PyUnicode_Check,
    PyUnicode_CheckExact,
    PyUnicode_DecodeUTF8,
)
from libc.string cimport memchr, memcmp, memcpy

from fastio._core.eio cimport as_bytes, b64encode_prefixed
from fastio._core.wsframe cimport (
    OP_BINARY, OP_TEXT, build_frame_c, frame_size, write_frame, write_frame_header,
    partial_take, partial_give)

import functools

__all__ = [
    "CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR",
    "BINARY_EVENT", "BINARY_ACK",
    "Packet", "Decoder", "Encoded", "encode", "configure_json", "PartialBudgetError",
]

# Deepest list/dict/tuple nesting encode() walks; also stops reference cycles.
cdef enum:
    _MAX_DEPTH = 1000
    # Attachments at least this large are written from their own buffer (Encoded.ws_parts).
    _ZERO_COPY_MIN = 16384
    # Decoder defaults: attachments per packet, and their bytes in all.
    DEFAULT_MAX_ATTACHMENTS = 10
    DEFAULT_MAX_SIZE = 1_000_000

cdef str _ROOT = "/"


class PartialBudgetError(ValueError):
    pass


# ---------------------------------------------------------------- JSON

cdef object _dumps = None          # orjson.dumps, or module.dumps with compact separators
cdef object _loads = None          # takes bytes
cdef bint _is_orjson = False
cdef object _orjson_nonstr = None  # orjson.OPT_NON_STR_KEYS
cdef object _json_module = None


def configure_json(module=None):
    global _dumps, _loads, _is_orjson, _orjson_nonstr, _json_module
    if module is None:
        import orjson
        module = orjson
    dumps = module.dumps
    loads = module.loads
    if getattr(module, "__name__", None) == "orjson":
        _is_orjson = True
        _orjson_nonstr = module.OPT_NON_STR_KEYS
        _dumps = dumps
    else:
        _is_orjson = False
        _orjson_nonstr = None
        _dumps = functools.partial(dumps, separators=(",", ":"))
    _loads = loads
    _json_module = module


def json_module():
    return _json_module


configure_json(None)


cdef inline object _json_dump(object data):
    # Compact JSON of data, as bytes (orjson) or str (other modules).
    if _is_orjson:
        try:
            return _dumps(data)
        except TypeError:
            # orjson refuses non-str dict keys unless asked; json accepts them.
            return _dumps(data, option=_orjson_nonstr)
    return _dumps(data)


# ---------------------------------------------------------------- Packet

@cython.final
@cython.freelist(32)
cdef class Packet:

    def __init__(self, int type, str namespace="/", object data=None, object id=None):
        if type < 0 or type > 6:
            raise ValueError(f"bad packet type {type}")
        self.type = type
        self.namespace = _ROOT if namespace is None else namespace
        self.data = data
        self.id = id

    def __repr__(self):
        return (f"Packet(type={self.type}, namespace={self.namespace!r}, "
                f"data={self.data!r}, id={self.id!r})")


cdef inline Packet _new_packet(int ptype, str namespace, object data, object id):
    cdef Packet p = Packet.__new__(Packet)
    p.type = ptype
    p.namespace = namespace
    p.data = data
    p.id = id
    return p


# ---------------------------------------------------------------- decoding

cdef inline bint _isdigit(unsigned char c) noexcept:
    return 0x30 <= c <= 0x39


cdef object _reconstruct(object obj, list bufs):
    # Replace placeholders by attachments, in place (obj is freshly decoded).
    cdef Py_ssize_t i, k
    cdef object item, new, num
    if PyList_Check(obj):
        k = PyList_GET_SIZE(obj)
        for i in range(k):
            item = <object>PyList_GET_ITEM(obj, i)
            if PyList_Check(item) or PyDict_Check(item):
                new = _reconstruct(item, bufs)
                if new is not item:
                    obj[i] = new
        return obj
    if PyDict_Check(obj):
        if obj.get("_placeholder") is True:
            num = obj.get("num")
            if (not PyLong_CheckExact(num) or num < 0
                    or num >= PyList_GET_SIZE(bufs)):
                raise ValueError(
                    f"placeholder num {num!r} out of range "
                    f"({PyList_GET_SIZE(bufs)} attachments)")
            return bufs[num]
        for key, item in obj.items():
            if PyList_Check(item) or PyDict_Check(item):
                new = _reconstruct(item, bufs)
                if new is not item:
                    # Replacing a value keeps the key set, so iteration is safe.
                    obj[key] = new
        return obj
    return obj


@cython.final
cdef class Decoder:

    def __init__(self, int max_attachments=DEFAULT_MAX_ATTACHMENTS, Py_ssize_t max_size=DEFAULT_MAX_SIZE):
        if max_attachments < 0:
            raise ValueError("max_attachments must be >= 0")
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.max_attachments = max_attachments
        self.max_size = max_size
        self._pending = None
        self._expected = 0
        self._buffers = None
        self._received = 0

    @property
    def waiting(self):
        if self._pending is None:
            return 0
        return self._expected - PyList_GET_SIZE(self._buffers)

    def __dealloc__(self):
        if self._held:
            partial_give(self._held)

    cpdef reset(self):
        self._pending = None
        self._expected = 0
        self._buffers = None
        self._received = 0
        if self._held:
            partial_give(self._held)
            self._held = 0

    cdef str _namespace(self, const char* p, Py_ssize_t n):
        cdef str ns
        if n == 1:
            return _ROOT
        if (self._ns_raw is not None and PyBytes_GET_SIZE(self._ns_raw) == n
                and memcmp(PyBytes_AS_STRING(self._ns_raw), p, n) == 0):
            return self._ns_str
        try:
            ns = PyUnicode_DecodeUTF8(<char*>p, n, NULL)
        except UnicodeDecodeError:
            raise ValueError("bad namespace: not valid UTF-8") from None
        # Not interned: a name from the client could then never be freed (interned strings are
        # immortal from Python 3.12), and 20,000 distinct long names would stay for good.
        self._ns_raw = PyBytes_FromStringAndSize(p, n)
        self._ns_str = ns
        return ns

    cpdef object feed_text(self, bytes s):
        cdef const unsigned char* p
        cdef const unsigned char* hit
        cdef Py_ssize_t n, i, start, end
        cdef unsigned char c
        cdef int ptype
        cdef long long count = 0
        cdef long long ack = 0
        cdef bint binary
        cdef str namespace
        cdef object id = None
        cdef object data = None
        cdef Packet pkt
        if s is None:
            raise TypeError("feed_text() needs bytes, not None")
        if self._pending is not None:
            self.reset()
            raise ValueError("text packet received while binary attachments are still awaited")
        p = <const unsigned char*>PyBytes_AS_STRING(s)
        n = PyBytes_GET_SIZE(s)
        if n == 0:
            raise ValueError("bad packet type: empty packet")
        c = p[0]
        if not (0x30 <= c <= 0x36):
            raise ValueError(f"bad packet type {bytes((c,))!r}")
        ptype = c - 0x30
        i = 1
        binary = ptype == BINARY_EVENT or ptype == BINARY_ACK

        # attachment count: "<digits>-"
        if binary:
            start = i
            while i < n and _isdigit(p[i]):
                if i - start >= 9:
                    raise ValueError("bad attachment count: too many digits")
                count = count * 10 + (p[i] - 0x30)
                i += 1
            if i == start or i >= n or p[i] != 0x2d:  # '-'
                raise ValueError("bad attachment count")
            if count > self.max_attachments:
                raise ValueError(
                    f"too many attachments: {count} announced, "
                    f"at most {self.max_attachments} allowed")
            i += 1

        # namespace: "/name," (or "/name" at the end)
        if i < n and p[i] == 0x2f:  # '/'
            start = i
            hit = <const unsigned char*>memchr(p + i, 0x2c, n - i)  # ','
            if hit == NULL:
                end = n
                i = n
            else:
                end = hit - p
                i = end + 1
            hit = <const unsigned char*>memchr(p + start, 0x3f, end - start)  # '?'
            if hit != NULL:
                end = hit - p
            namespace = self._namespace(<const char*>p + start, end - start)
        else:
            namespace = _ROOT

        # ack id
        if ptype == EVENT or ptype == ACK or binary:
            if i < n and _isdigit(p[i]):
                start = i
                while i < n and _isdigit(p[i]):
                    if i - start >= 18:
                        raise ValueError("bad ack id: too many digits")
                    ack = ack * 10 + (p[i] - 0x30)
                    i += 1
                id = ack
            elif ptype == ACK or ptype == BINARY_ACK:
                raise ValueError("bad ack id: ACK packet without an id")

        # JSON
        if i < n:
            try:
                data = _loads(PyBytes_FromStringAndSize(<const char*>p + i, n - i))
            except (ValueError, RecursionError) as exc:
                raise ValueError(f"invalid JSON: {exc}") from None

        if ptype == EVENT or ptype == BINARY_EVENT:
            if not (PyList_Check(data) and PyList_GET_SIZE(data) > 0
                    and PyUnicode_Check(<object>PyList_GET_ITEM(data, 0))):
                raise ValueError("EVENT data must be a non-empty list whose first item is the event name (str)")
        elif ptype == ACK or ptype == BINARY_ACK:
            if not PyList_Check(data):
                raise ValueError("ACK data must be a list")
        elif ptype == CONNECT:
            if data is not None and not PyDict_Check(data):
                raise ValueError("CONNECT data must be a JSON object or absent")
        elif ptype == DISCONNECT:
            if data is not None:
                raise ValueError("DISCONNECT carries no data")

        pkt = _new_packet(ptype, namespace, data, id)
        if binary:
            if count == 0:
                pkt.data = _reconstruct(data, [])
                return pkt
            if not partial_take(n):
                raise PartialBudgetError("server busy: too much partial message data")
            self._held = n
            self._pending = pkt
            self._expected = <Py_ssize_t>count
            self._buffers = []
            self._received = 0
            return None
        return pkt

    cpdef object feed_binary(self, bytes b):
        cdef Packet pkt
        cdef list bufs
        if b is None:
            raise TypeError("feed_binary() needs bytes, not None")
        if self._pending is None:
            raise ValueError("unexpected binary attachment: no packet is waiting for one")
        self._received += PyBytes_GET_SIZE(b)
        if self._received > self.max_size:
            self.reset()
            raise ValueError(f"binary attachments exceed {self.max_size} bytes")
        if not partial_take(PyBytes_GET_SIZE(b)):
            self.reset()
            raise PartialBudgetError("server busy: too much partial message data")
        self._held += PyBytes_GET_SIZE(b)
        self._buffers.append(b)
        if PyList_GET_SIZE(self._buffers) < self._expected:
            return None
        pkt = self._pending
        bufs = self._buffers
        self.reset()
        pkt.data = _reconstruct(pkt.data, bufs)
        return pkt


# ---------------------------------------------------------------- encoding

cdef inline bint _is_scalar(object o) noexcept:
    return (PyUnicode_CheckExact(o) or PyLong_CheckExact(o)
            or PyFloat_CheckExact(o) or o is None or o is True or o is False)


cdef inline bint _is_binary(object o) noexcept:
    return PyBytes_Check(o) or PyByteArray_Check(o) or PyMemoryView_Check(o)


cdef int _has_binary(object obj, int depth) except -1:
    # 1 if a binary value occurs anywhere in obj (lists, tuples, dict values).
    cdef object item
    cdef Py_ssize_t i
    if PyList_Check(obj) or PyTuple_Check(obj):
        if depth >= _MAX_DEPTH:
            raise ValueError("data is nested too deeply (or contains a reference cycle)")
        # A list or tuple is its own "fast sequence": no copy is made.
        # (The size is re-read each time: a list can only shrink if user code
        # runs, e.g. a dict subclass's values(), but then it must not crash.)
        i = 0
        while i < PySequence_Fast_GET_SIZE(obj):
            item = <object>PySequence_Fast_GET_ITEM(obj, i)
            i += 1
            if _is_scalar(item):
                continue
            if _has_binary(item, depth + 1):
                return 1
        return 0
    if PyDict_Check(obj):
        if depth >= _MAX_DEPTH:
            raise ValueError("data is nested too deeply (or contains a reference cycle)")
        for item in obj.values():
            if _is_scalar(item):
                continue
            if _has_binary(item, depth + 1):
                return 1
        return 0
    return _is_binary(obj)


cdef object _deconstruct(object obj, list atts, int depth):
    # obj with binary values replaced by placeholders (appended to atts).
    #
    # Containers that hold no binary are returned as they are; only the ones on
    # a path to a binary value are copied (a tuple becomes a list).
    cdef Py_ssize_t i
    cdef object item, new
    cdef list out
    cdef dict dout
    if _is_binary(obj):
        atts.append(as_bytes(obj))
        return {"_placeholder": True, "num": PyList_GET_SIZE(atts) - 1}
    if PyList_Check(obj) or PyTuple_Check(obj):
        if depth >= _MAX_DEPTH:
            raise ValueError("data is nested too deeply (or contains a reference cycle)")
        out = None
        i = 0
        for item in obj:
            if not _is_scalar(item):
                new = _deconstruct(item, atts, depth + 1)
                if new is not item:
                    if out is None:
                        out = list(obj)
                    out[i] = new
            i += 1
        return obj if out is None else out
    if PyDict_Check(obj):
        if depth >= _MAX_DEPTH:
            raise ValueError("data is nested too deeply (or contains a reference cycle)")
        dout = None
        for key, item in obj.items():
            if not _is_scalar(item):
                new = _deconstruct(item, atts, depth + 1)
                if new is not item:
                    if dout is None:
                        dout = dict(obj)
                    dout[key] = new
        return obj if dout is None else dout
    return obj


cdef inline Py_ssize_t _fmt_uint(char* buf, unsigned long long v) noexcept:
    # Decimal digits of v into buf (>= 20 bytes); returns their count.
    cdef char tmp[20]
    cdef Py_ssize_t k = 0, j
    while True:
        tmp[k] = <char>(0x30 + v % 10)
        v //= 10
        k += 1
        if v == 0:
            break
    for j in range(k):
        buf[j] = tmp[k - 1 - j]
    return k


@cython.final
@cython.no_gc
@cython.freelist(32)
cdef class Encoded:

    def __init__(self, bytes text, list attachments=None):
        if text is None:
            raise TypeError("text must be bytes")
        self.message = b"4" + text
        self.attachments = [] if attachments is None else [as_bytes(a) for a in attachments]

    @property
    def text(self):
        if self._text is None:
            self._text = self.message[1:]
        return self._text

    cpdef bytes ws_frames(self):
        cdef bytes a, out
        cdef Py_ssize_t total, pos
        cdef unsigned char* o
        if self._frames is None:
            if self.binary:
                self._frames = build_frame_c(
                    OP_BINARY, <const unsigned char*>PyBytes_AS_STRING(self.message),
                    PyBytes_GET_SIZE(self.message))
            elif not self.attachments:
                self._frames = build_frame_c(
                    OP_TEXT, <const unsigned char*>PyBytes_AS_STRING(self.message),
                    PyBytes_GET_SIZE(self.message))
            else:
                # One allocation and one copy of each payload, whatever the attachment count.
                total = frame_size(PyBytes_GET_SIZE(self.message))
                for a in self.attachments:
                    total += frame_size(PyBytes_GET_SIZE(a))
                out = PyBytes_FromStringAndSize(NULL, total)
                o = <unsigned char*>PyBytes_AS_STRING(out)
                pos = write_frame(o, OP_TEXT, <const unsigned char*>PyBytes_AS_STRING(self.message),
                                  PyBytes_GET_SIZE(self.message))
                for a in self.attachments:
                    pos += write_frame(o + pos, OP_BINARY, <const unsigned char*>PyBytes_AS_STRING(a),
                                       PyBytes_GET_SIZE(a))
                self._frames = out
        return self._frames

    cpdef str message_str(self):
        if self._message_str is None:
            self._message_str = self.message.decode("utf-8")
        return self._message_str

    cpdef list ws_parts(self):
        cdef bytes a
        cdef list parts
        cdef bytearray pending
        cdef unsigned char hbuf[16]
        cdef Py_ssize_t n, hl
        if self._parts is None:
            if self.binary and PyBytes_GET_SIZE(self.message) >= _ZERO_COPY_MIN:
                hl = write_frame_header(hbuf, OP_BINARY, PyBytes_GET_SIZE(self.message))
                self._parts = [PyBytes_FromStringAndSize(<char*>hbuf, hl), self.message]
                return self._parts
            if not self.attachments:
                self._parts = [self.ws_frames()]
                return self._parts
            for a in self.attachments:
                if PyBytes_GET_SIZE(a) >= _ZERO_COPY_MIN:
                    break
            else:
                self._parts = [self.ws_frames()]
                return self._parts
            parts = []
            pending = bytearray(build_frame_c(
                OP_TEXT, <const unsigned char*>PyBytes_AS_STRING(self.message), PyBytes_GET_SIZE(self.message)))
            for a in self.attachments:
                n = PyBytes_GET_SIZE(a)
                if n >= _ZERO_COPY_MIN:
                    hl = write_frame_header(hbuf, OP_BINARY, n)
                    pending += hbuf[:hl]
                    parts.append(bytes(pending))
                    parts.append(a)
                    pending = bytearray()
                else:
                    pending += build_frame_c(OP_BINARY, <const unsigned char*>PyBytes_AS_STRING(a), n)
            if pending:
                parts.append(bytes(pending))
            self._parts = parts
        return self._parts

    cpdef list poll_items(self):
        cdef list items
        cdef bytes a
        if self._poll is None and self.binary:
            self._poll = [b64encode_prefixed(<const unsigned char*>PyBytes_AS_STRING(self.message),
                                             PyBytes_GET_SIZE(self.message), 0x62)]
        elif self._poll is None:
            items = [self.message]
            for a in self.attachments:
                items.append(b64encode_prefixed(
                    <const unsigned char*>PyBytes_AS_STRING(a),
                    PyBytes_GET_SIZE(a), 0x62))  # 'b'
            self._poll = items
        return self._poll

    def __repr__(self):
        return f"Encoded(text={self.text!r}, attachments={len(self.attachments)})"


cpdef Encoded encoded_binary(bytes payload):
    cdef Encoded enc = Encoded.__new__(Encoded)
    enc.message = payload
    enc.attachments = []
    enc.binary = True
    return enc


cpdef Encoded encode(int type, str namespace="/", object data=None, object id=None):
    cdef int ptype = type
    cdef list atts = None
    cdef const char* ns = NULL
    cdef Py_ssize_t ns_len = 0
    cdef const char* jp = NULL
    cdef Py_ssize_t jn = 0
    cdef char cnt_buf[24]
    cdef Py_ssize_t cnt_len = 0
    cdef char id_buf[24]
    cdef Py_ssize_t id_len = 0
    cdef long long id_val
    cdef object js = None
    cdef bytes out
    cdef char* o
    cdef Encoded enc

    if ptype < 0 or ptype > 6:
        raise ValueError(f"bad packet type {ptype}")

    if data is not None and _has_binary(data, 0):
        if ptype == EVENT or ptype == BINARY_EVENT:
            ptype = BINARY_EVENT
        elif ptype == ACK or ptype == BINARY_ACK:
            ptype = BINARY_ACK
        else:
            raise ValueError("binary data is only allowed in EVENT and ACK packets")
        atts = []
        data = _deconstruct(data, atts, 0)
        cnt_len = _fmt_uint(cnt_buf, <unsigned long long>PyList_GET_SIZE(atts))
        cnt_buf[cnt_len] = 0x2d  # '-'
        cnt_len += 1
    else:
        if ptype == BINARY_EVENT:
            ptype = EVENT
        elif ptype == BINARY_ACK:
            ptype = ACK
        atts = []

    if namespace is not None:
        ns = PyUnicode_AsUTF8AndSize(namespace, &ns_len)
        if ns_len == 1 and ns[0] == 0x2f:
            ns_len = 0
        elif ns_len == 0 or ns[0] != 0x2f:
            raise ValueError(f"namespace must start with '/': {namespace!r}")
        elif memchr(ns, 0x2c, ns_len) != NULL:
            raise ValueError(f"namespace must not contain ',': {namespace!r}")

    if id is not None:
        if not PyLong_Check(id) or id is True or id is False:
            raise TypeError(f"ack id must be an int, got {id.__class__.__name__}")
        id_val = id
        if id_val < 0:
            raise ValueError(f"ack id must be >= 0, got {id_val}")
        id_len = _fmt_uint(id_buf, <unsigned long long>id_val)

    if data is not None:
        js = _json_dump(data)
        if PyBytes_CheckExact(js):
            jp = PyBytes_AS_STRING(js)
            jn = PyBytes_GET_SIZE(js)
        elif PyUnicode_Check(js):
            jp = PyUnicode_AsUTF8AndSize(js, &jn)
        elif PyBytes_Check(js):
            jp = PyBytes_AS_STRING(js)
            jn = PyBytes_GET_SIZE(js)
        else:
            raise TypeError(f"JSON dumps returned {js.__class__.__name__}, expected str or bytes")

    # b"4" <type> [count "-"] [ns ","] [id] [json], in one allocation
    out = PyBytes_FromStringAndSize(
        NULL, 2 + cnt_len + (ns_len + 1 if ns_len else 0) + id_len + jn)
    o = PyBytes_AS_STRING(out)
    o[0] = 0x34  # '4'
    o[1] = <char>(0x30 + ptype)
    o += 2
    if cnt_len:
        memcpy(o, cnt_buf, cnt_len)
        o += cnt_len
    if ns_len:
        memcpy(o, ns, ns_len)
        o[ns_len] = 0x2c  # ','
        o += ns_len + 1
    if id_len:
        memcpy(o, id_buf, id_len)
        o += id_len
    if jn:
        memcpy(o, jp, jn)

    enc = Encoded.__new__(Encoded)
    enc.message = out
    enc.attachments = atts
    return enc
