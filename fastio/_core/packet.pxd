# Socket.IO v5 packet codec: decoding with binary attachment reassembly, and
# encoding into a shareable Encoded.
cimport cython

# Packet types. Anonymous cpdef enum: C constants for cimporters, plain
# Python ints for Python code.
cpdef enum:
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@cython.final
@cython.freelist(32)
cdef class Packet:
    """A decoded Socket.IO packet (binary attachments already in place)."""
    cdef readonly int type
    cdef readonly str namespace
    cdef readonly object data
    cdef readonly object id          # int or None


@cython.final
cdef class Decoder:
    """Per-connection decoder; reassembles binary packets."""
    cdef readonly int max_attachments
    cdef readonly Py_ssize_t max_size
    cdef Packet _pending             # packet waiting for attachments, or None
    cdef Py_ssize_t _expected        # attachments announced by _pending
    cdef list _buffers               # attachments received so far
    cdef Py_ssize_t _received        # their total size in bytes
    cdef Py_ssize_t _held            # bytes taken from the partial budget (text + attachments)
    cdef bytes _ns_raw               # last decoded namespace (UTF-8) ...
    cdef str _ns_str                 # ... and its str, to skip re-decoding

    cpdef object feed_text(self, bytes s)
    cpdef object feed_binary(self, bytes b)
    cpdef reset(self)
    cdef str _namespace(self, const char* p, Py_ssize_t n)


# Holds only bytes and lists of bytes: no reference cycles, so no GC tracking.
@cython.final
@cython.no_gc
@cython.freelist(32)
cdef class Encoded:
    """The result of one encode, shared by every recipient of a broadcast."""
    cdef readonly bytes message      # b"4" + text: the Engine.IO MESSAGE packet
    cdef readonly list attachments   # list[bytes]
    cdef readonly bint binary        # a binary Engine.IO message (msgpack): ``message`` is its payload
    cdef public bint no_compress     # Node's compress(false): never permessage-deflate these frames
    cdef bytes _text
    cdef str _message_str
    cdef bytes _frames
    cdef list _parts
    cdef list _poll

    cpdef bytes ws_frames(self)
    cpdef list ws_parts(self)
    cpdef list poll_items(self)
    cpdef str message_str(self)


cpdef Encoded encode(int type, str namespace=*, object data=*, object id=*)
cpdef Encoded encoded_binary(bytes payload)
