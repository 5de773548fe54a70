// socket.io 4.8 on Node's http server with its default WebSocket engine ("ws").
// Usage: node node_socketio.mjs --port N [--host H]
import { createServer } from "node:http";
import { addBenchHandlers, arg, require } from "./_common.mjs";

const { Server } = require("socket.io");

const host = arg("host", "127.0.0.1");
const port = parseInt(arg("port", "0"), 10);

const httpServer = createServer();
const io = new Server(httpServer, { cors: { origin: "*" } });

addBenchHandlers(io);

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
