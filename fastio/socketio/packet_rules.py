"""What makes a decoded Socket.IO packet well formed, for the serializers decoded in Python
(msgpack, a python-socketio packet class); the default JSON codec checks the same in C."""
from __future__ import annotations

from typing import Any

from fastio._core.packet import ACK, BINARY_ACK, BINARY_EVENT, CONNECT, EVENT, Packet

__all__ = ["plain_type", "checked_packet"]


def plain_type(ptype: int) -> int:
    """EVENT for BINARY_EVENT and ACK for BINARY_ACK: serializers that carry binary values inside
    the packet need no separate binary types."""
    if ptype == BINARY_EVENT:
        return EVENT
    if ptype == BINARY_ACK:
        return ACK
    return ptype


def checked_packet(ptype: Any, namespace: Any, data: Any, pid: Any) -> Packet:
    """A ``Packet`` of these fields, or ValueError naming the first one that is malformed."""
    if type(ptype) is not int or not 0 <= ptype <= 6:
        raise ValueError("invalid packet type %r" % (ptype,))
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise ValueError("invalid namespace %r" % (namespace,))
    if pid is not None and (type(pid) is not int or pid < 0):
        raise ValueError("invalid ack id %r" % (pid,))
    if ptype == EVENT:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise ValueError("an EVENT needs a list starting with the event name")
    elif ptype == ACK:
        if pid is None or not isinstance(data, list):
            raise ValueError("an ACK needs an id and a list of arguments")
    elif ptype == CONNECT:
        if data is not None and not isinstance(data, dict):
            raise ValueError("CONNECT data must be an object")
    return Packet(ptype, namespace, data, pid)
