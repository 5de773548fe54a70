// A socket.io-client socket with reconnection on, for connection state recovery tests.
//
// Config (argv[2], JSON):
//   url                "http://127.0.0.1:PORT" (required)
//   transports         default ["websocket"]
//   auth               the CONNECT payload (object), optional
//   reconnectionDelay  ms, default 50
//   timeoutMs          hard stop, default 10000
//
// Events printed (one JSON object per line):
//   {"event":"connect","id":..,"recovered":bool,"transport":..}
//   {"event":"connect_error","message":..}
//   {"event":"disconnect","reason":..}
//   {"event":"ev","type":<event name>,"args":[..]}   every event, the offset left in place
//                                                     (socket.io-client hands it to listeners)
//   {"event":"emitted","name":..}                    an emit was queued
//   {"event":"exit","code":N} / {"event":"fatal","error":".."}
//
// Commands (stdin, one JSON object per line):
//   {"cmd":"emit","name":ev,"args":[..]}   socket.emit(ev, ...args)
//   {"cmd":"drop"}                         socket.io.engine.close(): the transport closes without
//                                          a Socket.IO DISCONNECT, so the Manager reconnects
//   {"cmd":"disconnect"}                   socket.disconnect() (voluntary)
//   {"cmd":"connect"}                      socket.connect()
//   {"cmd":"exit"}

import { io } from "socket.io-client";
import { emit, fail, finish, readCommands, startScript } from "./common.mjs";

startScript(main, { strings: ["url"] });

function main(cfg) {
  const delay = Number.isFinite(cfg.reconnectionDelay) ? cfg.reconnectionDelay : 50;
  const socket = io(cfg.url, {
    transports: cfg.transports || ["websocket"],
    auth: cfg.auth || undefined,
    reconnectionDelay: delay,
    reconnectionDelayMax: delay,
    randomizationFactor: 0,
  });
  const transport = () => (socket.io.engine && socket.io.engine.transport ? socket.io.engine.transport.name : null);
  socket.on("connect", () => emit("connect", { id: socket.id, recovered: socket.recovered === true, transport: transport() }));
  socket.on("connect_error", (err) => emit("connect_error", { message: err.message }));
  socket.on("disconnect", (reason) => emit("disconnect", { reason }));
  socket.onAny((type, ...args) => emit("ev", { type, args }));

  readCommands(
    async (cmd) => {
      switch (cmd.cmd) {
        case "emit":
          socket.emit(cmd.name, ...(cmd.args || []));
          emit("emitted", { name: cmd.name });
          break;
        case "drop":
          socket.io.engine.close();
          break;
        case "disconnect":
          socket.disconnect();
          break;
        case "connect":
          socket.connect();
          break;
        case "exit":
          socket.io.opts.reconnection = false;
          socket.disconnect();
          finish(0);
          break;
        default:
          fail(`unknown command ${JSON.stringify(cmd)}`);
      }
    },
    () => finish(0),
  );
}
