// A Node socket.io server with @socket.io/redis-streams-adapter, a socket.io-client on it and a
// socket.io-client on the fastio server of the same fleet (one Redis stream); and, on command,
// a socket.io-client with reconnection that tests connection state recovery across servers.
// Used by tests/interop/test_redis_streams_fleet.py.
//
// Config (argv[2], JSON): {"streamName": S, "sessionKeyPrefix": P, "redisUrl": U, "fastioUrl": F,
//   "timeoutMs": N, "recovery": bool (connectionStateRecovery on the Node server)}.
// Prints "ready" {nodeId, pyId, port} once both clients are connected; every event a client gets
// is printed as "recv" {who: "node"|"py"|"rec", ev, args} (binary as {b64}).  Clients join the
// rooms of their auth.rooms and answer "ackme" with "<who>-ack" (fleet_common.mjs).  Commands:
// those of fleet_common.mjs's fleetCommand, and the handler's below.
//
// The adapter is loaded with require(), so NODE_PATH may point at a directory holding it when
// the repository's node_modules does not (yet).

import { createRequire } from "node:module";
import { createServer } from "node:http";
import { Server } from "socket.io";
import { io as connect } from "socket.io-client";
import { emit, fail, finish, readCommands, startScript } from "./common.mjs";
import { connectClient, fleetCommand, watch } from "./fleet_common.mjs";

const require = createRequire(import.meta.url);
const adapterPath = require.resolve("@socket.io/redis-streams-adapter");
const { createAdapter } = require(adapterPath);
// The redis client of the adapter's own installation (it passes that package's commandOptions).
const { createClient } = createRequire(adapterPath)("redis");

startScript(main, { defaultTimeoutMs: 30000 });

async function main(cfg) {
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

  const nodeClient = await connectClient("node", `http://127.0.0.1:${port}`, ["r1", "nodeonly"]);
  const pyClient = cfg.fastioUrl ? await connectClient("py", cfg.fastioUrl, ["r1", "pyonly"]) : null;
  emit("ready", { nodeId: nodeClient.id, pyId: pyClient && pyClient.id, port });

  let recClient = null;
  const stop = readCommands(async (c) => {
    if (await fleetCommand(io, c)) return;
    switch (c.cmd) {
      case "serverCount":
        emit("serverCount", { id: c.id, count: await io.of("/").adapter.serverCount() });
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
