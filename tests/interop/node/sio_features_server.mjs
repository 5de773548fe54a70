// Node's socket.io server running the scenarios of sio_features_client.mjs, the reference
// that fastio's behaviour is compared with (tests/interop/test_node_features_compare.py).
//
// Config (argv[2], JSON): {"timeoutMs": N}.  Prints {"event":"listening","port":N}.

import { createServer } from "node:http";
import { Server } from "socket.io";
import { emit, fail, finish, readCommands, startScript } from "./common.mjs";

startScript(main, { defaultTimeoutMs: 30000 });

function main(cfg) {
  const http = createServer();
  const io = new Server(http, { cors: { origin: "*" } });
  const steps = new Map();

  // -- scenario "middleware" --
  io.use((socket, next) => {
    steps.set(socket.id, ["mw1"]);
    if (!socket.handshake.auth || socket.handshake.auth.token !== "ok") {
      const err = new Error("unauthorized");
      err.data = { code: 401 };
      return next(err);
    }
    next();
  });
  io.use((socket, next) => {
    setTimeout(() => {
      steps.get(socket.id).push("mw2");
      next();
    }, 1);
  });
  io.of("/admin").use((socket, next) => next(new Error("no admin")));
  io.of("/async").use((socket, next) => {
    setTimeout(() => {
      const err = new Error("later");
      err.data = { retry: 5 };
      next(err);
    }, 1);
  });

  io.on("connection", (socket) => {
    const mine = steps.get(socket.id);
    if (mine) mine.push("connection");
    socket.on("steps", (ack) => ack(steps.get(socket.id) || []));

    // -- scenario "broadcast_ack" --
    const auth = socket.handshake.auth || {};
    if (auth.rooms) socket.join(auth.rooms);
    if (auth.name) socket.data.name = auth.name;

    // -- scenario "events" --
    if (auth.name === "e") {
      const log = [];
      socket.onAny((event) => log.push(["any", event]));
      socket.use(([event, ...args], next) => {
        log.push(["mw1", event]);
        next();
      });
      socket.use(([event], next) => {
        setTimeout(() => {
          log.push(["mw2", event]);
          next(event === "forbidden" ? new Error("not allowed") : undefined);
        }, 1);
      });
      socket.on("error", (err) => log.push(["error", err.message]));
      socket.on("echo", (...args) => {
        const ack = args.pop();
        log.push(["handler", "echo"]);
        ack(args);
      });
      socket.on("forbidden", (...args) => log.push(["handler", "forbidden"]));
      socket.on("log", (ack) => ack(log));
    }

    // -- scenario "operators" --
    const select = (opts) => {
      let op = io.of("/");
      if (opts.to && opts.to.length) op = op.to(opts.to);
      if (opts.except && opts.except.length) op = op.except(opts.except);
      return op;
    };
    socket.on("op", (opts, ack) => {
      select(opts).emit(opts.event, opts.event + "!");
      ack("ok");
    });
    socket.on("fetch", async (opts, ack) => {
      const found = await select(opts).fetchSockets();
      ack(found.map((s) => [s.data.name, [...s.rooms].filter((r) => r !== s.id).sort()]).sort());
    });
    socket.on("join", (opts, ack) => {
      select(opts).socketsJoin(opts.room);
      ack("ok");
    });
    socket.on("leave", (opts, ack) => {
      select(opts).socketsLeave(opts.room);
      ack("ok");
    });
    socket.on("kick", (opts, ack) => {
      select(opts).disconnectSockets();
      ack("ok");
    });
    socket.on("run", (opts, ack) => {
      let op = io.to(opts.room);
      if (opts.except) op = op.except(opts.except);
      op.timeout(opts.timeoutMs).emit("q", 7, (err, responses) => {
        ack({ err: err ? err.message : null, responses: [...responses].sort() });
      });
    });
  });

  http.listen(0, "127.0.0.1", () => emit("listening", { port: http.address().port }));
  readCommands(
    (cmd) => {
      if (cmd.cmd === "exit") finish(0);
    },
    () => finish(0, { reason: "stdin closed" }),
  );
}
