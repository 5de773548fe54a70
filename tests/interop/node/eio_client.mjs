// An engine.io-client driven from the Python tests.
//
// Config (argv[2], JSON):
//   url           "http://127.0.0.1:PORT" (required)
//   path          engine path, default "/engine.io"
//   transports    default ["polling", "websocket"]
//   upgrade       allow the polling -> websocket upgrade, default true
//   query         extra query parameters (object), optional
//   onOpen        list of send commands run as soon as "open" fires
//   tracePackets  also print every packet received ({"event":"packet"})
//   echo          send every message received straight back, default false
//   exitOnClose   exit (status 0) after the "close" event, default true; the
//                 script lets a last request in flight (the CLOSE packet a
//                 polling client posts) finish first, for closeGraceMs at most
//   closeGraceMs  default 2000
//   exitOnStdinEnd  exit when stdin ends, default true (set false to run by hand
//                 with stdin from /dev/null)
//   timeoutMs     hard stop, default 10000
//
// Events printed (one JSON object per line):
//   {"event":"handshake","sid":..,"upgrades":[..],"pingInterval":..,"pingTimeout":..,"maxPayload":..}
//   {"event":"open","transport":"polling","sid":..}
//   {"event":"message","data":"text","binary":false}
//   {"event":"message","data":"<base64>","binary":true}
//   {"event":"message","data":null,"binary":false}   an empty text message
//   {"event":"ping","count":N}                 a server ping (answered unless muted)
//   {"event":"pong_suppressed","count":N}      a pong that was not sent (see mute_pongs)
//   {"event":"upgrading","transport":"websocket"}
//   {"event":"upgrade","transport":"websocket"}
//   {"event":"upgradeError","error":{..}}
//   {"event":"sent","id":..}                   the send with that id was flushed
//   {"event":"error","error":{..}}
//   {"event":"close","reason":"transport close","description":{..}}
//   {"event":"state","readyState":..,"transport":..,"sid":..}
//   {"event":"exit","code":N}                  last line before a normal exit
//   {"event":"fatal","error":"..."}            then a non-zero exit
//
// Commands (stdin, one JSON object per line):
//   {"cmd":"send","data":"text"}
//   {"cmd":"send","binary":"<base64>","as":"buffer"|"arraybuffer"|"uint8array","id":..}
//   {"cmd":"close"}                            socket.close()
//   {"cmd":"mute_pongs"}                       stop answering pings (and stop the
//                                              client's own heartbeat timer, so the
//                                              server is the one to notice)
//   {"cmd":"state"}
//   {"cmd":"exit"}                             exit at once, without closing

import { Socket } from "engine.io-client";
import {
  describe,
  emit,
  exitOrUnknown,
  fail,
  finish,
  finishWhenIdle,
  fromBase64,
  isBinary,
  readCommands,
  startScript,
  toBase64,
} from "./common.mjs";

startScript(main, { strings: ["url"] });

function main(cfg) {

  const opts = {
    path: cfg.path || "/engine.io",
    transports: cfg.transports || ["polling", "websocket"],
    upgrade: cfg.upgrade !== false,
  };
  if (cfg.query) opts.query = cfg.query;
  const exitOnClose = cfg.exitOnClose !== false;

  const socket = new Socket(cfg.url, opts);
  let pings = 0;
  let suppressed = 0;
  let pongsMuted = false;

  function send(cmd) {
    let payload;
    if (typeof cmd.binary === "string") {
      payload = fromBase64(cmd.binary, cmd.as || "buffer");
    } else if (typeof cmd.data === "string") {
      payload = cmd.data;
    } else {
      throw new Error(`send needs "data" (string) or "binary" (base64): ${JSON.stringify(cmd)}`);
    }
    const done = cmd.id === undefined ? undefined : () => emit("sent", { id: cmd.id });
    socket.send(payload, {}, done);
  }

  function mutePongs() {
    if (pongsMuted) return;
    // engine.io-client answers a ping from its packet handler through the
    // internal _sendPacket("pong"); it is the one place pongs come from.
    if (typeof socket._sendPacket !== "function" || typeof socket._resetPingTimeout !== "function") {
      throw new Error("this engine.io-client has no _sendPacket/_resetPingTimeout to patch");
    }
    const sendPacket = socket._sendPacket;
    socket._sendPacket = function (type, ...rest) {
      if (type === "pong") {
        suppressed += 1;
        emit("pong_suppressed", { count: suppressed });
        return;
      }
      return sendPacket.call(this, type, ...rest);
    };
    // Without pongs the client would also give up on its own after
    // pingInterval + pingTimeout; disarm that timer so only the server's
    // heartbeat decides.
    socket._resetPingTimeout = function () {
      this.clearTimeoutFn(this._pingTimeoutTimer);
      this._pingTimeoutTime = Infinity;
    };
    socket._resetPingTimeout();
    pongsMuted = true;
    emit("pongs_muted");
  }

  socket.on("handshake", (data) => {
    emit("handshake", {
      sid: data.sid,
      upgrades: data.upgrades,
      pingInterval: data.pingInterval,
      pingTimeout: data.pingTimeout,
      maxPayload: data.maxPayload,
    });
  });

  socket.on("open", () => {
    emit("open", { transport: socket.transport.name, sid: socket.id });
    for (const cmd of cfg.onOpen || []) send(cmd);
  });

  socket.on("message", (data) => {
    if (data === undefined) {
      // engine.io-parser decodes an empty text message ("4") without data
      emit("message", { data: null, binary: false });
    } else if (isBinary(data)) {
      emit("message", { data: toBase64(data), binary: true });
    } else {
      emit("message", { data, binary: false });
    }
    if (cfg.echo) socket.send(data === undefined ? "" : data);
  });

  if (cfg.tracePackets) {
    socket.on("packet", (packet) => {
      const data = packet.data === undefined ? null : isBinary(packet.data) ? toBase64(packet.data) : packet.data;
      emit("packet", { type: packet.type, data, transport: socket.transport && socket.transport.name });
    });
  }

  socket.on("ping", () => {
    pings += 1;
    emit("ping", { count: pings });
  });

  socket.on("upgrading", (transport) => emit("upgrading", { transport: transport.name }));
  socket.on("upgrade", (transport) => emit("upgrade", { transport: transport.name }));
  socket.on("upgradeError", (err) => emit("upgradeError", { error: describe(err) }));
  socket.on("error", (err) => emit("error", { error: describe(err) }));

  socket.on("close", (reason, description) => {
    emit("close", { reason, description: describe(description), pings });
    if (!exitOnClose) return;
    finishWhenIdle(cfg.closeGraceMs ?? 2000, stopInput);
    // A polling client that closes posts a CLOSE packet; its long-poll GET
    // may stay pending on the server for a long time. Exit as soon as the
    // POST is done instead of waiting for that GET.
    const transport = socket.transport;
    if (transport && transport.name === "polling" && transport.writable === false) {
      transport.once("drain", () => finish(0));
      transport.once("error", () => finish(0));
    }
  });

  const stopInput = readCommands(
    async (cmd) => {
      switch (cmd.cmd) {
        case "send":
          send(cmd);
          break;
        case "close":
          socket.close();
          break;
        case "mute_pongs":
          mutePongs();
          break;
        case "state":
          emit("state", {
            readyState: socket.readyState,
            transport: socket.transport ? socket.transport.name : null,
            sid: socket.id,
            pings,
          });
          break;
        default:
          exitOrUnknown(cmd);
      }
    },
    () => {
      if (cfg.exitOnStdinEnd !== false) finish(0, { reason: "stdin closed" });
    },
  );
}
