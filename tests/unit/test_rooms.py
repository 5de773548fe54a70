"""RoomTable bookkeeping, including python-socketio's ``manager.rooms[ns][room]`` access."""
from fastio._core.rooms import RoomTable


def test_membership_and_python_socketio_style_access():
    from fastio._core.conn import Conn, Flusher

    class Handler:
        message_sink = staticmethod(lambda *a: None)

    import asyncio
    loop = asyncio.new_event_loop()
    try:
        flusher = Flusher(loop)
        a = Conn("ea", Handler(), flusher)
        b = Conn("eb", Handler(), flusher)
        t = RoomTable()
        for sid, c in (("a", a), ("b", b)):
            t.enter("/", None, sid, c)
            t.enter("/", sid, sid, c)
        t.enter("/", "lobby", "a", a)
        t.enter("/", "lobby", "b", b)
        assert len(t["/"]["lobby"]) == 2
        assert "/" in t and t.get("/nope") is None
        assert sorted(t.rooms_of("/", "a")) == ["a", "lobby"]
        assert t.leave("/", "lobby", "a") is True
        assert t.leave("/", "lobby", "a") is False
        assert list(t["/"]["lobby"]) == ["b"]
        assert sorted(t.close_room("/", "lobby")) == ["b"]
        assert "lobby" not in t["/"]
        assert sorted(t.leave_all("/", "b"), key=str) == sorted([None, "b"], key=str)
        assert t.rooms_of("/", "b") == []
        assert set(t.members("/")) == {"a"}
    finally:
        loop.close()
