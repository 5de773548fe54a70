"""Nothing derived from client input is interned or cached without a bound."""
import sys

from fastio._core.packet import Decoder
from fastio.engineio.environ import build_environ
from fastio.engineio import server as eio_server


def _fresh(text: str) -> str:
    # An equal string built at run time, so it is not the compiler's interned constant.
    return "".join(list(text))


def test_long_header_names_are_not_interned():
    n = len(sys.argv) * 0 + 300  # not a compile-time constant: literals like it are interned
    name = "x-" + "h" * n
    env = build_environ("GET", "/", b"", b"/", "1.1", None, None, [(name.encode(), b"v")])
    key = "HTTP_X_" + "H" * n
    assert env[key] == "v"
    probe = _fresh(key)
    assert sys.intern(probe) is probe


def test_distinct_namespaces_are_not_interned():
    d = Decoder()
    for i in range(50):
        name = "/%d-%s" % (i, "q" * 2000)
        assert d.feed_text(('0%s,{}' % name).encode()).namespace == name
    probe = _fresh("/7-" + "q" * 2000)
    assert sys.intern(probe) is probe


def test_query_cache_ignores_long_query_strings():
    qs = b"EIO=4&transport=polling&pad=" + b"p" * 5000
    out = eio_server._parse_query(qs)
    assert out["EIO"] == "4"
    assert qs not in eio_server._QUERIES
