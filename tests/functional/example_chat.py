"""A small chat server written against python-socketio's documented API.

Only the import differs from a python-socketio application: fastio is a
drop-in, so ``import fastio as socketio`` is all it takes.

Protocol:

* connect with ``auth={"username": "..."}`` (refused without one, or when
  the name is taken);
* ``join(room)`` -> ack ``{"room": room, "users": [...]}``; the others in
  the room get ``user_joined``;
* ``message({"room": .., "text": ..})`` -> ack ``{"id": n}``; the others
  in the room get ``message`` (the sender is skipped);
* ``private({"to": username, "text": ..})`` -> ack True/False;
* ``leave(room)``; ``rooms()`` -> ack with the caller's rooms;
* ``upload({"room": .., "name": .., "data": <bytes>})`` -> the others in the
  room get ``file`` with the bytes, the sender an ack with the size;
* on disconnect, the rooms of the user get ``user_left``.

Run it alone with ``python example_chat.py`` (port 5000).
"""

import itertools

import fastio as socketio

sio = socketio.AsyncServer(cors_allowed_origins="*")

users = {}  # sid -> username
message_ids = itertools.count(1)


def room_users(room):
    return sorted(users[sid] for sid, _ in sio.manager.get_participants("/", room) if sid in users)


@sio.event
async def connect(sid, environ, auth):
    username = (auth or {}).get("username")
    if not username:
        raise socketio.exceptions.ConnectionRefusedError("authentication failed", {"reason": "no username"})
    if username in users.values():
        raise socketio.exceptions.ConnectionRefusedError("authentication failed", {"reason": "username taken"})
    users[sid] = username
    await sio.save_session(sid, {"username": username, "joined": []})
    await sio.emit("welcome", {"username": username, "online": len(users)}, to=sid)


@sio.event
async def join(sid, room):
    async with sio.session(sid) as session:
        if room not in session["joined"]:
            session["joined"].append(room)
        username = session["username"]
    await sio.enter_room(sid, room)
    await sio.emit("user_joined", {"room": room, "username": username}, room=room, skip_sid=sid)
    return {"room": room, "users": room_users(room)}


@sio.event
async def leave(sid, room):
    async with sio.session(sid) as session:
        if room in session["joined"]:
            session["joined"].remove(room)
        username = session["username"]
    await sio.leave_room(sid, room)
    await sio.emit("user_left", {"room": room, "username": username}, room=room)
    return True


@sio.event
async def rooms(sid):
    return sorted(r for r in sio.rooms(sid) if r != sid)


@sio.event
async def message(sid, data):
    session = await sio.get_session(sid)
    room = data["room"]
    if room not in session["joined"]:
        return {"error": "not in room"}
    msg_id = next(message_ids)
    await sio.emit(
        "message",
        {"id": msg_id, "room": room, "from": session["username"], "text": data["text"]},
        room=room,
        skip_sid=sid,
    )
    return {"id": msg_id}


@sio.event
async def private(sid, data):
    sender = users[sid]
    for other, name in users.items():
        if name == data["to"]:
            await sio.emit("private", {"from": sender, "text": data["text"]}, to=other)
            return True
    return False


@sio.event
async def upload(sid, data):
    session = await sio.get_session(sid)
    await sio.emit(
        "file",
        {"from": session["username"], "name": data["name"], "data": data["data"]},
        room=data["room"],
        skip_sid=sid,
    )
    return len(data["data"])


@sio.event
async def disconnect(sid, reason):
    username = users.pop(sid, None)
    if username is None:
        return
    session = await sio.get_session(sid)
    for room in session["joined"]:
        await sio.emit("user_left", {"room": room, "username": username, "reason": reason}, room=room)


if __name__ == "__main__":
    socketio.run(sio, "127.0.0.1", 5000)
