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
// Commands: those of fleet_common.mjs's fleetCommand, and the handler's below.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { Emitter } from "@socket.io/redis-emitter";
import { createClient } from "redis";
import { emit, fail, finish, readCommands, startScript } from "./common.mjs";
import { commandArgs, connectClient, fleetCommand, target } from "./fleet_common.mjs";

startScript(main, { defaultTimeoutMs: 30000 });

async function main(cfg) {
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

  const specs = cfg.clients || [{ who: "node", url: "self", rooms: ["r1", "nodeonly"] },
    { who: "py", url: cfg.fastioUrl, rooms: ["r1", "pyonly"] }];
  const sockets = await Promise.all(specs.map((c) => connectClient(c.who, c.url === "self" ? `http://127.0.0.1:${port}` : c.url,
    c.rooms)));
  const ids = Object.fromEntries(specs.map((c, i) => [c.who, sockets[i].id]));
  emit("ready", { nodeId: ids.node, pyId: ids.py, ids, port });

  const stop = readCommands(async (c) => {
    if (await fleetCommand(io, c)) return;
    const args = commandArgs(c);
    switch (c.cmd) {
      case "allRooms": {
        const rooms = await io.of("/").adapter.allRooms();
        emit("allRooms", { id: c.id, rooms: [...rooms] });
        break;
      }
      case "emitter": {
        const t = target(emitter, c);
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
