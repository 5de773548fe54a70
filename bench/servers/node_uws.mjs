// socket.io 4.8 on uWebSockets.js (`io.attachApp(app)`), the native uWS build shipped by the
// npm package @trufflesuite/uws-js-unofficial (pinned in package.json).
// Usage: node node_uws.mjs --port N [--host H]
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Resolve the packages from the repository's node_modules (two levels up from this file).
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "package.json"));
const { Server } = require("socket.io");
const uWS = require("@trufflesuite/uws-js-unofficial");

function arg(name, dflt) {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

// The package falls back to a pure-JS implementation when UWS_USE_FALLBACK is set; refuse that,
// the point of this server is the native uWS.
if (!/\[native code\]/.test(String(uWS.App))) {
  console.error("node_uws: @trufflesuite/uws-js-unofficial did not load its native binary");
  process.exit(2);
}

const host = arg("host", "127.0.0.1");
const port = parseInt(arg("port", "0"), 10);

const app = uWS.App();
const io = new Server({ cors: { origin: "*" } });
io.attachApp(app);

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

let listenSocket = null;
app.listen(host, port, (token) => {
  if (!token) {
    console.error(`node_uws: cannot listen on ${host}:${port}`);
    process.exit(1);
  }
  listenSocket = token;
  console.log(`READY node_uws port=${uWS.us_socket_local_port(token)} pid=${process.pid}`);
});

const stop = () => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  io.close();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
