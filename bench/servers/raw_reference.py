"""The trivial reference server used to measure the load generator's own ceiling.

It speaks just enough WebSocket/Engine.IO/Socket.IO to satisfy loadgen.py: the upgrade, the
Engine.IO OPEN packet, the CONNECT reply, and the two benchmark events answered by string
surgery on the packet text (no JSON, no Socket.IO state, no rooms):

* ``42["echo",ARGS]``       -> ``42["echo",ARGS]``
* ``42<id>["echo",ARGS]``   -> ``42["echo",ARGS]`` and ``43<id>[ARGS]``
* ``451-["echo",...]`` + one binary frame -> the same header and the same binary frame
* ``42["broadcast",X]``     -> the same frame to every connection

Replies produced while reading one chunk go out in a single write, so it costs far less per
message than any real server; a scenario that cannot go faster against it is bound by the
generator.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import parse_args  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPEN_TEMPLATE = b'0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
CONNECTED = set()
_MASK_CACHE: dict[tuple[bytes, int], int] = {}


def unmask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    k = _MASK_CACHE.get((key, n))
    if k is None:
        k = int.from_bytes((key * ((n + 3) >> 2))[:n], "little")
        if len(_MASK_CACHE) > 256:
            _MASK_CACHE.clear()
        _MASK_CACHE[(key, n)] = k
    return (int.from_bytes(payload, "little") ^ k).to_bytes(n, "little")


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


class RawSocketIO(asyncio.Protocol):
    __slots__ = ("transport", "buf", "upgraded", "sid", "pending_binary")

    def __init__(self) -> None:
        self.transport = None
        self.buf = bytearray()
        self.upgraded = False
        self.sid = base64.urlsafe_b64encode(os.urandom(12))
        self.pending_binary = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        CONNECTED.discard(self)

    def _handshake(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return len(self.buf) < 16384
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]
        key = None
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip().encode("latin-1")
        if key is None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + frame(1, OPEN_TEMPLATE % self.sid))
        self.upgraded = True
        CONNECTED.add(self)
        return True

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            if not self._handshake():
                self.transport.close()
                return
        n = len(buf)
        pos = 0
        out = []
        while n - pos >= 6:
            b0 = buf[pos]
            ln = buf[pos + 1] & 127
            hs = pos + 2
            if ln == 126:
                if n - pos < 8:
                    break
                ln = (buf[hs] << 8) | buf[hs + 1]
                hs += 2
            elif ln == 127:
                if n - pos < 14:
                    break
                ln = int.from_bytes(buf[hs:hs + 8], "big")
                hs += 8
            end = hs + 4 + ln
            if end > n:
                break
            pos = end
            op = b0 & 15
            if op == 2:
                # Binary attachments go back as received, still masked: the generator only
                # checks their size, and this keeps the reference far cheaper than a real server.
                if self.pending_binary is not None:
                    n = end - hs - 4
                    out.append(self.pending_binary)
                    out.append(bytes((0x82, 127)) + n.to_bytes(8, "big") if n >= 65536 else
                               bytes((0x82, 126)) + n.to_bytes(2, "big") if n >= 126 else bytes((0x82, n)))
                    out.append(bytes(buf[hs + 4:end]))
                    self.pending_binary = None
                continue
            payload = unmask(bytes(buf[hs + 4:end]), bytes(buf[hs:hs + 4]))
            if op == 1:
                self._text(payload, out)
            elif op == 8:
                self.transport.write(b"".join(out) + frame(8, payload[:2]))
                self.transport.close()
                return
            elif op == 9:
                out.append(frame(10, payload))
        if pos:
            del buf[:pos]
        if out:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writelines(out)

    def _text(self, p: bytes, out: list) -> None:
        if p[:2] == b"42":
            if p[2:3] == b"[":
                if p.startswith(b'42["broadcast"'):
                    f = frame(1, p)
                    for c in CONNECTED:
                        c.transport.write(f)
                else:
                    out.append(frame(1, p))
                return
            i = p.index(b"[")  # 42<id>["echo",ARGS]
            body = p[i:]
            out.append(frame(1, b"42" + body))
            comma = body.find(b",")
            args = body[comma + 1:] if comma >= 0 else b"]"
            out.append(frame(1, b"43" + p[2:i] + b"[" + args))
        elif p[:3] == b"451":
            self.pending_binary = frame(1, p)
        elif p[:2] == b"40":
            out.append(frame(1, b'40{"sid":"' + self.sid + b'"}'))
        elif p[:1] == b"3":
            pass
        elif p[:2] == b"41" or p[:1] == b"1":
            self.transport.close()


def main() -> None:
    import uvloop

    a = parse_args(__doc__)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(RawSocketIO, a.host, a.port, reuse_address=True, backlog=4096))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("READY raw_reference port=%d pid=%d" % (a.port, os.getpid()), flush=True)
    loop.run_until_complete(stop.wait())
    server.close()
    for c in list(CONNECTED):
        c.transport.abort()
    loop.close()


if __name__ == "__main__":
    main()
