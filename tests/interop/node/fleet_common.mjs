// Shared by the fleet scripts (redis_fleet.mjs, streams_fleet.mjs): a Node socket.io server in
// a fleet with fastio servers, socket.io-clients that report what they get, and the commands
// both scripts answer.
//
// A watched client prints every event it gets as "recv" {who, ev, args} (binary as {b64}) and
// answers an event sent with an acknowledgement with "<who>-ack"; a disconnection is printed as
// "disconnected" {who, reason}.

import { io as connect } from "socket.io-client";
import { emit, isBinary, toBase64 } from "./common.mjs";

// Binary values (also inside arrays) as {b64}, for the JSON lines.
export function plain(value) {
  if (isBinary(value)) return { b64: toBase64(value) };
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

// A command's args, with {b64} turned back into Buffers.
export function commandArgs(c) {
  return (c.args || []).map((a) => (a && a.b64 ? Buffer.from(a.b64, "base64") : a));
}

// Reports what `socket` gets, as client `who`.
export function watch(who, socket) {
  socket.onAny((ev, ...args) => {
    const last = args[args.length - 1];
    if (typeof last === "function") {
      args.pop();
      last(who + "-ack");
    }
    emit("recv", { who, ev, args: plain(args) });
  });
  socket.on("disconnect", (reason) => emit("disconnected", { who, reason }));
}

// A watched websocket client `who` on `url` (no reconnection) with auth {rooms}; resolves once
// it is connected.
export function connectClient(who, url, rooms) {
  const socket = connect(url, { transports: ["websocket"], auth: { rooms }, reconnection: false });
  watch(who, socket);
  return new Promise((resolve, reject) => {
    socket.on("connect", () => resolve(socket));
    socket.on("connect_error", reject);
  });
}

// The broadcast operator a command selects: io, .to(c.to), .except(c.except).
export function target(io, c) {
  let t = io;
  if (c.to) t = t.to(c.to);
  if (c.except) t = t.except(c.except);
  return t;
}

// Runs the commands both fleet scripts know (emit, fetch, sseAck, sse, ack, socketsJoin,
// socketsLeave, disconnectSockets), answering each with an event carrying its id.  Returns
// false for any other command (the script handles it).
export async function fleetCommand(io, c) {
  const args = commandArgs(c);
  switch (c.cmd) {
    case "emit":
      target(io, c).emit(c.ev, ...args);
      emit("done", { id: c.id });
      return true;
    case "fetch": {
      const sockets = await (c.to ? io.in(c.to) : io).fetchSockets();
      emit("fetched", { id: c.id, sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data,
        auth: s.handshake.auth })) });
      return true;
    }
    case "sseAck": {
      const replies = await io.serverSideEmitWithAck(c.ev, ...args);
      emit("sseAck", { id: c.id, replies });
      return true;
    }
    case "sse":
      io.serverSideEmit(c.ev, ...args);
      emit("done", { id: c.id });
      return true;
    case "ack": {
      const replies = await target(io, c).timeout(c.timeoutMs || 3000).emitWithAck(c.ev, ...args);
      emit("acked", { id: c.id, replies: replies.sort() });
      return true;
    }
    case "socketsJoin":
      await target(io, c).socketsJoin(c.room);
      emit("done", { id: c.id });
      return true;
    case "socketsLeave":
      await target(io, c).socketsLeave(c.room);
      emit("done", { id: c.id });
      return true;
    case "disconnectSockets":
      await target(io, c).disconnectSockets(Boolean(c.close));
      emit("done", { id: c.id });
      return true;
    default:
      return false;
  }
}
