"""Socket.IO v5 packet codec (fastio._core.packet), checked against python-socketio."""

import base64
import json
import struct

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio.packet import Packet as SioPacket

from fastio._core import packet as P
from fastio._core.packet import Decoder, Encoded, encode

# Deterministic: fixed seed, no example database, no timing-based failures.
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None)


@pytest.fixture(autouse=True)
def _default_json():
    P.configure_json(None)
    yield
    P.configure_json(None)


def decode_all(text, attachments=(), **kw):
    """Decode a packet text and its attachments with a fresh Decoder."""
    d = Decoder(**kw)
    pkt = d.feed_text(text)
    for a in attachments:
        assert pkt is None
        pkt = d.feed_binary(a)
    assert pkt is not None
    return pkt


def as_tuple(pkt):
    return (pkt.type, pkt.namespace, pkt.data, pkt.id)


# ---------------------------------------------------------------- wire examples

WIRE = [
    # text, (type, namespace, data, id)
    (b'0{"token":"x"}', (P.CONNECT, "/", {"token": "x"}, None)),
    (b'0/admin,{"token":"x"}', (P.CONNECT, "/admin", {"token": "x"}, None)),
    (b"0", (P.CONNECT, "/", None, None)),
    (b"0/admin,", (P.CONNECT, "/admin", None, None)),
    (b"1", (P.DISCONNECT, "/", None, None)),
    (b"1/ns,", (P.DISCONNECT, "/ns", None, None)),
    (b'2["ev",1]', (P.EVENT, "/", ["ev", 1], None)),
    (b'21["ev"]', (P.EVENT, "/", ["ev"], 1)),
    (b'2/chat,17["msg",{"a":[1,2.5,null,true]}]',
     (P.EVENT, "/chat", ["msg", {"a": [1, 2.5, None, True]}], 17)),
    (b"3/ns,5[1,2]", (P.ACK, "/ns", [1, 2], 5)),
    (b"30[]", (P.ACK, "/", [], 0)),
    (b'4{"message":"Not authorized"}', (P.CONNECT_ERROR, "/", {"message": "Not authorized"}, None)),
    ('2["é✓",{"k":"ü"}]'.encode(), (P.EVENT, "/", ["é✓", {"k": "ü"}], None)),
    ('2/é,["ev"]'.encode(), (P.EVENT, "/é", ["ev"], None)),
]


@pytest.mark.parametrize("text, expected", WIRE)
def test_wire_decode(text, expected):
    assert as_tuple(decode_all(text)) == expected


@pytest.mark.parametrize("text, expected", WIRE)
def test_wire_encode(text, expected):
    ptype, ns, data, id = expected
    enc = encode(ptype, ns, data, id)
    assert enc.text == text
    assert enc.message == b"4" + text
    assert enc.attachments == []


def test_wire_binary_event():
    text = b'51-["ev",{"_placeholder":true,"num":0}]'
    d = Decoder()
    assert d.feed_text(text) is None
    assert d.waiting == 1
    pkt = d.feed_binary(b"\x01\x02\x03")
    assert as_tuple(pkt) == (P.BINARY_EVENT, "/", ["ev", b"\x01\x02\x03"], None)
    assert d.waiting == 0

    enc = encode(P.EVENT, "/", ["ev", b"\x01\x02\x03"])
    assert enc.text == text
    assert enc.attachments == [b"\x01\x02\x03"]


def test_wire_binary_ack_with_namespace_and_id():
    text = b'62-/ns,9[{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]'
    enc = encode(P.ACK, "/ns", [b"a", {"x": bytearray(b"bc")}], 9)
    assert enc.text == text
    assert enc.attachments == [b"a", b"bc"]
    assert all(type(a) is bytes for a in enc.attachments)
    pkt = decode_all(text, [b"a", b"bc"])
    assert as_tuple(pkt) == (P.BINARY_ACK, "/ns", [b"a", {"x": b"bc"}], 9)


def test_binary_placeholders_depth_first_order():
    data = ["ev", {"a": b"0", "b": [b"1", (b"2", {"c": memoryview(b"3")})]}, b"4"]
    enc = encode(P.EVENT, "/", data)
    assert enc.attachments == [b"0", b"1", b"2", b"3", b"4"]
    placeholder = lambda n: {"_placeholder": True, "num": n}  # noqa: E731
    assert json.loads(enc.text[3:]) == [
        "ev", {"a": placeholder(0), "b": [placeholder(1), [placeholder(2), {"c": placeholder(3)}]]},
        placeholder(4),
    ]
    assert enc.text.startswith(b"55-[")
    pkt = decode_all(enc.text, enc.attachments)
    assert pkt.data == ["ev", {"a": b"0", "b": [b"1", [b"2", {"c": b"3"}]]}, b"4"]


def test_encode_does_not_mutate_input():
    inner = {"k": b"x", "other": [1, 2]}
    data = ["ev", inner, [3, 4]]
    encode(P.EVENT, "/", data)
    assert data == ["ev", {"k": b"x", "other": [1, 2]}, [3, 4]]
    assert inner["k"] == b"x"


def test_encode_binary_types_without_binary_downgrade():
    assert encode(P.BINARY_EVENT, "/", ["ev", 1]).text == b'2["ev",1]'
    assert encode(P.BINARY_ACK, "/", [1], 3).text == b"33[1]"
    assert encode(P.BINARY_EVENT, "/", ["ev", b"x"]).text.startswith(b"51-")


def test_encode_tuples_and_non_str_keys():
    assert encode(P.EVENT, "/", ("ev", (1, 2))).text == b'2["ev",[1,2]]'
    assert encode(P.EVENT, "/", ["ev", {1: "a"}]).text == b'2["ev",{"1":"a"}]'


def test_encode_errors():
    with pytest.raises(ValueError):
        encode(7)
    with pytest.raises(ValueError):
        encode(-1)
    with pytest.raises(ValueError, match="binary"):
        encode(P.CONNECT, "/", {"x": b"bin"})
    with pytest.raises(ValueError, match="binary"):
        encode(P.CONNECT_ERROR, "/", {"x": b"bin"})
    with pytest.raises(ValueError, match="namespace"):
        encode(P.EVENT, "ns", ["ev"])
    with pytest.raises(ValueError, match="namespace"):
        encode(P.EVENT, "", ["ev"])
    with pytest.raises(ValueError, match="namespace"):
        encode(P.EVENT, "/a,b", ["ev"])
    with pytest.raises(ValueError, match="ack id"):
        encode(P.ACK, "/", [], -1)
    with pytest.raises(TypeError):
        encode(P.ACK, "/", [], "1")
    with pytest.raises(TypeError):
        encode(P.ACK, "/", [], True)
    with pytest.raises(TypeError):
        encode(P.EVENT, "/", ["ev", object()])


def test_encode_reference_cycle_and_deep_nesting():
    cyc = ["ev"]
    cyc.append(cyc)
    with pytest.raises(ValueError, match="nested too deeply"):
        encode(P.EVENT, "/", cyc)
    deep = b"x"
    for _ in range(1100):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        encode(P.EVENT, "/", ["ev", deep])


def test_encode_namespace_none_is_root():
    assert encode(P.EVENT, None, ["ev"]).text == b'2["ev"]'


def test_large_ack_id():
    enc = encode(P.ACK, "/", [1], 10**17)
    assert enc.text == b"3" + str(10**17).encode() + b"[1]"
    assert decode_all(enc.text).id == 10**17


# ---------------------------------------------------------------- Encoded transport forms


def parse_frames(buf):
    """Split unmasked server frames: list of (fin, opcode, payload)."""
    frames = []
    i = 0
    while i < len(buf):
        b0, b1 = buf[i], buf[i + 1]
        assert not b1 & 0x80, "server frames are not masked"
        n = b1 & 0x7F
        i += 2
        if n == 126:
            (n,) = struct.unpack("!H", buf[i:i + 2])
            i += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", buf[i:i + 8])
            i += 8
        frames.append((bool(b0 & 0x80), b0 & 0x0F, buf[i:i + n]))
        i += n
    assert i == len(buf)
    return frames


def test_ws_frames_text_only():
    enc = encode(P.EVENT, "/", ["ev", 1])
    frames = enc.ws_frames()
    assert frames == b"\x81\x0a" + b'42["ev",1]'
    assert parse_frames(frames) == [(True, 1, b'42["ev",1]')]
    assert enc.ws_frames() is frames  # cached


def test_ws_frames_with_attachments():
    big = bytes(range(256)) * 300  # 76800 bytes: 64-bit length
    mid = b"m" * 200               # 16-bit length
    enc = encode(P.EVENT, "/x", ["ev", b"\x01", {"m": mid}, big], 4)
    frames = parse_frames(enc.ws_frames())
    assert frames[0] == (True, 1, b"4" + enc.text)
    assert frames[1:] == [(True, 2, b"\x01"), (True, 2, mid), (True, 2, big)]
    assert enc.ws_frames() is enc.ws_frames()


def test_poll_items():
    enc = encode(P.EVENT, "/", ["ev", b"\x01\x02\x03", b""])
    items = enc.poll_items()
    assert items == [b'452-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
                     b"bAQID", b"b"]
    assert enc.poll_items() is items  # cached
    plain = encode(P.EVENT, "/", ["ev"])
    assert plain.poll_items() == [b'42["ev"]']


def test_poll_items_decode_through_eio():
    from fastio._core import eio

    enc = encode(P.EVENT, "/", ["ev", b"payload", [b"more"]])
    decoded = eio.decode_payload(eio.encode_payload(enc.poll_items()))
    assert decoded[0] == (4, enc.text, False)
    assert [d for _, d, _ in decoded[1:]] == enc.attachments
    assert all(binary for _, _, binary in decoded[1:])


def test_encoded_constructor():
    enc = Encoded(b'2["ev"]', [bytearray(b"x")])
    assert enc.text == b'2["ev"]'
    assert enc.message == b'42["ev"]'
    assert enc.attachments == [b"x"]
    assert enc.poll_items() == [b'42["ev"]', b"beA=="]


# ---------------------------------------------------------------- Decoder errors


@pytest.mark.parametrize(
    "text, reason",
    [
        (b"", "bad packet type"),
        (b"7[]", "bad packet type"),
        (b"x", "bad packet type"),
        (b'5["ev"]', "bad attachment count"),
        (b'51["ev"]', "bad attachment count"),
        (b'5-["ev"]', "bad attachment count"),
        (b"51", "bad attachment count"),
        (b'51234567890-["ev"]', "attachment count"),
        (b'511-["ev"]', "too many attachments"),
        (b'0/\xff\xfe,{"a":1}', "bad namespace"),
        (b'2/ns\xc3,["ev"]', "bad namespace"),
        (b"3[1]", "bad ack id"),
        (b"3/ns,[1]", "bad ack id"),
        (b'2' + b"1" * 19 + b'["ev"]', "bad ack id"),
        (b'2["ev"', "invalid JSON"),
        (b"0{bad}", "invalid JSON"),
        (b'2["ev"]x', "invalid JSON"),
        (b"1/ns,junk", "invalid JSON"),
        (b'2["\xff"]', "invalid JSON"),
        (b"2", "EVENT data"),
        (b"2[]", "EVENT data"),
        (b"2[1]", "EVENT data"),
        (b'2{"ev":1}', "EVENT data"),
        (b'2"ev"', "EVENT data"),
        (b"2/ns,", "EVENT data"),
        (b"31", "ACK data"),
        (b'31{"a":1}', "ACK data"),
        (b"0[1]", "CONNECT data"),
        (b'0"token"', "CONNECT data"),
        (b"05", "CONNECT data"),
        (b"1{}", "DISCONNECT"),
    ],
)
def test_decoder_text_errors(text, reason):
    with pytest.raises(ValueError, match=reason):
        Decoder().feed_text(text)


def test_decoder_max_attachments():
    d = Decoder(max_attachments=2)
    assert d.feed_text(b'52-["ev"]') is None
    with pytest.raises(ValueError, match="too many attachments"):
        Decoder(max_attachments=2).feed_text(b'53-["ev"]')
    with pytest.raises(ValueError, match="too many attachments"):
        Decoder(max_attachments=0).feed_text(b'51-["ev"]')


def test_decoder_max_size():
    text = b'52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    d = Decoder(max_size=6)
    d.feed_text(text)
    assert d.feed_binary(b"abc") is None
    assert d.feed_binary(b"def").data == ["ev", b"abc", b"def"]
    d.feed_text(text)
    d.feed_binary(b"abc")
    with pytest.raises(ValueError, match="exceed"):
        d.feed_binary(b"defg")
    # the decoder is reset: a new packet is accepted
    assert d.feed_text(b'2["ev"]').data == ["ev"]


@pytest.mark.parametrize(
    "placeholder",
    [
        b'{"_placeholder":true,"num":1}',
        b'{"_placeholder":true,"num":-1}',
        b'{"_placeholder":true,"num":"0"}',
        b'{"_placeholder":true,"num":0.0}',
        b'{"_placeholder":true,"num":true}',
        b'{"_placeholder":true}',
    ],
)
def test_decoder_placeholder_out_of_range(placeholder):
    d = Decoder()
    assert d.feed_text(b'51-["ev",' + placeholder + b"]") is None
    with pytest.raises(ValueError, match="placeholder"):
        d.feed_binary(b"x")
    assert d.waiting == 0


def test_decoder_placeholder_with_zero_attachments():
    with pytest.raises(ValueError, match="placeholder"):
        Decoder().feed_text(b'50-["ev",{"_placeholder":true,"num":0}]')
    pkt = Decoder().feed_text(b'50-["ev",1]')
    assert as_tuple(pkt) == (P.BINARY_EVENT, "/", ["ev", 1], None)


def test_decoder_non_placeholder_dicts_untouched():
    text = b'51-["ev",{"_placeholder":false,"num":0},{"_placeholder":1,"num":0},{"_placeholder":true,"num":0}]'
    pkt = decode_all(text, [b"z"])
    assert pkt.data == ["ev", {"_placeholder": False, "num": 0},
                        {"_placeholder": 1, "num": 0}, b"z"]


def test_decoder_binary_without_pending_packet():
    d = Decoder()
    with pytest.raises(ValueError, match="no packet is waiting"):
        d.feed_binary(b"x")
    d.feed_text(b'51-["ev",{"_placeholder":true,"num":0}]')
    d.feed_binary(b"x")
    with pytest.raises(ValueError, match="no packet is waiting"):
        d.feed_binary(b"y")


def test_decoder_text_while_awaiting_attachments():
    d = Decoder()
    d.feed_text(b'52-["ev",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    d.feed_binary(b"a")
    with pytest.raises(ValueError, match="still awaited"):
        d.feed_text(b'2["ev"]')
    # state dropped after the error
    assert d.waiting == 0
    with pytest.raises(ValueError, match="no packet is waiting"):
        d.feed_binary(b"b")


def test_decoder_reset():
    d = Decoder()
    d.feed_text(b'51-["ev",{"_placeholder":true,"num":0}]')
    assert d.waiting == 1
    d.reset()
    assert d.waiting == 0
    assert d.feed_text(b'2["ev"]').data == ["ev"]


def test_decoder_multiple_binary_packets_in_sequence():
    d = Decoder()
    for i in range(3):
        assert d.feed_text(b'51-/n,%d["ev",{"_placeholder":true,"num":0}]' % i) is None
        pkt = d.feed_binary(b"%d" % i)
        assert as_tuple(pkt) == (P.BINARY_EVENT, "/n", ["ev", b"%d" % i], i)


def test_decoder_does_not_intern_namespaces():
    # An interned string is never freed (immortal from Python 3.12): names sent by clients
    # must stay ordinary strings.  sys.intern returns the string already interned, if any.
    name = "/" + "n" * 5000 + "x"
    text = ('2%s,["ev"]' % name).encode()
    assert Decoder().feed_text(text).namespace == name
    probe = "".join(["/", "n" * 5000, "x"])
    assert sys.intern(probe) is probe


def test_decoder_namespace_query_stripped_and_cached():
    d = Decoder()
    p1 = d.feed_text(b'0/admin?x=1,{"a":1}')
    assert p1.namespace == "/admin"
    p2 = d.feed_text(b'2/admin,["ev"]')
    p3 = Decoder().feed_text(b'2/admin,["ev"]')
    assert p2.namespace is p1.namespace
    assert p3.namespace == p1.namespace
    assert d.feed_text(b'2/other,["ev"]').namespace == "/other"
    assert d.feed_text(b'2/,["ev"]').namespace == "/"


def test_decoder_namespace_without_comma():
    assert as_tuple(Decoder().feed_text(b"1/ns")) == (P.DISCONNECT, "/ns", None, None)


def test_decoder_requires_bytes():
    with pytest.raises(TypeError):
        Decoder().feed_text('2["ev"]')
    with pytest.raises(TypeError):
        Decoder().feed_binary("x")


def test_packet_constructor():
    p = P.Packet(P.EVENT, "/x", ["ev"], 3)
    assert as_tuple(p) == (P.EVENT, "/x", ["ev"], 3)
    assert "Packet(" in repr(p)
    with pytest.raises(ValueError):
        P.Packet(9)


# ---------------------------------------------------------------- configure_json


def test_configure_json_stdlib():
    P.configure_json(json)
    assert P.json_module() is json
    enc = encode(P.EVENT, "/ns", ["ev", {"a": [1, 2]}, "é"], 3)
    assert enc.text == b'2/ns,3["ev",{"a":[1,2]},"\\u00e9"]'
    assert as_tuple(decode_all(enc.text)) == (P.EVENT, "/ns", ["ev", {"a": [1, 2]}, "é"], 3)
    assert decode_all('2["é"]'.encode()).data == ["é"]
    bin_enc = encode(P.EVENT, "/", ["ev", b"\x00"])
    assert bin_enc.text == b'51-["ev",{"_placeholder":true,"num":0}]'
    with pytest.raises(ValueError, match="invalid JSON"):
        Decoder().feed_text(b'2["ev"')
    P.configure_json(None)
    import orjson

    assert P.json_module() is orjson
    assert encode(P.EVENT, "/", ["ev", "é"]).text == '2["ev","é"]'.encode()


def test_configure_json_custom_module():
    class Custom:
        calls = []

        @staticmethod
        def dumps(obj, separators=None):
            Custom.calls.append(separators)
            return json.dumps(obj, separators=separators)

        @staticmethod
        def loads(s):
            return json.loads(s)

    P.configure_json(Custom)
    assert encode(P.EVENT, "/", ["ev", 1]).text == b'2["ev",1]'
    assert Custom.calls == [(",", ":")]
    assert decode_all(b'2["ev",1]').data == ["ev", 1]


# ---------------------------------------------------------------- python-socketio interop

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
)
_key = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8).filter(
    lambda k: k != "_placeholder")


def _json_value(leaves):
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(_key, children, max_size=4),
        ),
        max_leaves=12,
    )


_json_data = _json_value(_json_scalar)
_json_or_bytes = _json_value(st.one_of(_json_scalar, st.binary(max_size=20)))
_namespace = st.one_of(
    st.just("/"),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=",?"),
            min_size=1, max_size=10).map(lambda s: "/" + s),
)
_ack_id = st.one_of(st.none(), st.integers(min_value=0, max_value=2**53))
_event_name = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10)


@st.composite
def sio_packets(draw, binary=True):
    """(type, namespace, data, id) accepted by both encoders and the decoder."""
    values = _json_or_bytes if binary else _json_data
    ptype = draw(st.sampled_from([P.CONNECT, P.DISCONNECT, P.EVENT, P.ACK, P.CONNECT_ERROR]))
    ns = draw(_namespace)
    if ptype == P.CONNECT:
        return ptype, ns, draw(st.one_of(st.none(), st.dictionaries(_key, _json_data, max_size=4))), None
    if ptype == P.DISCONNECT:
        return ptype, ns, None, None
    if ptype == P.CONNECT_ERROR:
        return ptype, ns, draw(st.dictionaries(_key, _json_data, max_size=3)), None
    args = draw(st.lists(values, max_size=4))
    if ptype == P.EVENT:
        return ptype, ns, [draw(_event_name)] + args, draw(_ack_id)
    return ptype, ns, args, draw(st.integers(min_value=0, max_value=2**53))


def _has_bytes(obj):
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_bytes(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_bytes(x) for x in obj.values())
    return False


def _expected_type(ptype, data):
    if _has_bytes(data):
        return {P.EVENT: P.BINARY_EVENT, P.ACK: P.BINARY_ACK}[ptype]
    return ptype


@settings(DETERMINISTIC, max_examples=400)
@given(sio_packets())
def test_fastio_encoding_decodes_with_python_socketio(pkt):
    ptype, ns, data, id = pkt
    enc = encode(ptype, ns, data, id)
    sio = SioPacket(encoded_packet=enc.text.decode("utf-8"))
    for a in enc.attachments:
        sio.add_attachment(a)
    assert sio.attachment_count == len(enc.attachments)
    assert sio.packet_type == _expected_type(ptype, data)
    assert (sio.namespace or "/") == ns
    assert sio.id == id
    assert sio.data == data


@settings(DETERMINISTIC, max_examples=400)
@given(sio_packets())
def test_python_socketio_encoding_decodes_with_fastio(pkt):
    ptype, ns, data, id = pkt
    encoded = SioPacket(ptype, data=data, namespace=ns, id=id).encode()
    if isinstance(encoded, list):
        text, attachments = encoded[0], encoded[1:]
    else:
        text, attachments = encoded, []
    got = decode_all(text.encode("utf-8"), [bytes(a) for a in attachments], max_attachments=1000)
    assert as_tuple(got) == (_expected_type(ptype, data), ns, data, id)


@settings(DETERMINISTIC, max_examples=300)
@given(sio_packets())
def test_fastio_round_trip(pkt):
    ptype, ns, data, id = pkt
    enc = encode(ptype, ns, data, id)
    got = decode_all(enc.text, enc.attachments, max_attachments=1000)
    assert as_tuple(got) == (_expected_type(ptype, data), ns, data, id)
    # the transport forms carry the same packet
    items = enc.poll_items()
    assert items[0] == b"4" + enc.text
    assert [base64.b64decode(i[1:]) for i in items[1:]] == enc.attachments
    frames = parse_frames(enc.ws_frames())
    assert frames[0] == (True, 1, b"4" + enc.text)
    assert [f[2] for f in frames[1:]] == enc.attachments
    assert all(f[:2] == (True, 2) for f in frames[1:])


@settings(DETERMINISTIC, max_examples=150)
@given(sio_packets(binary=False))
def test_stdlib_json_matches_python_socketio_bytes(pkt):
    ptype, ns, data, id = pkt
    P.configure_json(json)
    try:
        enc = encode(ptype, ns, data, id)
    finally:
        P.configure_json(None)
    assert enc.text == SioPacket(ptype, data=data, namespace=ns, id=id).encode().encode("utf-8")


@pytest.mark.parametrize("sizes", [[5], [20000], [3, 70000, 10, 16384, 16383], [65536, 65536]])
def test_ws_parts_are_ws_frames_with_large_attachments_uncopied(sizes):
    blobs = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    enc = encode(P.BINARY_EVENT, "/", ["files", *blobs])
    parts = enc.ws_parts()
    assert b"".join(parts) == enc.ws_frames()
    for blob, original in zip(enc.attachments, blobs):
        if len(original) >= 16384:
            assert any(p is blob for p in parts)
    assert enc.ws_parts() is parts
