"""The msgpack serializer: python-socketio's ``serializer="msgpack"`` and Node's
``socket.io-msgpack-parser``.

Every Socket.IO packet is one msgpack map ``{"type", "data", "nsp"[, "id"]}`` sent as a binary
Engine.IO message; binary values stay inside it (msgpack's bin type), so there are no
attachments and no BINARY_EVENT / BINARY_ACK types.  Needs ``pip install msgpack``.
"""
from __future__ import annotations

from typing import Any

from fastio._core.packet import BINARY_ACK, BINARY_EVENT, Encoded, Packet, encoded_binary
from fastio.socketio.packet_rules import checked_packet, plain_type

__all__ = ["MsgpackDecoder", "msgpack_encoder"]


def _msgpack() -> Any:
    try:
        import msgpack
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError('serializer="msgpack" needs the msgpack package: pip install msgpack') from exc
    return msgpack


def msgpack_encoder() -> Any:
    """An ``encode(type, namespace, data, id)`` that returns binary-message ``Encoded`` packets."""
    packb = _msgpack().packb

    def encode(type: int, namespace: str = "/", data: Any = None, id: Any = None) -> Encoded:
        packet: dict[str, Any] = {"type": plain_type(type), "data": data, "nsp": namespace}
        if id is not None:
            packet["id"] = id
        return encoded_binary(packb(packet))

    return encode


class MsgpackDecoder:
    """Turns the binary Engine.IO messages of one connection into ``Packet`` objects.

    Raises ValueError (the server then closes the connection with "parse error") for a text
    message or anything that is not a well-formed packet.
    """

    __slots__ = ("_unpackb", "_ext", "max_size")

    def __init__(self, max_size: int = 1_000_000) -> None:
        msgpack = _msgpack()
        self._unpackb = msgpack.unpackb
        ext_type = msgpack.ExtType

        def ext(code: int, data: bytes) -> Any:
            # JavaScript's undefined, as notepack (socket.io-msgpack-parser) writes it: e.g. the
            # data of a CONNECT sent without auth.
            if code == 0 and data == b"\x00":
                return None
            return ext_type(code, data)

        self._ext = ext
        self.max_size = max_size

    def reset(self) -> None:
        """Nothing is carried between messages."""

    def feed_text(self, data: bytes) -> Packet:
        """Text messages are not packets with this serializer."""
        raise ValueError("text message received with the msgpack serializer")

    def feed_binary(self, data: bytes) -> Packet:
        """Decode one packet."""
        if len(data) > self.max_size:
            raise ValueError("packet too large")
        try:
            packet = self._unpackb(data, raw=False, strict_map_key=False, ext_hook=self._ext)
        except Exception as exc:
            raise ValueError("invalid msgpack packet: %s" % exc) from None
        if not isinstance(packet, dict):
            raise ValueError("a msgpack packet must be a map")
        ptype = packet.get("type")
        nsp = packet.get("nsp", "/")
        pdata = packet.get("data")
        pid = packet.get("id")
        if ptype in (BINARY_EVENT, BINARY_ACK):  # msgpack carries binary values in place
            raise ValueError("invalid packet type %r" % (ptype,))
        return checked_packet(ptype, nsp, pdata, pid)
