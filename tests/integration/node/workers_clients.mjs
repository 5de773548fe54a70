// Many socket.io-client connections at once against `fastio run --workers N`
// (tests/integration/test_workers.py). Protocol as in tests/interop/node/common.mjs: JSON
// config in argv[2], one JSON event per line on stdout.
//
// Config:
//   url         "http://127.0.0.1:PORT" (required)
//   transports  default ["polling", "websocket"]
//   upgrade     allow the polling -> websocket upgrade, default true
//   count       clients, each its own Engine.IO session (forceNew), default 10
//   timeoutMs   hard stop, default 20000
//
// Scenario: every client connects (and upgrades when asked to) and asks `whoami` (the
// worker's pid); client 0 asks the server to `tell` the room "all" (every client joins it on
// connect); every client must receive `told`; client 0 then `ask`s each other client a
// `question` through the server, whose answer crosses back; every client disconnects.
//
// Events:
//   {"event":"client","i":N,"pid":N,"sid":"..","transport":".."}
//   {"event":"told","i":N,"by":N}
//   {"event":"asked","i":N,"answer":[..]}
//   {"event":"summary","count":N,"pids":[..],"told":N,"answers":N,"transports":[..]}
//   {"event":"exit","code":0} / {"event":"fatal","error":..}

import { io } from "socket.io-client";
import { emit, startScript } from "../../interop/node/common.mjs";

startScript(main, { strings: ["url"], defaultTimeoutMs: 20000, exitWhenDone: true });

function connectOne(cfg, i) {
  return new Promise((resolve, reject) => {
    const socket = io(cfg.url, {
      transports: cfg.transports || ["polling", "websocket"],
      upgrade: cfg.upgrade !== false,
      forceNew: true,
      reconnection: false,
    });
    socket.on("question", (data, ack) => ack("answer", i, data));
    socket.on("connect_error", (err) => reject(new Error(`client ${i}: ${err.message}`)));
    socket.on("connect", () => {
      const engine = socket.io.engine;
      if (cfg.upgrade && engine.transport.name !== "websocket") {
        engine.once("upgrade", () => resolve(socket));
      } else {
        resolve(socket);
      }
    });
  });
}

async function main(cfg) {
  const count = cfg.count || 10;
  const sockets = await Promise.all(Array.from({ length: count }, (_, i) => connectOne(cfg, i)));
  const pids = [];
  const ids = [];
  for (const [i, socket] of sockets.entries()) {
    const me = await socket.timeout(5000).emitWithAck("whoami");
    pids.push(me.pid);
    ids.push(me.sid);
    emit("client", { i, pid: me.pid, sid: me.sid, transport: socket.io.engine.transport.name });
  }

  let told = 0;
  const allTold = Promise.all(
    sockets.map(
      (socket, i) =>
        new Promise((resolve) =>
          socket.once("told", (msg) => {
            told += 1;
            emit("told", { i, by: msg.by });
            resolve();
          }),
        ),
    ),
  );
  await sockets[0].timeout(5000).emitWithAck("tell", "all", "hello");
  await allTold;

  let answers = 0;
  for (let i = 1; i < count; i++) {
    const answer = await sockets[0].timeout(5000).emitWithAck("ask", ids[i]);
    emit("asked", { i, answer });
    if (answer[0] === "answer" && answer[1] === i) answers += 1;
  }

  const transports = sockets.map((s) => s.io.engine.transport.name);
  for (const socket of sockets) socket.disconnect();
  emit("summary", { count, pids, told, answers, transports });
}
