// A socket.io-client (one Manager, i.e. one Engine.IO connection, carrying
// one or more namespace sockets) driven from the Python tests.
//
// Config (argv[2], JSON):
//   url            "http://127.0.0.1:PORT" (required)
//   path           default "/socket.io"
//   transports     default ["polling", "websocket"]
//   upgrade        allow the polling -> websocket upgrade, default true
//   query          extra query parameters (object), optional
//   sockets        list of {"name":.., "nsp":"/chat", "auth":{..}, "autoConnect":true}
//                  default [{"name":"/","nsp":"/"}]; "name" defaults to nsp.
//                  All of them share the Manager, so they are multiplexed
//                  on one Engine.IO connection.
//   acks           {"<event>": [args...]}: what to answer when the server
//                  asks for an acknowledgement of <event>; an event not listed
//                  is acknowledged with its own arguments (an echo)
//   emitOnConnect  list of emit or burst commands (see below; "cmd" may be
//                  left out for an emit) run once, when the socket they name
//                  first connects
//   timeoutMs      hard stop, default 10000
//   parser         "msgpack" for socket.io-msgpack-parser, default the JSON parser
//
// Binary values (Buffer, ArrayBuffer, typed arrays) travel in the JSON lines
// as {"$bin": "<base64>"}, at any depth, in both directions.
//
// Events printed (one JSON object per line):
//   {"event":"open","transport":..,"engineId":..}       the Manager connected
//   {"event":"upgrade","transport":"websocket"}
//   {"event":"ping","count":N,"transport":..}  a server heartbeat (answered)
//   {"event":"connect","socket":name,"id":..,"transport":..}
//   {"event":"connect_error","socket":name,"message":..,"data":..}
//   {"event":"disconnect","socket":name,"reason":..,"description":..}
//   {"event":"ev","socket":name,"type":<event name>,"args":[..],"acked":bool}
//                                          an event from the server ("acked":
//                                          it wanted an ack, which was sent)
//   {"event":"emitted","socket":name,"id":..}   an emit without ack was queued
//   {"event":"ack","socket":name,"id":..,"args":[..]}
//                                          the server acknowledged the emit id
//   {"event":"ack_error","socket":name,"id":..,"error":"..."}
//   {"event":"state","sockets":{name:{connected,id}},"transport":..}
//   {"event":"close","reason":..}          the Manager's connection closed
//   {"event":"manager_error","error":{..}}  the Manager failed to connect
//   {"event":"burst_sent","socket":name,"type":ev,"count":N}
//   {"event":"exit","code":N} / {"event":"fatal","error":".."}
//
// Commands (stdin, one JSON object per line):
//   {"cmd":"emit","socket":name,"name":ev,"args":[..],"id":..,"ack":bool,"timeoutMs":N,
//    "callback":bool}                      with "ack", emitWithAck() (the reply's
//                                          "args" is [first argument]), or with
//                                          "callback" too, emit(..., cb) (every
//                                          argument)
//   {"cmd":"burst","socket":name,"name":ev,"count":N}
//                                          emit(ev, i) for i = 0..N-1 synchronously,
//                                          then print {"event":"burst_sent",..}
//   {"cmd":"socket","socket":name,"nsp":..,"auth":{..}}   open another socket
//   {"cmd":"connect","socket":name}        socket.connect()
//   {"cmd":"disconnect","socket":name}     socket.disconnect()
//   {"cmd":"state"}
//   {"cmd":"exit"}                         exit at once

import { Manager } from "socket.io-client";
import msgpackParser from "socket.io-msgpack-parser";
import { describe, emit, exitOrUnknown, fail, finish, isBinary, readCommands, startScript, toBase64 } from "./common.mjs";

startScript(main, { strings: ["url"] });

// Binary values -> {"$bin": base64}, recursively.
function encode(value) {
  if (value === undefined) return null;
  if (value === null || typeof value !== "object") return value;
  if (isBinary(value)) return { $bin: toBase64(value) };
  if (Array.isArray(value)) return value.map(encode);
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = encode(v);
  return out;
}

// {"$bin": base64} -> Buffer, recursively.
function decode(value) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(decode);
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === "$bin" && typeof value.$bin === "string") {
    return Buffer.from(value.$bin, "base64");
  }
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = decode(v);
  return out;
}

function main(cfg) {

  const opts = {
    path: cfg.path || "/socket.io",
    transports: cfg.transports || ["polling", "websocket"],
    upgrade: cfg.upgrade !== false,
    reconnection: false,
    autoConnect: false,
  };
  if (cfg.query) opts.query = cfg.query;
  if (cfg.parser === "msgpack") opts.parser = msgpackParser;

  const manager = new Manager(cfg.url, opts);
  const sockets = new Map();
  const acks = cfg.acks || {};
  const onConnect = cfg.emitOnConnect || [];

  const transportName = () =>
    manager.engine && manager.engine.transport ? manager.engine.transport.name : null;

  manager.on("open", () => {
    const engine = manager.engine;
    emit("open", { transport: transportName(), engineId: engine.id });
    engine.on("upgrade", (t) => emit("upgrade", { transport: t.name }));
    let pings = 0;
    engine.on("ping", () => emit("ping", { count: ++pings, transport: transportName() }));
    engine.on("close", (reason, description) =>
      emit("close", { reason, description: describe(description) }),
    );
  });
  manager.on("error", (err) => emit("manager_error", { error: describe(err) }));

  function getSocket(name) {
    const entry = sockets.get(name);
    if (!entry) throw new Error(`no socket named ${JSON.stringify(name)}`);
    return entry;
  }

  function doEmit(cmd) {
    const name = cmd.socket ?? "/";
    const { socket } = getSocket(name);
    const args = decode(cmd.args || []);
    if (!cmd.ack) {
      socket.emit(cmd.name, ...args);
      emit("emitted", { socket: name, id: cmd.id ?? null });
      return;
    }
    const target = cmd.timeoutMs ? socket.timeout(cmd.timeoutMs) : socket;
    const ok = (reply) => emit("ack", { socket: name, id: cmd.id ?? null, args: encode(reply) });
    const bad = (err) =>
      emit("ack_error", { socket: name, id: cmd.id ?? null, error: String(err && err.message) });
    if (cmd.callback) {
      // the callback form gets every acknowledgement argument
      target.emit(cmd.name, ...args, (...reply) => {
        if (cmd.timeoutMs) {
          const err = reply.shift();
          if (err) return bad(err);
        }
        ok(reply);
      });
      return;
    }
    // emitWithAck resolves with the first acknowledgement argument; the
    // reply is reported asynchronously while the next commands run
    target.emitWithAck(cmd.name, ...args).then((value) => ok([value]), bad);
  }

  function doBurst(cmd) {
    const name = cmd.socket ?? "/";
    const { socket } = getSocket(name);
    for (let i = 0; i < cmd.count; i++) socket.emit(cmd.name, i);
    emit("burst_sent", { socket: name, type: cmd.name, count: cmd.count });
  }

  function run(cmd) {
    if (cmd.cmd === "burst") doBurst(cmd);
    else doEmit(cmd);
  }

  function addSocket(spec) {
    const nsp = spec.nsp || "/";
    const name = spec.name ?? nsp;
    if (sockets.has(name)) throw new Error(`socket ${JSON.stringify(name)} exists already`);
    const socketOpts = {};
    if (spec.auth !== undefined) socketOpts.auth = spec.auth;
    const socket = manager.socket(nsp, socketOpts);
    const entry = { socket, connectedOnce: false };
    sockets.set(name, entry);

    socket.on("connect", () => {
      emit("connect", { socket: name, id: socket.id, transport: transportName() });
      if (!entry.connectedOnce) {
        entry.connectedOnce = true;
        for (const cmd of onConnect) {
          if ((cmd.socket ?? "/") === name) run(cmd);
        }
      }
    });
    socket.on("connect_error", (err) => {
      emit("connect_error", {
        socket: name,
        message: err && err.message,
        data: err && err.data !== undefined ? encode(err.data) : null,
      });
    });
    socket.on("disconnect", (reason, description) => {
      emit("disconnect", { socket: name, reason, description: describe(description) });
    });
    socket.onAny((event, ...args) => {
      let ack = null;
      if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
      emit("ev", { socket: name, type: event, args: encode(args), acked: ack !== null });
      if (ack !== null) {
        const reply = Object.prototype.hasOwnProperty.call(acks, event) ? decode(acks[event]) : args;
        ack(...reply);
      }
    });
    if (spec.autoConnect !== false) socket.connect();
    return entry;
  }

  for (const spec of cfg.sockets || [{ name: "/", nsp: "/" }]) addSocket(spec);

  readCommands(
    async (cmd) => {
      switch (cmd.cmd) {
        case "emit":
          doEmit(cmd);
          break;
        case "burst":
          doBurst(cmd);
          break;
        case "socket":
          addSocket({ name: cmd.socket, nsp: cmd.nsp, auth: cmd.auth, autoConnect: cmd.autoConnect });
          break;
        case "connect":
          getSocket(cmd.socket ?? "/").socket.connect();
          break;
        case "disconnect":
          getSocket(cmd.socket ?? "/").socket.disconnect();
          break;
        case "state": {
          const out = {};
          for (const [name, { socket }] of sockets) out[name] = { connected: socket.connected, id: socket.id ?? null };
          emit("state", { sockets: out, transport: transportName() });
          break;
        }
        default:
          exitOrUnknown(cmd);
      }
    },
    () => finish(0, { reason: "stdin closed" }),
  );
}
