// A Node socket.io server with @socket.io/redis-streams-adapter, a socket.io-client on it and a
// socket.io-client on the fastio server of the same fleet (one Redis stream); and, on command,
// a socket.io-client with reconnection that tests connection state recovery across servers.
// Used by tests/interop/test_redis_streams_fleet.py.
//
// Config (argv[2], JSON): {"streamName": S, "sessionKeyPrefix": P, "redisUrl": U, "fastioUrl": F,
//   "timeoutMs": N, "recovery": bool (connectionStateRecovery on the Node server)}.
// Prints "ready" {nodeId, pyId, port} once both clients are connected; every event a client gets
// is printed as "recv" {who: "node"|"py"|"rec", ev, args} (binary as {b64}).  Clients join the
// rooms of their auth.rooms and answer "ackme" with "<who>-ack".  Commands: see the handler below.
//
// The adapter is loaded with require(), so NODE_PATH may point at a directory holding it when
// the repository's node_modules does not (yet).

import { createRequire } from "node:module";
import { createServer } from "node:http";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { armTimeout, emit, fail, installCrashHandlers, parseConfig, readCommands, finish, isBinary, toBase64 }
  from "./common.mjs";

const require = createRequire(import.meta.url);
const adapterPath = require.resolve("@socket.io/redis-streams-adapter");
const { createAdapter } = require(adapterPath);
// The redis client of the adapter's own installation (it passes that package's commandOptions).
const { createClient } = createRequire(adapterPath)("redis");

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
  const redis = createClient({ url: cfg.redisUrl });
  await redis.connect();
  const http = createServer();
  const adapter = createAdapter(redis, { streamName: cfg.streamName, sessionKeyPrefix: cfg.sessionKeyPrefix });
  const options = { adapter };
  if (cfg.recovery) options.connectionStateRecovery = { maxDisconnectionDuration: 60000 };
  const io = new Server(http, options);
  io.on("connection", (socket) => {
    emit("connection", { id: socket.id, recovered: socket.recovered });
    if (!socket.recovered) {
      const rooms = (socket.handshake.auth || {}).rooms;
      if (rooms) socket.join(rooms);
      socket.data.who = "node";
    }
    socket.on("disconnect", (reason) => emit("nodeDisconnect", { id: socket.id, reason }));
  });
  io.on("sse", (arg, ack) => {
    emit("sse", { arg });
    if (typeof ack === "function") ack("node-ack:" + arg);
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = http.address().port;

  function watch(who, socket) {
    socket.onAny((ev, ...args) => {
      const last = args[args.length - 1];
      if (typeof last === "function") {
        args.pop();
        last(who + "-ack");
      }
      emit("recv", { who, ev, args: plain(args) });
    });
  }
  function client(who, url, rooms) {
    const socket = connect(url, { transports: ["websocket"], auth: { rooms }, reconnection: false });
    watch(who, socket);
    return new Promise((resolve, reject) => {
      socket.on("connect", () => resolve(socket));
      socket.on("connect_error", reject);
    });
  }
  const nodeClient = await client("node", `http://127.0.0.1:${port}`, ["r1", "nodeonly"]);
  const pyClient = cfg.fastioUrl ? await client("py", cfg.fastioUrl, ["r1", "pyonly"]) : null;
  emit("ready", { nodeId: nodeClient.id, pyId: pyClient && pyClient.id, port });

  let recClient = null;
  const target = (c) => {
    let t = io;
    if (c.to) t = t.to(c.to);
    if (c.except) t = t.except(c.except);
    return t;
  };
  const stop = readCommands(async (c) => {
    const args = (c.args || []).map((a) => (a && a.b64 ? Buffer.from(a.b64, "base64") : a));
    switch (c.cmd) {
      case "emit":
        target(c).emit(c.ev, ...args);
        emit("done", { id: c.id });
        break;
      case "fetch": {
        const sockets = await (c.to ? io.in(c.to) : io).fetchSockets();
        emit("fetched", { id: c.id, sockets: sockets.map((s) => ({ id: s.id, rooms: [...s.rooms], data: s.data,
          auth: s.handshake.auth })) });
        break;
      }
      case "serverCount":
        emit("serverCount", { id: c.id, count: await io.of("/").adapter.serverCount() });
        break;
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
        const replies = await target(c).timeout(3000).emitWithAck(c.ev, ...args);
        emit("acked", { id: c.id, replies: replies.sort() });
        break;
      }
      case "socketsJoin":
        await target(c).socketsJoin(c.room);
        emit("done", { id: c.id });
        break;
      case "recClient": {
        // Reconnects on its own Manager (the only way socket.io-client recovers a session).
        recClient = connect(c.url, { transports: ["websocket"], auth: { rooms: c.rooms },
          reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0 });
        watch("rec", recClient);
        recClient.on("connect", () => emit("recConnect", { sid: recClient.id, recovered: recClient.recovered }));
        recClient.on("disconnect", (reason) => emit("recDisconnect", { reason }));
        emit("done", { id: c.id });
        break;
      }
      case "quit":
        stop();
        if (recClient) recClient.close();
        io.close();
        await redis.quit().catch(() => {});
        finish();
        break;
      default:
        fail(`unknown command ${c.cmd}`);
    }
  });
}
