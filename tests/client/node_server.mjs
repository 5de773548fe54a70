// A Node socket.io 4.8 server for fastio's client tests (tests/client/test_client_node.py).
//
// argv[2]: JSON config
//   port           port to listen on (0: any free port)
//   recovery       enable connectionStateRecovery
//   pingInterval, pingTimeout (ms)
//   transports     server-side allowed transports
//   tls            {"key": path, "cert": path}: serve HTTPS / WSS
//   parser         "msgpack" for socket.io-msgpack-parser
//   perMessageDeflate  socket.io's option (true or ws's object), off when absent
//   lifetimeMs     the process exits by itself after this long (default 120 s)
// stdout: one JSON object per line with an "event" key:
//   {"event":"listening","port":N} once ready, then connect / upgrade / disconnect / note.
// The process exits when its stdin closes, on SIGTERM, or after lifetimeMs.
//
// Namespaces "/", "/chat" and "/admin" (auth.token must be "secret") answer these events:
//   echo(...args, ack)       ack(...args)
//   echo_event(...args)      emit "echoed" with the same arguments
//   note(...args)            printed as {"event":"note",...}, no answer
//   whoami(ack)              ack({nsp, sid, auth})
//   server_transport(ack)    ack(current transport name)
//   ask(data)                emit "question"(data) with an ack, then emit "answer"(reply)
//   burst(n)                 emit "seq"(i) for i in 0..n-1
//   silent(...)              never acknowledged
//   kick()                   socket.disconnect()  (Socket.IO DISCONNECT of the namespace)
//   drop()                   socket.conn.close()  (closes the Engine.IO connection)
//   broadcast(data)          nsp.emit("news", data)

import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createSecureServer } from "node:https";
import { Server } from "socket.io";
import msgpackParser from "socket.io-msgpack-parser";

const cfg = JSON.parse(process.argv[2] || "{}");

function out(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

// Buffers become {"$bin": base64} so that Python can compare binary arguments.
function jsonable(value) {
  if (Buffer.isBuffer(value)) return { $bin: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(jsonable);
  if (value && typeof value === "object") {
    const result = {};
    for (const [k, v] of Object.entries(value)) result[k] = jsonable(v);
    return result;
  }
  return value;
}

function splitAck(args) {
  const ack = args.length && typeof args[args.length - 1] === "function" ? args.pop() : null;
  return [args, ack];
}

const httpServer = cfg.tls
  ? createSecureServer({ key: readFileSync(cfg.tls.key), cert: readFileSync(cfg.tls.cert) })
  : createServer();
const options = {
  pingInterval: cfg.pingInterval ?? 25000,
  pingTimeout: cfg.pingTimeout ?? 20000,
  transports: cfg.transports ?? ["polling", "websocket"],
};
if (cfg.parser === "msgpack") options.parser = msgpackParser;
if (cfg.perMessageDeflate) options.perMessageDeflate = cfg.perMessageDeflate;
if (cfg.recovery) {
  options.connectionStateRecovery = { maxDisconnectionDuration: 60000, skipMiddlewares: true };
}
const io = new Server(httpServer, options);

function setup(nsp) {
  nsp.on("connection", (socket) => {
    const name = nsp.name;
    out("connect", {
      nsp: name,
      sid: socket.id,
      auth: jsonable(socket.handshake.auth),
      transport: socket.conn.transport.name,
      recovered: Boolean(socket.recovered),
    });
    socket.conn.on("upgrade", (transport) =>
      out("upgrade", { nsp: name, sid: socket.id, transport: transport.name }));
    socket.on("disconnect", (reason) => out("disconnect", { nsp: name, sid: socket.id, reason }));
    if (name === "/") {
      // Engine.IO heartbeats the client answered (one report per connection, not per namespace)
      socket.conn.on("packet", (packet) => {
        if (packet.type === "pong") out("pong", { nsp: name, sid: socket.id });
      });
    }

    socket.on("echo", (...raw) => {
      const [args, ack] = splitAck(raw);
      if (ack) ack(...args);
    });
    socket.on("echo_event", (...raw) => {
      const [args] = splitAck(raw);
      socket.emit("echoed", ...args);
    });
    socket.on("note", (...raw) => {
      const [args] = splitAck(raw);
      out("note", { nsp: name, sid: socket.id, args: jsonable(args) });
    });
    socket.on("whoami", (ack) => ack({ nsp: name, sid: socket.id, auth: socket.handshake.auth }));
    socket.on("server_transport", (ack) => ack(socket.conn.transport.name));
    socket.on("ask", (data) => {
      socket.timeout(5000).emit("question", data, (err, answer) => {
        socket.emit("answer", err ? { error: String(err) } : answer);
      });
    });
    socket.on("burst", (n) => {
      for (let i = 0; i < n; i++) socket.emit("seq", i);
    });
    socket.on("silent", () => {});
    socket.on("kick", () => socket.disconnect());
    socket.on("drop", () => socket.conn.close());
    socket.on("broadcast", (data) => nsp.emit("news", data));
  });
}

setup(io.of("/"));
setup(io.of("/chat"));
const admin = io.of("/admin");
admin.use((socket, next) => {
  if (socket.handshake.auth && socket.handshake.auth.token === "secret") {
    next();
  } else {
    const err = new Error("unauthorized");
    err.data = { reason: "bad token" };
    next(err);
  }
});
setup(admin);

function stop() {
  io.close();
  process.exit(0);
}

process.stdin.on("data", () => {});
process.stdin.on("end", stop);
process.on("SIGTERM", stop);
setTimeout(stop, cfg.lifetimeMs ?? 120000).unref();

httpServer.listen(cfg.port ?? 0, "127.0.0.1", () => {
  out("listening", { port: httpServer.address().port });
});
