"""How the master of ``fastio run --workers N`` reads the owning worker from a request line."""

from __future__ import annotations

import pytest

from fastio.hosting.workers import sid_prefix, worker_of


@pytest.mark.parametrize("head,expected", [
    (b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n", None),
    (b"GET /socket.io/?EIO=4&transport=polling&sid=1.abcDEF_-x HTTP/1.1\r\n", 1),
    (b"POST /socket.io/?sid=0.abc&EIO=4&transport=polling HTTP/1.1\r\n", 0),
    (b"GET /socket.io/?EIO=4&transport=websocket&sid=12.abc HTTP/1.1\r\n", 12),
    # a parameter that merely ends in "sid" is not the sid
    (b"GET /socket.io/?EIO=4&xsid=1.abc&transport=polling HTTP/1.1\r\n", None),
    (b"GET /socket.io/?EIO=4&xsid=0.abc&sid=1.def HTTP/1.1\r\n", 1),
    # a sid no worker made, or of a worker beyond the count: no owner
    (b"GET /socket.io/?EIO=4&sid=abcdefgh HTTP/1.1\r\n", None),
    (b"GET /socket.io/?EIO=4&sid=16.abc HTTP/1.1\r\n", None),
    (b"GET /socket.io/?EIO=4&sid=x1.abc HTTP/1.1\r\n", None),
    # only the request line counts, not a header
    (b"GET /socket.io/?EIO=4 HTTP/1.1\r\nReferer: /?sid=1.abc\r\n\r\n", None),
    # an incomplete request line is read as far as it goes
    (b"GET /socket.io/?EIO=4&sid=3.ab", 3),
    (b"GET /sid=1.a HTTP/1.1\r\n", None),
])
def test_worker_of(head: bytes, expected: int | None) -> None:
    assert worker_of(head, 16) == expected


def test_prefixes_are_distinct_and_parsed_back() -> None:
    prefixes = [sid_prefix(i) for i in range(64)]
    assert len(set(prefixes)) == 64
    for i, prefix in enumerate(prefixes):
        assert worker_of(b"GET /socket.io/?sid=%sAAAA HTTP/1.1\r\n" % prefix.encode(), 64) == i


def test_engine_sid_prefix() -> None:
    import fastio.engineio

    eio = fastio.engineio.AsyncServer()
    assert len(eio.generate_id()) == 20  # no prefix by default
    eio.sid_prefix = sid_prefix(3)
    ids = {eio.generate_id() for _ in range(300)}
    assert len(ids) == 300
    assert all(i.startswith("3.") and len(i) == 22 for i in ids)
    assert {worker_of(b"GET /socket.io/?sid=%s HTTP/1.1\r\n" % i.encode(), 4) for i in ids} == {3}
