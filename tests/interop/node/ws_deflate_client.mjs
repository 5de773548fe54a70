// A raw Engine.IO v4 + Socket.IO v5 client on Node's `ws` (the WebSocket library
// engine.io-client uses in Node), to check permessage-deflate against fastio.
//
// config: {url, perMessageDeflate (ws option: false, true or an object), timeoutMs}
// events: ready {extensions}, event {ev, args, rx}, close {code, reason}
//   rx: bytes read from the TCP socket so far (frames as on the wire, compressed or not)
// commands: {cmd: "emit", name, args, compress}, {cmd: "close"}

import { createRequire } from "node:module";
import {
  armTimeout, emit, fail, finish, installCrashHandlers, parseConfig, readCommands,
} from "./common.mjs";

const require = createRequire(import.meta.url);
const WebSocket = require("ws");

installCrashHandlers();
const cfg = parseConfig();
if (cfg) {
  armTimeout(cfg.timeoutMs);
  const url = cfg.url.replace(/^http/, "ws") + "/socket.io/?EIO=4&transport=websocket";
  const ws = new WebSocket(url, { perMessageDeflate: cfg.perMessageDeflate });
  let rx = 0;
  let counting = false;
  let extensions = null;
  ws.on("upgrade", (res) => {
    extensions = res.headers["sec-websocket-extensions"] || "";
  });
  ws.on("message", (data, isBinary) => {
    const text = data.toString();
    if (isBinary) return;
    if (text === "2") { ws.send("3"); return; }
    if (text.startsWith("0")) { ws.send("40"); return; }
    if (text.startsWith("40")) {
      counting = true;
      emit("ready", { extensions });
      return;
    }
    if (text.startsWith("42")) {
      const [name, ...args] = JSON.parse(text.slice(2));
      emit("event", { ev: name, args, rx });
    }
  });
  ws.on("close", (code, reason) => {
    emit("close", { code, reason: reason.toString() });
    finish(0);
  });
  ws.on("error", (err) => fail(err));
  ws.on("open", () => {
    // Counted before ws parses the chunk (and emits the messages it completes).
    ws._socket.prependListener("data", (chunk) => { if (counting) rx += chunk.length; });
  });
  readCommands(async (cmd) => {
    if (cmd.cmd === "emit") {
      ws.send("42" + JSON.stringify([cmd.name, ...cmd.args]), { compress: cmd.compress !== false });
    } else if (cmd.cmd === "close") {
      ws.close(1000);
    } else {
      throw new Error(`unknown command ${cmd.cmd}`);
    }
  });
}
