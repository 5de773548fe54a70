"""A python-socketio packet class as the server's serializer: ``AsyncServer(serializer=MyPacket)``.

python-socketio lets ``serializer`` name a class with its ``Packet`` interface (usually a
``socketio.packet.Packet`` subclass with another JSON, or a binary format like its
``MsgPackPacket``):

- ``MyPacket(packet_type, data=..., namespace=..., id=...).encode()`` returns a str (one text
  message), a list ``[str, *bytes]`` (a text message and its binary attachments) or bytes (one
  binary message);
- ``MyPacket(encoded_packet=message)`` decodes one message (``attachment_count`` says how many
  binary attachments follow, fed with ``add_attachment``, which returns True at the last one).

This module adapts such a class to fastio's encoder/decoder pair.  Emits still encode once per
broadcast: the class's output becomes one shared ``Encoded``.
"""
from __future__ import annotations

from typing import Any, Callable

from fastio._core.packet import BINARY_ACK, BINARY_EVENT, Encoded, Packet, encoded_binary
from fastio.socketio.packet_rules import checked_packet, plain_type

__all__ = ["PacketClassDecoder", "packet_class_codec", "packet_class_encoder"]


def packet_class_encoder(packet_class: type) -> Callable[..., Encoded]:
    """An ``encode(type, namespace, data, id)`` producing ``Encoded`` packets with ``packet_class``."""

    def encode(packet_type: int, namespace: str = "/", data: Any = None, id: Any = None) -> Encoded:
        out = packet_class(plain_type(packet_type), data=data, namespace=namespace, id=id).encode()
        if isinstance(out, str):
            return Encoded(out.encode())
        if isinstance(out, (bytes, bytearray, memoryview)):
            return encoded_binary(bytes(out))
        if isinstance(out, list) and out and isinstance(out[0], str):
            return Encoded(out[0].encode(), [bytes(a) for a in out[1:]])
        raise TypeError("%s.encode() returned %r; expected str, bytes or [str, *bytes]"
                        % (packet_class.__name__, type(out).__name__))

    return encode


class PacketClassDecoder:
    """Turns one connection's Engine.IO messages into ``Packet`` objects with ``packet_class``.

    Raises ValueError (the server then closes the connection with "parse error") for anything
    the class cannot decode or that is not a well-formed Socket.IO packet.
    """

    __slots__ = ("packet_class", "max_attachments", "max_size", "_partial")

    def __init__(self, packet_class: type, max_attachments: int = 10, max_size: int = 1_000_000) -> None:
        self.packet_class = packet_class
        self.max_attachments = max_attachments
        self.max_size = max_size
        self._partial: Any = None

    def reset(self) -> None:
        """Forget a packet waiting for its attachments."""
        self._partial = None

    def feed_text(self, data: bytes) -> Packet | None:
        """A text message: a packet (None while attachments are awaited)."""
        if self._partial is not None:
            raise ValueError("text message received while binary attachments were expected")
        if len(data) > self.max_size:
            raise ValueError("packet too large")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("invalid UTF-8 in a text message") from None
        return self._decoded(text)

    def feed_binary(self, data: bytes) -> Packet | None:
        """A binary message: the next attachment of a waiting packet, or a packet of its own."""
        if len(data) > self.max_size:
            raise ValueError("packet too large")
        pkt = self._partial
        if pkt is None:
            return self._decoded(bytes(data))
        try:
            complete = pkt.add_attachment(data)
        except Exception as exc:
            raise ValueError("invalid attachment: %s" % exc) from None
        if not complete:
            return None
        self._partial = None
        return self._checked(pkt)

    def _decoded(self, message: Any) -> Packet | None:
        try:
            pkt = self.packet_class(encoded_packet=message)
        except Exception as exc:
            raise ValueError("undecodable packet: %s" % exc) from None
        count = getattr(pkt, "attachment_count", 0) or 0
        if pkt.packet_type in (BINARY_EVENT, BINARY_ACK) and count:
            if count > self.max_attachments:
                raise ValueError("too many attachments")
            self._partial = pkt
            return None
        return self._checked(pkt)

    @staticmethod
    def _checked(pkt: Any) -> Packet:
        ptype = pkt.packet_type
        return checked_packet(plain_type(ptype) if type(ptype) is int else ptype,
                              pkt.namespace or "/", pkt.data, pkt.id)


def packet_class_codec(packet_class: type, max_attachments: Callable[[], int],
                       max_size: Callable[[], int]) -> tuple[Callable[..., Encoded], Callable[[], PacketClassDecoder]]:
    """(encode, new_decoder) for a server whose ``serializer`` is ``packet_class``; the limits are
    read when each connection's decoder is made."""
    if not (hasattr(packet_class, "encode") and callable(packet_class)):
        raise ValueError("serializer must be \"default\", \"msgpack\" or a packet class with encode/decode")
    return (packet_class_encoder(packet_class),
            lambda: PacketClassDecoder(packet_class, max_attachments(), max_size()))
