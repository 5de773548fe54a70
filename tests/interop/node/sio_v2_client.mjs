// socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4) against a server, one scenario:
// connect to "/", an ack round trip with non-BMP text, a binary round trip both ways, a second
// namespace with a query, a refused namespace, then a clean disconnect.  Prints one JSON line
// per step ({"event": ...}) and {"event": "exit"} at the end.
//
// argv[2]: {"url", "transports", "upgrade", "forceBase64", "timeoutMs"}
import { createRequire } from "node:module";
import { emit, fail, finish, parseConfig } from "./common.mjs";

const require = createRequire(import.meta.url);
const io = require("socket.io-client-v2");

const cfg = parseConfig();
if (cfg) {
  setTimeout(() => fail("timed out"), cfg.timeoutMs || 20000).unref();
  run(cfg).catch(fail);
}

function once(emitter, name) {
  return new Promise((resolve) => emitter.once(name, (...args) => resolve(args)));
}

function call(socket, event, ...args) {
  return new Promise((resolve) => socket.emit(event, ...args, (...reply) => resolve(reply)));
}

function wire(value) {
  // Buffers as {"$bin": base64} so they survive the JSON line.
  if (Buffer.isBuffer(value)) return { $bin: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(wire);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, wire(v)]));
  }
  return value;
}

async function run(cfg) {
  const opts = {
    transports: cfg.transports,
    upgrade: cfg.upgrade,
    forceBase64: !!cfg.forceBase64,
    reconnection: false,
    forceNew: true,
  };
  const socket = io(cfg.url, opts);
  socket.on("error", (err) => emit("error", { socket: "/", data: wire(err) }));
  socket.on("connect_error", (err) => fail("connect_error: " + err));
  const greeted = once(socket, "greet");
  await once(socket, "connect");
  const engine = socket.io.engine;
  emit("connect", { id: socket.id, engineId: engine.id, transport: engine.transport.name });
  if (cfg.upgrade && engine.transport.name !== "websocket") {
    await once(engine, "upgrade");
  }
  emit("transport", { name: engine.transport.name });
  emit("greet", { args: wire(await greeted) });

  const text = "h\u00e9llo \u{1F600} \u2603";
  emit("echo", { reply: wire(await call(socket, "echo", text, { n: 1 })), sent: text });

  const binback = once(socket, "binback");
  const blob = Buffer.from([0, 1, 2, 250, 255]);
  emit("bin", { reply: wire(await call(socket, "bin", blob, { inner: [blob] })) });
  emit("binback", { args: wire(await binback) });

  // The server pings nobody: this client must keep its session alive by pinging.
  if (cfg.waitPongs) {
    for (let i = 0; i < cfg.waitPongs; i++) {
      const [latency] = await once(socket, "pong");
      emit("pong", { latency });
    }
  }

  const chat = socket.io.socket("/chat", { query: "token=abc" });
  await once(chat, "connect");
  emit("chat_connect", { id: chat.id });
  emit("chat_whoami", { reply: wire(await call(chat, "whoami")) });

  const priv = socket.io.socket("/private");
  const [err] = await once(priv, "error");
  emit("private_error", { data: wire(err) });

  const closed = once(socket, "disconnect");
  socket.emit("bye");
  const [reason] = await closed;
  emit("disconnect", { reason });
  finish();
}
