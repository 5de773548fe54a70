// socket.io 4.8 on Node's http server with its default WebSocket engine ("ws").
// Usage: node node_socketio.mjs --port N [--host H]
import { createServer } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Resolve socket.io from the repository's node_modules (two levels up from this file).
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "package.json"));
const { Server } = require("socket.io");

function arg(name, dflt) {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const host = arg("host", "127.0.0.1");
const port = parseInt(arg("port", "0"), 10);

const httpServer = createServer();
const io = new Server(httpServer, { cors: { origin: "*" } });

io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = args.length && typeof args[args.length - 1] === "function" ? args.pop() : null;
    socket.emit("echo", ...args);
    if (ack) ack(...args);
  });
  socket.on("broadcast", (data) => {
    io.emit("broadcast", data);
  });
});

httpServer.listen({ host, port, backlog: 4096 }, () => {
  console.log(`READY node_socketio port=${httpServer.address().port} pid=${process.pid}`);
});

const stop = () => {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
