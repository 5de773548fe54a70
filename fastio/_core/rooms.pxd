from fastio._core.conn cimport Conn
from fastio._core.packet cimport Encoded


cdef class RoomTable:
    cdef dict ns_rooms      # namespace -> {room -> {sid -> Conn}}
    cdef dict ns_members    # namespace -> {sid -> set of rooms}
    cdef public Py_ssize_t volatile_limit

    cpdef enter(self, str namespace, object room, str sid, Conn conn)
    cpdef bint leave(self, str namespace, object room, str sid)
    cpdef list leave_all(self, str namespace, str sid)
    cpdef list close_room(self, str namespace, object room)
    cpdef list rooms_of(self, str namespace, str sid)
    cpdef Py_ssize_t fanout(self, str namespace, object to, object skip, Encoded enc) except -1
    cpdef Py_ssize_t emit_event(self, str namespace, object to, object skip, object event, object data) except -1
    cdef Py_ssize_t _to_sid(self, dict rooms, object sid, str skip_one, object skip_set,
                            Encoded enc) except -1
    cdef set _excluded(self, dict rooms, object exclude, object skip)
    cdef Py_ssize_t _visit(self, dict rooms, object to, set excluded, Encoded enc, bint volatile,
                           list reached) except -1
    cpdef Py_ssize_t broadcast(self, str namespace, object to, object exclude, object skip,
                               Encoded enc, bint volatile=*, list reached=*) except -1
    cpdef list select(self, str namespace, object to, object exclude, object skip=*)
