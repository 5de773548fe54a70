from fastio._core.conn cimport Conn, CompiledSink
from fastio._core.packet cimport Packet


cpdef object start_coroutine(object coro)


cdef class CompiledEvents(CompiledSink):
    cdef object server
    cdef dict handlers
    cdef object reserved
    cdef set hooks
    cdef object start
    cdef bint own_acks
    cdef object python_sink
    cdef object dispatch_packet
    cdef object handle_event
    cdef object parse_error
    cdef object partial
    cdef object send_ack
    cdef object after_task
    cdef object handler_error
    cdef int _event(self, object client, Packet pkt) except -1
