# cython: language_level=3
# Rooms and fan-out (contracts in rooms.pyi).
cimport cython

from fastio._core.conn cimport Conn, ST_OPEN, OUT_POLL
from fastio._core.packet cimport Encoded, EVENT, encode

# A volatile packet goes only to a connection that can take it now: below this many queued
# bytes (RoomTable.volatile_limit), and for long-polling only while a poll waits.
cdef enum:
    DEF_VOLATILE_LIMIT = 64 * 1024


cdef inline bint _is_many(object to):
    return isinstance(to, (list, tuple, set, frozenset))


@cython.final
cdef class RoomTable:

    def __cinit__(self):
        self.ns_rooms = {}
        self.ns_members = {}
        self.volatile_limit = DEF_VOLATILE_LIMIT

    cpdef enter(self, str namespace, object room, str sid, Conn conn):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef dict members
        cdef dict memberships
        cdef set mine
        if rooms is None:
            rooms = self.ns_rooms[namespace] = {None: {}}
            self.ns_members[namespace] = {}
        if room is None or room == sid:
            (<dict>rooms[None])[sid] = conn
            return
        members = rooms.get(room)
        if members is None:
            members = rooms[room] = {}
        members[sid] = conn
        memberships = self.ns_members[namespace]
        mine = memberships.get(sid)
        if mine is None:
            mine = memberships[sid] = set()
        mine.add(room)

    cpdef bint leave(self, str namespace, object room, str sid):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef dict members
        cdef set mine
        if rooms is None or room is None or room == sid:
            return False
        members = rooms.get(room)
        if members is None or sid not in members:
            return False
        del members[sid]
        if not members:
            del rooms[room]
        mine = (<dict>self.ns_members[namespace]).get(sid)
        if mine is not None:
            mine.discard(room)
            if not mine:
                del self.ns_members[namespace][sid]
        return True

    cpdef list leave_all(self, str namespace, str sid):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef dict members
        cdef set mine
        cdef list left = []
        if rooms is None:
            return left
        if (<dict>rooms[None]).pop(sid, None) is not None:
            left.append(None)
            left.append(sid)
        mine = (<dict>self.ns_members[namespace]).pop(sid, None)
        if mine is not None:
            for room in mine:
                members = rooms.get(room)
                if members is not None:
                    members.pop(sid, None)
                    if not members:
                        del rooms[room]
                left.append(room)
        if len(rooms) == 1 and not rooms[None] and not self.ns_members[namespace]:
            # The namespace's last socket left: forget it, as python-socketio does (its name
            # came from a client; with namespaces='*' distinct names would pile up for good).
            del self.ns_rooms[namespace]
            del self.ns_members[namespace]
        return left

    cpdef list close_room(self, str namespace, object room):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef dict members
        cdef dict memberships
        cdef set mine
        if rooms is None or room is None:
            return []
        members = rooms.pop(room, None)
        if members is None:
            return []
        memberships = self.ns_members[namespace]
        for sid in members:
            mine = memberships.get(sid)
            if mine is not None:
                mine.discard(room)
                if not mine:
                    del memberships[sid]
        return list(members)

    cpdef list rooms_of(self, str namespace, str sid):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef set mine
        if rooms is None or sid not in <dict>rooms[None]:
            return []
        mine = (<dict>self.ns_members[namespace]).get(sid)
        return [sid] if mine is None else [sid, *mine]

    def members(self, str namespace, object room=None):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef dict members
        if rooms is None:
            return {}
        members = rooms.get(room)
        if members is not None:
            return dict(members)
        conn = (<dict>rooms[None]).get(room) if isinstance(room, str) else None
        return {room: conn} if conn is not None else {}

    def conn_of(self, str namespace, str sid):
        cdef dict rooms = self.ns_rooms.get(namespace)
        if rooms is None:
            return None
        return (<dict>rooms[None]).get(sid)

    # python-socketio's manager exposes rooms as ``manager.rooms[namespace][room]``; apps
    # count members that way, so the same read access works here ({sid: Conn} per room).
    def __getitem__(self, str namespace):
        return self.ns_rooms[namespace]

    def get(self, str namespace, default=None):
        return self.ns_rooms.get(namespace, default)

    def __contains__(self, namespace):
        return namespace in self.ns_rooms

    def __iter__(self):
        return iter(self.ns_rooms)

    def namespaces(self):
        return [ns for ns, rooms in self.ns_rooms.items() if rooms]

    def room_names(self, str namespace):
        return list(self.ns_rooms.get(namespace, {}))

    cpdef Py_ssize_t emit_event(self, str namespace, object to, object skip, object event, object data) except -1:
        # python-socketio's argument rule (None: none, a tuple: several, else one), the built-in
        # JSON codec, then the fan-out: an emit without a callback in one call.
        cdef list args
        if data is None:
            args = [event]
        elif type(data) is tuple:
            args = [event]
            args.extend(<tuple>data)
        else:
            args = [event, data]
        return self.fanout(namespace, to, skip, encode(EVENT, namespace, args))

    cpdef Py_ssize_t fanout(self, str namespace, object to, object skip, Encoded enc) except -1:
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef dict members
        cdef object skip_set = None
        cdef str skip_one = None
        cdef set seen
        cdef Py_ssize_t n = 0
        cdef Conn c
        if rooms is None:
            return 0
        if skip is not None:
            if _is_many(skip):
                skip_set = set(skip)
            else:
                skip_one = skip
        if not _is_many(to):
            members = rooms.get(to)
            if members is None:
                return self._to_sid(rooms, to, skip_one, skip_set, enc)
            for sid, conn in members.items():
                if skip_one is not None and (<str>sid) == skip_one:
                    continue
                if skip_set is not None and sid in skip_set:
                    continue
                (<Conn>conn).send_encoded(enc)
                n += 1
            return n
        seen = set()
        for room in to:
            members = rooms.get(room)
            if members is None:
                if isinstance(room, str) and room not in seen:
                    seen.add(room)
                    n += self._to_sid(rooms, room, skip_one, skip_set, enc)
                continue
            for sid, conn in members.items():
                if sid in seen:
                    continue
                seen.add(sid)
                if skip_one is not None and (<str>sid) == skip_one:
                    continue
                if skip_set is not None and sid in skip_set:
                    continue
                (<Conn>conn).send_encoded(enc)
                n += 1
        return n

    cdef Py_ssize_t _to_sid(self, dict rooms, object sid, str skip_one, object skip_set,
                            Encoded enc) except -1:
        # A sid is a room of one: its connection, unless skipped.
        cdef object conn
        if not isinstance(sid, str):
            return 0
        conn = (<dict>rooms[None]).get(sid)
        if conn is None or (skip_one is not None and (<str>sid) == skip_one) or (
                skip_set is not None and sid in skip_set):
            return 0
        (<Conn>conn).send_encoded(enc)
        return 1

    cdef set _excluded(self, dict rooms, object exclude, object skip):
        # The sids no packet may reach: members of the except rooms (a sid names its own room)
        # and the skipped sids.  None when nobody is excluded.
        cdef set out = None
        cdef dict members
        if exclude is not None:
            for room in (exclude if _is_many(exclude) else (exclude,)):
                members = rooms.get(room)
                if members is not None:
                    if out is None:
                        out = set(members)
                    else:
                        out.update(members)
                elif isinstance(room, str) and room in <dict>rooms[None]:
                    if out is None:
                        out = set()
                    out.add(room)
        if skip is not None:
            if out is None:
                out = set()
            if _is_many(skip):
                out.update(skip)
            else:
                out.add(skip)
        return out

    cdef Py_ssize_t _visit(self, dict rooms, object to, set excluded, Encoded enc, bint volatile,
                           list reached) except -1:
        # Every recipient once: send ``enc`` (if given) and/or record its sid in ``reached``.
        # Returns how many were reached.
        cdef Py_ssize_t n = 0
        cdef dict members
        cdef set seen = None
        cdef object conn
        cdef object sid
        cdef list targets
        if to is None:
            targets = [None]
        elif _is_many(to):
            targets = list(to)
            seen = set()
        else:
            targets = [to]
        for room in targets:
            members = rooms.get(room)
            if members is None:
                # Not a room: maybe a sid, a room of one.
                if not isinstance(room, str):
                    continue
                conn = (<dict>rooms[None]).get(room)
                if conn is None:
                    continue
                members = {room: conn}
            for sid, conn in members.items():
                if seen is not None:
                    if sid in seen:
                        continue
                    seen.add(sid)
                if excluded is not None and sid in excluded:
                    continue
                if enc is not None:
                    if volatile and not _writable(<Conn>conn, self.volatile_limit):
                        continue
                    (<Conn>conn).send_encoded(enc)
                n += 1
                if reached is not None:
                    reached.append(sid)
        return n

    cpdef Py_ssize_t broadcast(self, str namespace, object to, object exclude, object skip,
                               Encoded enc, bint volatile=False, list reached=None) except -1:
        cdef dict rooms = self.ns_rooms.get(namespace)
        if rooms is None:
            return 0
        return self._visit(rooms, to, self._excluded(rooms, exclude, skip), enc, volatile, reached)

    cpdef list select(self, str namespace, object to, object exclude, object skip=None):
        cdef dict rooms = self.ns_rooms.get(namespace)
        cdef list out = []
        if rooms is None:
            return out
        self._visit(rooms, to, self._excluded(rooms, exclude, skip), None, False, out)
        return out


cdef inline bint _writable(Conn c, Py_ssize_t limit):
    # Node's "transport.writable": a volatile packet is dropped rather than queued behind
    # output the client has not taken yet.
    if c.state != ST_OPEN or c.dropping or c.wq_bytes >= limit:
        return False
    if c.out == OUT_POLL:
        return c.poll_waiter is not None
    return c.ws is not None and not c.ws.ws_paused
