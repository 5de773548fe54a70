# Engine.IO v4 packet codec (polling payloads and WebSocket text packets).

# Packet types. Anonymous cpdef enum: C constants for cimporters, plain
# Python ints for Python code.
cpdef enum:
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6

cdef enum:
    # Packets in one long-polling payload.  Engine.IO sets no limit, but python-engineio's
    # client refuses payloads of more than 16 packets.
    MAX_PAYLOAD_PACKETS = 16

# Base64 helpers shared with the Socket.IO codec.
# `prefix` (0 for none) is written as the first byte, e.g. b"b" for polling.
cdef bytes b64encode_prefixed(const unsigned char* data, Py_ssize_t n, unsigned char prefix)
# Strict standard-alphabet decoding; padding optional; ValueError on bad input.
cdef bytes b64decode_c(const unsigned char* data, Py_ssize_t n)
# bytes for any bytes-like object (bytes returned as is), TypeError otherwise.
cdef bytes as_bytes(object obj)

cpdef list decode_payload(bytes body, Py_ssize_t max_packets=*)
cpdef bytes encode_payload(list items)
cpdef bytes poll_binary(data)
cpdef tuple decode_packet(bytes pkt)
cpdef bytes encode_packet(int type, data=*)
