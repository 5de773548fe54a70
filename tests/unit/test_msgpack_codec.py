"""fastio's msgpack packets against python-socketio's MsgPackPacket, both ways, and bad input."""
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio.msgpack_packet import MsgPackPacket

from fastio._core import packet as P
from fastio.socketio.msgpack import MsgpackDecoder, msgpack_encoder

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
namespaces = st.sampled_from(["/", "/chat", "/a/b"])
ids = st.none() | st.integers(0, 2**31)


@settings(max_examples=200, deadline=None)
@given(ns=namespaces, event=st.text(min_size=1, max_size=10), args=st.lists(values, max_size=4), id=ids)
def test_fastio_event_decodes_in_python_socketio(ns, event, args, id):
    enc = msgpack_encoder()(P.EVENT, ns, [event, *args], id)
    assert enc.binary and enc.attachments == []
    pkt = MsgPackPacket(encoded_packet=enc.message)
    assert (pkt.packet_type, pkt.namespace, pkt.data, pkt.id) == (P.EVENT, ns, [event, *args], id)


@settings(max_examples=200, deadline=None)
@given(ns=namespaces, event=st.text(min_size=1, max_size=10), args=st.lists(values, max_size=4), id=ids)
def test_python_socketio_event_decodes_in_fastio(ns, event, args, id):
    raw = MsgPackPacket(P.EVENT, data=[event, *args], namespace=ns, id=id).encode()
    pkt = MsgpackDecoder().feed_binary(raw)
    assert (pkt.type, pkt.namespace, pkt.data, pkt.id) == (P.EVENT, ns, [event, *args], id)


def test_transport_forms_of_a_binary_message():
    enc = msgpack_encoder()(P.ACK, "/", [b"\x00" * 20000], 7)
    assert enc.ws_frames()[0] == 0x82                      # one binary frame
    assert b"".join(enc.ws_parts()) == enc.ws_frames()
    assert enc.poll_items()[0][:1] == b"b"                 # base64 when polling
    assert msgpack.unpackb(enc.message) == {"type": P.ACK, "data": [b"\x00" * 20000], "nsp": "/", "id": 7}


@pytest.mark.parametrize("raw, why", [
    (b"\xc1", "invalid msgpack"),
    (msgpack.packb([1, 2]), "must be a map"),
    (msgpack.packb({"type": 9, "nsp": "/"}), "invalid packet type"),
    (msgpack.packb({"type": 5, "nsp": "/", "data": ["x"]}), "invalid packet type"),
    (msgpack.packb({"type": 2, "nsp": "chat", "data": ["x"]}), "invalid namespace"),
    (msgpack.packb({"type": 2, "nsp": "/", "data": []}), "EVENT"),
    (msgpack.packb({"type": 2, "nsp": "/", "data": [1]}), "EVENT"),
    (msgpack.packb({"type": 2, "nsp": "/", "data": ["x"], "id": -1}), "ack id"),
    (msgpack.packb({"type": 3, "nsp": "/", "data": ["x"]}), "ACK"),
    (msgpack.packb({"type": 0, "nsp": "/", "data": [1]}), "CONNECT"),
])
def test_bad_packets_are_refused_with_a_reason(raw, why):
    with pytest.raises(ValueError, match=why):
        MsgpackDecoder().feed_binary(raw)


def test_text_messages_and_oversized_packets_are_refused():
    with pytest.raises(ValueError, match="text message"):
        MsgpackDecoder().feed_text(b'2["x"]')
    with pytest.raises(ValueError, match="too large"):
        MsgpackDecoder(max_size=10).feed_binary(msgpack.packb({"type": 2, "nsp": "/", "data": ["x" * 20]}))


def test_javascript_undefined_is_none():
    # notepack (socket.io-msgpack-parser) writes undefined as fixext 1, type 0, data 0
    raw = b"\x83\xa4type\x00\xa4data\xd4\x00\x00\xa3nsp\xa1/"
    pkt = MsgpackDecoder().feed_binary(raw)
    assert (pkt.type, pkt.data, pkt.namespace) == (P.CONNECT, None, "/")
