// Shared bits of the Node benchmark servers: the command line, the repository's node_modules and
// the handlers every server has, the same code on each.
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// A require() that resolves packages from the repository's node_modules (two levels up from here).
const here = path.dirname(fileURLToPath(import.meta.url));
export const require = createRequire(path.join(here, "..", "..", "package.json"));

// The value of the option --name on the command line, dflt when it is not given.
export function arg(name, dflt) {
  const i = process.argv.indexOf("--" + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

// The two handlers of every benchmark server: "echo" emits its arguments back to the sender and
// acknowledges with them; "broadcast" emits its argument to everyone.
export function addBenchHandlers(io) {
  io.on("connection", (socket) => {
    socket.on("echo", (...args) => {
      const ack = args.length && typeof args[args.length - 1] === "function" ? args.pop() : null;
      socket.emit("echo", ...args);
      if (ack) ack(...args);
    });
    socket.on("broadcast", (data) => {
      io.emit("broadcast", data);
    });
  });
}
