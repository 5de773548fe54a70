// A Node socket.io server with @socket.io/redis-adapter (classic or sharded), socket.io-clients
// on it and on a fastio server of the same fleet, and @socket.io/redis-emitter.
// Used by tests/interop/test_node_redis_fleet.py and test_node_redis_mixed_fleet.py.
//
// Config (argv[2], JSON): {"key": K, "redisUrl": U, "fastioUrl": F, "timeoutMs": N,
//   "sharded": subscriptionMode (optional: createShardedAdapter with channelPrefix K),
//   "name": this server's name (default "node": its server-side handler answers "<name>-ack:<arg>"),
//   "clients": [{"who": W, "url": "self" | URL, "rooms": [...]}, ...] (optional; default one
//   client "node" on this server with rooms r1, nodeonly and one "py" on F with r1, pyonly)}.
// Prints "ready" {nodeId, pyId, ids: {who: socket id}} once every client is connected; every
// event a client gets is printed as "recv" {who, ev, args} (binary as {b64}), a disconnection
// as "disconnected" {who, reason}.  Clients join the rooms of their auth.rooms and answer
// "ackme" with "<who>-ack".  Errors of the Redis connections (a Redis restart) are printed as
// "redisError" {conn, error}; node-redis reconnects and subscribes again by itself.
// Commands: see the handler below.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import { armTimeout, emit, fail, installCrashHandlers, parseConfig, readCommands, finish, isBinary, toBase64 }
  from "./common.mjs";

installCrashHandlers();
const cfg = parseConfig();
if (cfg) main(cfg).catch(fail);

function plain(value) {
  if (isBinary(value)) return { b64: toBase64(value) };
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

async function main(cfg) {
  armTimeout(cfg.timeoutMs || 30000);
  const pub = createClient({ url: cfg.redisUrl });
  const sub = pub.duplicate();
  const emitterClient = pub.duplicate();
  for (const [conn, client] of [["pub", pub], ["sub", sub], ["emitter", emitterClient]]) {
    // Without a listener an "error" event (the connection dropped) would end the process.
    client.on("error", (err) => emit("redisError", { conn, error: String(err && err.message) }));
  }
  await Promise.all([pub.connect(), sub.connect(), emitterClient.connect()]);
  const http = createServer();
  const adapter = cfg.sharded
    ? createShardedAdapter(pub, sub, { channelPrefix: cfg.key, subscriptionMode: cfg.sharded })
    : createAdapter(pub, sub, { key: cfg.key, requestsTimeout: 3000 });
  const io = new Server(http, { adapter });
  const emitter = new Emitter(emitterClient, { key: cfg.key });
  io.on("connection", (socket) => {
    const rooms = (socket.handshake.auth || {}).rooms;
    if (rooms) socket.join(rooms);
    socket.data.who = "node";
  });
  const name = cfg.name || "node";
  io.on("sse", (arg, ack) => {
    emit("sse", { arg });
    if (typeof ack === "function") ack(name + "-ack:" + arg);
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = http.address().port;

  function client(who, url, rooms) {
    const socket = connect(url, { transports: ["websocket"], auth: { rooms }, reconnection: false });
    socket.onAny((ev, ...args) => {
      const last = args[args.length - 1];
      if (typeof last === "function") {
        args.pop();
        last(who + "-ack");
      }
      emit("recv", { who, ev, args: plain(args) });
    });
    socket.on("disconnect", (reason) => emit("disconnected", { who, reason }));
    return new Promise((resolve, reject) => {
      socket.on("connect", () => resolve(socket));
      socket.on("connect_error", reject);
    });
  }
  const specs = cfg.clients || [{ who: "node", url: "self", rooms: ["r1", "nodeonly"] },
    { who: "py", url: cfg.fastioUrl, rooms: ["r1", "pyonly"] }];
  const sockets = await Promise.all(specs.map((c) => client(c.who, c.url === "self" ? `http://127.0.0.1:${port}` : c.url,
    c.rooms)));
  const ids = Object.fromEntries(specs.map((c, i) => [c.who, sockets[i].id]));
  emit("ready", { nodeId: ids.node, pyId: ids.py, ids, port });

  const target = (op, c) => {
    let t = op.ns ? io.of(op.ns) : io;
    if (c.to) t = t.to(c.to);
    if (c.except) t = t.except(c.except);
    return t;
  };
  const stop = readCommands(async (c) => {
    const args = (c.args || []).map((a) => (a && a.b64 ? Buffer.from(a.b64, "base64") : a));
    switch (c.cmd) {
      case "emit":
        target({}, c).emit(c.ev, ...args);
        emit("done", { id: c.id });
        break;
      case "fetch": {
        const sockets = await (c.to ? io.in(c.to) : io).fetchSockets();
        emit("fetched", { id: c.id, sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data,
          auth: s.handshake.auth })) });
        break;
      }
      case "allRooms": {
        const rooms = await io.of("/").adapter.allRooms();
        emit("allRooms", { id: c.id, rooms: [...rooms] });
        break;
      }
      case "sseAck": {
        const replies = await io.serverSideEmitWithAck(c.ev, ...args);
        emit("sseAck", { id: c.id, replies });
        break;
      }
      case "sse":
        io.serverSideEmit(c.ev, ...args);
        emit("done", { id: c.id });
        break;
      case "ack": {
        const replies = await target({}, c).timeout(c.timeoutMs || 3000).emitWithAck(c.ev, ...args);
        emit("acked", { id: c.id, replies: replies.sort() });
        break;
      }
      case "socketsJoin":
        await target({}, c).socketsJoin(c.room);
        emit("done", { id: c.id });
        break;
      case "socketsLeave":
        await target({}, c).socketsLeave(c.room);
        emit("done", { id: c.id });
        break;
      case "disconnectSockets":
        await target({}, c).disconnectSockets(Boolean(c.close));
        emit("done", { id: c.id });
        break;
      case "emitter": {
        let t = emitter;
        if (c.to) t = t.to(c.to);
        if (c.except) t = t.except(c.except);
        if (c.op === "emit") t.emit(c.ev, ...args);
        else if (c.op === "join") t.socketsJoin(c.room);
        else if (c.op === "leave") t.socketsLeave(c.room);
        else if (c.op === "disconnect") t.disconnectSockets(true);
        // The emitter publishes without waiting: a PING on its connection returns after Redis
        // has handled (and delivered) what it published before.
        await emitterClient.ping();
        emit("done", { id: c.id });
        break;
      }
      case "quit":
        stop();
        io.close();
        await Promise.all([pub.quit(), sub.quit(), emitterClient.quit()]).catch(() => {});
        finish();
        break;
      default:
        fail(`unknown command ${c.cmd}`);
    }
  });
}
