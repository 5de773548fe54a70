// Runs one scripted scenario of Node socket.io server features with the official
// socket.io-client and prints what the clients observed, so the same scenario can be
// run against fastio and against Node's socket.io server and the observations compared.
//
// Config (argv[2], JSON): {"url": "http://127.0.0.1:PORT", "scenario": "middleware" |
//   "broadcast_ack" | "operators" | "events", "transports": [..], "timeoutMs": N}
// Prints {"event":"observed","what":..,..} lines, then {"event":"done"} and exits.

import { io } from "socket.io-client";
import { armTimeout, emit, fail, finish, installCrashHandlers, parseConfig } from "./common.mjs";

installCrashHandlers();
const cfg = parseConfig();
if (cfg) main(cfg).catch(fail);

function open(cfg, nsp, opts = {}) {
  return io(cfg.url + nsp, {
    forceNew: true,
    reconnection: false,
    transports: cfg.transports || ["websocket"],
    ...opts,
  });
}

// Resolves with {connected: true} or {connect_error: message, data}.
function outcome(socket) {
  return new Promise((resolve) => {
    socket.once("connect", () => resolve({ connected: true }));
    socket.once("connect_error", (err) =>
      resolve({ connect_error: err.message, data: err.data === undefined ? null : err.data }),
    );
  });
}

async function middleware(cfg) {
  const bad = open(cfg, "/", { auth: { token: "bad" } });
  emit("observed", { what: "bad token", ...(await outcome(bad)) });
  bad.close();

  const good = open(cfg, "/", { auth: { token: "ok" } });
  emit("observed", { what: "good token", ...(await outcome(good)) });
  emit("observed", { what: "steps", steps: await good.emitWithAck("steps") });
  good.close();

  for (const nsp of ["/admin", "/async", "/nowhere"]) {
    const s = open(cfg, nsp, { auth: { token: "ok" } });
    emit("observed", { what: nsp, ...(await outcome(s)) });
    s.close();
  }
}

async function broadcastAck(cfg) {
  const answering = (name, rooms, silent) => {
    const s = open(cfg, "/", { auth: { token: "ok", rooms } });
    s.on("q", (x, ack) => {
      emit("observed", { what: "asked", name, x });
      if (!silent) ack(name + x);
    });
    return s;
  };
  const a = answering("a", ["r"], false);
  const b = answering("b", ["r"], false);
  const d = open(cfg, "/", { auth: { token: "ok" } });
  await Promise.all([outcome(a), outcome(b), outcome(d)]);
  emit("observed", { what: "all answer", ...(await d.emitWithAck("run", { timeoutMs: 3000, room: "r" })) });
  const c = answering("c", ["r", "silent"], true);
  await outcome(c);
  emit("observed", { what: "one silent", ...(await d.emitWithAck("run", { timeoutMs: 300, room: "r" })) });
  emit("observed", { what: "nobody", ...(await d.emitWithAck("run", { timeoutMs: 300, room: "empty" })) });
  emit("observed", {
    what: "except",
    ...(await d.emitWithAck("run", { timeoutMs: 3000, room: "r", except: "silent" })),
  });
  for (const s of [a, b, c, d]) s.close();
}

async function operators(cfg) {
  const got = {};
  const clients = {};
  const ended = [];
  for (const [name, rooms] of [["a", ["r"]], ["b", ["r", "vip"]], ["c", ["blue"]], ["d", []]]) {
    const s = open(cfg, "/", { auth: { token: "ok", name, rooms } });
    got[name] = [];
    s.onAny((event, ...args) => got[name].push([event, ...args]));
    ended.push(
      new Promise((resolve) => {
        s.on("end", resolve);
        s.on("disconnect", (reason) => {
          got[name].push(["disconnect", reason]);
          resolve();
        });
      }),
    );
    clients[name] = s;
  }
  await Promise.all(Object.values(clients).map(outcome));
  const d = clients.d;
  const call = async (what, payload) => emit("observed", { what, answer: await d.emitWithAck(what, payload) });
  await call("op", { to: ["r"], except: ["vip"], event: "e1" });
  await call("op", { to: [], except: ["r"], event: "e2" });
  await call("op", { to: ["r", "blue"], except: [], event: "e3" });
  await call("op", { to: ["r"], except: ["a-sid-is-not-a-room"], event: "e4" });
  await call("fetch", { to: ["r"] });
  await call("join", { to: ["blue"], room: "r" });
  await call("fetch", { to: ["r"] });
  await call("leave", { to: ["vip"], room: "r" });
  await call("fetch", { to: ["r"] });
  await call("kick", { to: ["vip"] });
  await call("fetch", { to: [] });
  await call("op", { to: [], except: [], event: "end" });
  await Promise.all(ended);
  for (const name of ["a", "b", "c", "d"]) emit("observed", { what: "got", name, events: got[name] });
  for (const s of Object.values(clients)) s.close();
}

async function events(cfg) {
  const s = open(cfg, "/", { auth: { token: "ok", name: "e" } });
  await outcome(s);
  emit("observed", { what: "echo", answer: await s.emitWithAck("echo", 1, { two: 2 }) });
  let answer;
  try {
    answer = await s.timeout(300).emitWithAck("forbidden", 3);
  } catch (err) {
    answer = { error: err.message };
  }
  emit("observed", { what: "forbidden", answer });
  emit("observed", { what: "log", answer: await s.emitWithAck("log") });
  s.close();
}

async function main(cfg) {
  armTimeout(cfg.timeoutMs || 20000);
  if (cfg.scenario === "middleware") await middleware(cfg);
  else if (cfg.scenario === "broadcast_ack") await broadcastAck(cfg);
  else if (cfg.scenario === "operators") await operators(cfg);
  else if (cfg.scenario === "events") await events(cfg);
  else throw new Error(`unknown scenario ${cfg.scenario}`);
  emit("done");
  finish(0);
}
