// Node's socket.io server with connectionStateRecovery: the reference that fastio's recovery is
// compared with (tests/interop/test_recovery_node.py).  It does what that test's fastio server
// does: a new socket joins "room"; the first disconnection emits what the client will miss.
//
// Config (argv[2], JSON): {"timeoutMs": N}.  Prints {"event":"listening","port":N}, then
//   {"event":"server_connect","id":..,"recovered":bool} and {"event":"server_disconnect","id":..,"reason":..}
// Commands (stdin): {"cmd":"emit_room","value":V} -> io.to("room").emit("n", V); {"cmd":"exit"}

import { createServer } from "node:http";
import { Server } from "socket.io";
import { emit, finish, readCommands, startScript } from "./common.mjs";

startScript(main, { defaultTimeoutMs: 30000 });

function main(cfg) {
  const http = createServer();
  const io = new Server(http, {
    cors: { origin: "*" },
    connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: true },
  });
  let missed = true;

  io.on("connection", (socket) => {
    emit("server_connect", { id: socket.id, recovered: socket.recovered === true });
    if (!socket.recovered) socket.join("room");
    socket.on("disconnect", (reason) => {
      emit("server_disconnect", { id: socket.id, reason });
      if (missed) {
        missed = false;
        io.to("room").emit("n", 1);
        io.emit("n", 2);
        socket.emit("n", 3);
        io.to("other").emit("n", "not for it");
        io.volatile.emit("n", "volatile");
        io.to("room").except("someone else").emit("n", 4);
      }
    });
  });

  http.listen(0, "127.0.0.1", () => emit("listening", { port: http.address().port }));
  readCommands(
    (cmd) => {
      if (cmd.cmd === "emit_room") io.to("room").emit("n", cmd.value);
      else if (cmd.cmd === "exit") {
        io.close();
        finish(0);
      }
    },
    () => finish(0),
  );
}
