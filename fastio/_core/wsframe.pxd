cimport cython
from libc.stdint cimport uint64_t


cdef enum:
    OP_CONT = 0
    OP_TEXT = 1
    OP_BINARY = 2
    OP_CLOSE = 8
    OP_PING = 9
    OP_PONG = 10

# Close codes (RFC 6455 7.4.1) the server sends by name.
cdef enum:
    CLOSE_NORMAL = 1000
    CLOSE_GOING_AWAY = 1001
    CLOSE_PROTOCOL_ERROR = 1002
    CLOSE_NO_STATUS = 1005          # never on the wire: a close frame without a body
    CLOSE_INVALID_DATA = 1007       # e.g. invalid UTF-8 in a text message
    CLOSE_POLICY_VIOLATION = 1008   # e.g. past a server-wide budget
    CLOSE_TOO_BIG = 1009
    CLOSE_INTERNAL_ERROR = 1011

cdef enum:
    DEFAULT_MAX_MESSAGE = 1_000_000
    # Bytes of partial messages (frames and fragments still arriving, Socket.IO packets waiting
    # for attachments) held across all connections of the process.
    DEFAULT_PARTIAL_BUDGET = 32 * 1024 * 1024


cdef struct FrameHeader:
    int fin
    int opcode
    int masked
    int rsv1                        # RFC 7692: the message's first frame is compressed
    unsigned char key[4]
    uint64_t length
    Py_ssize_t header_len


@cython.final
cdef class FrameReader:
    cdef readonly Py_ssize_t max_message_size
    cdef readonly bint require_mask

    # Partial header carried over between feeds.
    cdef unsigned char _hbuf[14]
    cdef Py_ssize_t _hlen

    # Frame whose payload is still arriving; it is unmasked straight into its
    # destination (_dest, or the message accumulator when _dest is None).
    cdef FrameHeader _cur
    cdef Py_ssize_t _need          # payload bytes still expected; 0 when none
    cdef Py_ssize_t _got
    cdef object _dest
    cdef unsigned char* _dptr

    # Fragmented data message being reassembled.
    cdef unsigned char* _msg
    cdef Py_ssize_t _msg_len
    cdef Py_ssize_t _msg_cap
    cdef int _msg_opcode           # 0 when no fragmented message is in progress

    cdef int _error_code
    cdef str _error_reason

    # Partial data: since when (time.monotonic() clock, 0.0 when none) and the bytes it holds,
    # as counted in the process-wide partial budget.
    cdef readonly double partial_since
    cdef Py_ssize_t _accounted

    cdef bint _discarded

    # permessage-deflate (RFC 7692) negotiated: RSV1 may mark a compressed message.
    cdef public bint compression
    cdef bint _msg_compressed      # the fragmented message in progress is compressed
    # Inflated bytes of the messages returned by the feed under way, taken from the partial
    # budget until it returns: a read of small compressed frames cannot add up to more.
    cdef Py_ssize_t _inflated

    cpdef list feed(self, data)
    cpdef discard(self)
    cdef int _fail(self, int code, str reason) except -1
    cdef void _release_buffers(self) noexcept
    cdef int _consume(self, const unsigned char* p, Py_ssize_t n, list out) except -1
    cdef Py_ssize_t _parse_header(self, const unsigned char* p, Py_ssize_t n,
                                  FrameHeader* h) except -1
    cdef int _msg_reserve(self, Py_ssize_t n, Py_ssize_t final=*) except -1
    cdef int _account(self) except -1
    cdef void _unaccount(self) noexcept
    cdef int _complete_message(self, list out) except -1
    cdef bytes _finish_payload(self, int opcode, bint compressed, bytes res)
    cdef int _handle_frame(self, FrameHeader* h, const unsigned char* payload,
                           list out) except -1
    cdef int _begin_payload(self, FrameHeader* h) except -1
    cdef Py_ssize_t _stream_payload(self, const unsigned char* p, Py_ssize_t n,
                                    list out) except -1
    cdef Py_ssize_t _feed_pending(self, const unsigned char* p, Py_ssize_t n,
                                  list out) except -1
    cdef int _feed_direct(self, const unsigned char* p, Py_ssize_t n,
                          list out) except -1


cdef bint validate_utf8(const unsigned char* s, Py_ssize_t n) noexcept nogil
cdef void unmask_copy(unsigned char* dst, const unsigned char* src, Py_ssize_t n,
                      const unsigned char* key) noexcept nogil
cdef bytes build_frame_c(int opcode, const unsigned char* data, Py_ssize_t n)
# Unmasked frames written into a caller's buffer: size of one, and write one (returns its size).
cdef Py_ssize_t frame_size(Py_ssize_t n) noexcept nogil
# The header of an unmasked frame whose n-byte payload is written separately (at most 10 bytes).
cdef Py_ssize_t write_frame_header(unsigned char* o, int opcode, Py_ssize_t n) noexcept nogil
cdef Py_ssize_t write_frame(unsigned char* o, int opcode, const unsigned char* data,
                            Py_ssize_t n) noexcept nogil
# permessage-deflate (RFC 7692) with no context takeover on either side: one process-wide zlib
# stream each way, reset for every message, so a connection holds no compression state.
# A whole compressed frame (RSV1 set) for an n-byte payload, deflated with a 2**wbits window.
cdef bytes build_deflated_frame_c(int opcode, const unsigned char* data, Py_ssize_t n, int wbits)
# The inflated payload of a compressed message; WebSocketError 1009 past ``limit`` bytes, 1007
# when the data is not a valid deflate stream.
cdef bytes inflate_message(const unsigned char* data, Py_ssize_t n, Py_ssize_t limit)
cpdef bytes build_frame(int opcode, object payload, bint fin=*, object mask_key=*)
cpdef bytes build_close(int code=*, str reason=*)
cpdef tuple parse_close(bytes payload)

# The process-wide budget for partial messages: take n bytes (False, nothing taken, when that
# would pass the budget) and give them back.
cdef bint partial_take(Py_ssize_t n) noexcept
cdef void partial_give(Py_ssize_t n) noexcept
cdef double monotonic_now() noexcept nogil
