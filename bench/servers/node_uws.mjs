// socket.io 4.8 on uWebSockets.js (`io.attachApp(app)`), the native uWS build shipped by the
// npm package @trufflesuite/uws-js-unofficial (pinned in package.json).
// Usage: node node_uws.mjs --port N [--host H]
import { addBenchHandlers, arg, require } from "./_common.mjs";

const { Server } = require("socket.io");
const uWS = require("@trufflesuite/uws-js-unofficial");

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

addBenchHandlers(io);

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
