// Connects socket.io-client many times in a row with its default transports (polling, then the
// upgrade to WebSocket) and reports how long each upgrade took. Protocol as in
// tests/interop/node/common.mjs: JSON config in argv[2], one JSON event per line on stdout.
//
// Config:
//   url               "http://127.0.0.1:PORT" (required)
//   path              default "/socket.io"
//   count             connections, one after the other, default 40
//   upgradeTimeoutMs  how long one upgrade may take before it counts as stalled, default 3000
//   timeoutMs         hard stop, default 120000
//
// Events:
//   {"event":"probe","i":N,"upgraded":bool,"connectMs":N,"upgradeMs":N|null,"stage":..}
//   {"event":"summary","count":N,"stalled":N,"slowestMs":N}
//   {"event":"exit","code":0} / {"event":"fatal","error":..}

import { io } from "socket.io-client";
import { emit, startScript } from "../../interop/node/common.mjs";

startScript(main, { strings: ["url"], defaultTimeoutMs: 120000, exitWhenDone: true });

function once(cfg, i) {
  const limit = cfg.upgradeTimeoutMs || 3000;
  return new Promise((resolve) => {
    const t0 = Date.now();
    let connectMs = null;
    let stage = "connecting";
    const socket = io(cfg.url, {
      path: cfg.path || "/socket.io",
      transports: ["polling", "websocket"],
      reconnection: false,
      forceNew: true,
    });
    const done = (upgraded) => {
      clearTimeout(timer);
      const upgradeMs = upgraded ? Date.now() - t0 : null;
      socket.disconnect();
      resolve({ i, upgraded, connectMs, upgradeMs, stage });
    };
    const timer = setTimeout(() => done(false), limit);
    socket.io.on("open", () => {
      stage = "probing";
      socket.io.engine.on("upgrade", () => done(true));
    });
    socket.on("connect", () => {
      connectMs = Date.now() - t0;
    });
    socket.on("connect_error", (err) => {
      stage = "connect_error: " + (err && err.message);
    });
  });
}

async function main(cfg) {
  const count = cfg.count || 40;
  let stalled = 0;
  let slowest = 0;
  for (let i = 0; i < count; i++) {
    const r = await once(cfg, i);
    emit("probe", r);
    if (!r.upgraded) stalled++;
    else slowest = Math.max(slowest, r.upgradeMs);
  }
  emit("summary", { count, stalled, slowestMs: slowest });
}
