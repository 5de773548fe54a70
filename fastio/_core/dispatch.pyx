# cython: language_level=3
# The compiled hop from an Engine.IO message to a Socket.IO event handler (contracts in
# dispatch.pyi): decode, find the handler, call it, start its coroutine.  Everything that is not
# a plain event to a registered handler goes back to the server's Python code unchanged.
cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM

from fastio._core.conn cimport Conn, CompiledSink
from fastio._core.packet cimport Decoder, Packet, EVENT, ACK, encode

import asyncio
import types

from fastio._core import packet as _packet

cdef extern from *:
    '''
    /* Send None into a coroutine: 1 when it returned (*res: its value), 0 when it suspended
       (*res: what it yielded), -1 with an exception set.  No StopIteration is made. */
    static int fastio_coro_send(PyObject *coro, PyObject **res) {
        PySendResult r = PyIter_Send(coro, Py_None, res);
        if (r == PYGEN_ERROR) return -1;
        return r == PYGEN_RETURN ? 1 : 0;
    }
    '''
    int fastio_coro_send(object coro, PyObject **res) except -1

cdef extern from "Python.h":
    object PyContext_CopyCurrent()
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1

cdef object _Coroutine = types.CoroutineType
cdef object _Task = asyncio.Task
cdef object _CancelledError = asyncio.CancelledError
cdef int _INFO = 20

# What continues a coroutine that suspended on its first run: continuation(coro, yielded, ctx)
# -> the Task that finishes it (set by the Python layer, which owns tasks and their references).
cdef object _continuation = None


def set_continuation(fn):
    global _continuation
    _continuation = fn


cpdef object start_coroutine(object coro):
    cdef PyObject *res = NULL
    cdef int done
    cdef object value
    if type(coro) is not _Coroutine and not isinstance(coro, _Coroutine):
        return coro
    # In a context of its own, as a task would run it: context variables a handler sets stay there.
    ctx = PyContext_CopyCurrent()
    PyContext_Enter(ctx)
    try:
        done = fastio_coro_send(coro, &res)
    finally:
        PyContext_Exit(ctx)
    value = <object>res
    Py_XDECREF(res)
    if done:
        return value
    return _continuation(coro, value, ctx)


cdef class CompiledEvents(CompiledSink):

    def __cinit__(self, object server, dict handlers, object reserved, set hooks, object start,
                  object encoder, object python_sink, object dispatch_packet, object handle_event,
                  object parse_error, object partial, object send_ack, object after_task,
                  object handler_error):
        self.server = server
        self.handlers = handlers
        self.reserved = reserved
        self.hooks = hooks
        self.start = start
        # With the built-in JSON packet codec an acknowledgement is encoded and queued here.
        self.own_acks = encoder is _packet.encode
        self.python_sink = python_sink
        self.dispatch_packet = dispatch_packet
        self.handle_event = handle_event
        self.parse_error = parse_error
        self.partial = partial
        self.send_ack = send_ack
        self.after_task = after_task
        self.handler_error = handler_error

    def __call__(self, Conn conn, bytes data, bint binary):
        self.deliver(conn, data, binary)

    cdef int deliver(self, Conn conn, bytes data, bint binary) except -1:
        cdef object client = conn.ext
        cdef object decoder
        cdef object pkt
        if client is None:
            return 0
        decoder = client.decoder
        if binary or type(decoder) is not Decoder:
            self.python_sink(conn, data, binary)
            return 0
        try:
            pkt = (<Decoder>decoder).feed_text(data)
        except ValueError as exc:
            self.parse_error(conn, exc)
            return 0
        if pkt is None:
            self.partial(conn)
            return 0
        if conn.partial_deadline:
            conn.partial_deadline = 0.0
        if (<Packet>pkt).type != EVENT:
            self.dispatch_packet(client, pkt)
            return 0
        self._event(client, <Packet>pkt)
        return 0

    cdef int _event(self, object client, Packet pkt) except -1:
        cdef str namespace = pkt.namespace
        cdef object sock
        cdef object data = pkt.data
        cdef object event
        cdef object handler
        cdef object args
        cdef object result
        cdef dict by_event
        cdef Py_ssize_t i, n
        if self.hooks or self.server.admin is not None or type(data) is not list or self.server.logger.isEnabledFor(_INFO):
            self.handle_event(client, pkt)
            return 0
        sock = (<dict>client.sockets).get(namespace)
        n = PyList_GET_SIZE(data)
        if sock is None or n == 0 or not sock.connected:
            self.handle_event(client, pkt)
            return 0
        event = <object>PyList_GET_ITEM(data, 0)
        by_event = self.handlers.get(namespace)
        handler = by_event.get(event) if by_event is not None else None
        if handler is None or event in self.reserved:
            self.handle_event(client, pkt)
            return 0
        # handler(sid, *arguments)
        args = PyTuple_New(n)
        sid = sock.sid
        Py_INCREF(sid)
        PyTuple_SET_ITEM(args, 0, sid)
        for i in range(1, n):
            item = <object>PyList_GET_ITEM(data, i)
            Py_INCREF(item)
            PyTuple_SET_ITEM(args, i, item)
        try:
            result = handler(*args)
            if type(result) is _Coroutine:
                result = self.start(result)
        except (Exception, _CancelledError):
            # (a handler cancelled before its first await must not reach the transport)
            self.handler_error(event)
            return 0
        if type(result) is _Task:
            self.after_task(client, namespace, pkt.id, result)
        elif pkt.id is not None:
            if self.own_acks:
                # python-socketio's rule: None -> no arguments, a tuple -> several, else one.
                (<Conn?>client.conn).send_encoded(encode(
                    ACK, namespace, [] if result is None else list(result) if type(result) is tuple else [result],
                    pkt.id))
            else:
                self.send_ack(client.conn, namespace, pkt.id, result)
        return 0
