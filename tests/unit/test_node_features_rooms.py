"""The operator algebra of Node's broadcast API: who ``to``/``in_``/``except_`` (with
python-socketio's ``skip_sid`` and namespaces) select in the compiled room table, the volatile
rule, and the immutable operator objects."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fastio._core.conn import Conn, Flusher
from fastio._core.packet import EVENT, encode
from fastio._core.rooms import RoomTable


class Handler:
    message_sink = staticmethod(lambda *a: None)


def table(loop: Any) -> tuple[RoomTable, dict[str, Conn]]:
    """Namespace '/': a, b, c, d; rooms r = {a, b}, s = {b, c}, t = {d}.  Namespace '/x': a2 in r."""
    flusher = Flusher(loop)
    conns = {sid: Conn("e" + sid, Handler(), flusher) for sid in ("a", "b", "c", "d", "a2")}
    t = RoomTable()
    for sid in ("a", "b", "c", "d"):
        t.enter("/", None, sid, conns[sid])
    t.enter("/x", None, "a2", conns["a2"])
    for room, sids in (("r", "ab"), ("s", "bc"), ("t", "d")):
        for sid in sids:
            t.enter("/", room, sid, conns[sid])
    t.enter("/x", "r", "a2", conns["a2"])
    return t, conns


@pytest.mark.parametrize("to, exclude, skip, expected", [
    (None, None, None, "abcd"),                 # everyone
    ("r", None, None, "ab"),                    # one room
    (["r", "s"], None, None, "abc"),            # rooms add up, each socket once
    (["r", "b"], None, None, "ab"),             # a sid is a room of one
    ("c", None, None, "c"),
    (None, ["r"], None, "cd"),                  # except_ alone: everyone but the room
    (["r", "s"], ["s"], None, "a"),             # to minus except
    (["r", "s"], ["a"], None, "bc"),            # except a sid
    (["r", "s"], ["t", "nope"], None, "abc"),   # except rooms nobody in the selection is in
    ("s", None, "b", "c"),                      # python-socketio's skip_sid
    (["r", "s"], ["r"], ["c"], ""),             # all three at once
    ("nope", None, None, ""),                   # an unknown room
    (None, None, ["a", "b"], "cd"),
])
def test_select_combines_to_except_and_skip(loop, to, exclude, skip, expected):
    t, _ = table(loop)
    assert sorted(t.select("/", to, exclude, skip)) == list(expected)


def test_namespaces_are_separate(loop):
    t, _ = table(loop)
    assert t.select("/x", "r", None) == ["a2"]
    assert t.select("/x", None, ["r"]) == []
    assert t.select("/nope", None, None) == []
    assert sorted(t.select("/", "r", None)) == ["a", "b"]


def test_broadcast_reaches_the_selection_once_with_one_encoded_packet(loop):
    t, conns = table(loop)
    enc = encode(EVENT, "/", ["ev", 1])
    reached: list[str] = []
    assert t.broadcast("/", ["r", "s"], ["c"], None, enc, False, reached) == 2
    assert sorted(reached) == ["a", "b"]
    queued = {sid: c.pending for sid, c in conns.items()}
    assert queued["a"] == queued["b"] > 0
    assert queued["c"] == queued["d"] == queued["a2"] == 0


def test_volatile_skips_a_polling_client_without_a_waiting_poll(loop):
    t, conns = table(loop)
    conns["a"].poll_waiter = object()      # a GET is waiting: the transport is writable
    enc = encode(EVENT, "/", ["tick"])
    reached: list[str] = []
    assert t.broadcast("/", "r", None, None, enc, True, reached) == 1
    assert reached == ["a"]
    assert conns["b"].pending == 0          # dropped, not queued
    assert conns["a"].pending > 0
    # the same packet, not volatile, is queued for both
    assert t.broadcast("/", "r", None, None, enc, False, None) == 2
    assert conns["b"].pending > 0


def test_volatile_skips_a_client_whose_queue_is_past_the_limit(loop):
    t, conns = table(loop)
    for c in conns.values():
        c.poll_waiter = object()
    enc = encode(EVENT, "/", ["tick", "x" * 100])
    assert t.broadcast("/", "r", None, None, enc, True, None) == 2
    t.volatile_limit = conns["a"].pending   # a and b now hold this much: at the limit
    assert t.broadcast("/", ["r", "s"], None, None, enc, True, None) == 1   # only c
    assert conns["c"].pending > 0


def test_operators_are_immutable_and_combine():
    import fastio

    sio = fastio.AsyncServer()
    base = sio.to("a")
    op = base.to(["b", "c"]).in_("d").except_("e").except_(["f"]).volatile.local.compress(False).timeout(3)
    assert base.rooms == frozenset({"a"}) and base.except_rooms == frozenset()
    assert not base.flags.volatile and base.flags.timeout is None
    assert op.rooms == frozenset("abcd")
    assert op.except_rooms == frozenset("ef")
    assert (op.flags.volatile, op.flags.local, op.flags.compress, op.flags.timeout) == (True, True, False, 3)
    assert op.namespace == "/"
    chat = sio.of("/chat").except_("x")
    assert chat.namespace == "/chat" and chat.rooms == frozenset() and chat.except_rooms == {"x"}
    assert sio.except_("x").to("y").rooms == {"y"}
    with pytest.raises(ValueError):
        asyncio.run(sio.to("a").emit("disconnect"))
