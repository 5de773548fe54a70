// socket.io 4.8 on Node's http server (default "ws" engine) as one node of a fleet on Redis with
// @socket.io/redis-adapter (classic mode), for the cluster benchmark.
// Usage: node node_cluster.mjs --port N [--host H]; FASTIO_BENCH_REDIS is the Redis URL and
// FASTIO_BENCH_KEY the adapter's key.  Same handlers as node_socketio.mjs (_common.mjs).
import { createServer } from "node:http";
import { addBenchHandlers, arg, require } from "./_common.mjs";

const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const host = arg("host", "127.0.0.1");
const port = parseInt(arg("port", "0"), 10);
const url = process.env.FASTIO_BENCH_REDIS || "redis://127.0.0.1:6379/0";
const key = process.env.FASTIO_BENCH_KEY || "socket.io";

const pub = createClient({ url });
const sub = pub.duplicate();
pub.on("error", (err) => console.error("redis pub:", err.message));
sub.on("error", (err) => console.error("redis sub:", err.message));
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { cors: { origin: "*" }, adapter: createAdapter(pub, sub, { key }) });

addBenchHandlers(io);

httpServer.listen({ host, port, backlog: 4096 }, () => {
  console.log(`READY node_cluster port=${httpServer.address().port} pid=${process.pid}`);
});

const stop = () => {
  io.close();
  Promise.all([pub.quit(), sub.quit()]).catch(() => {});
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
