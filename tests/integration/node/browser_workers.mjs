// Long-polling Socket.IO sessions of one page in headless Chromium (Debian's, through
// playwright-core) against `fastio run --workers N` (tests/integration/test_workers.py).
// The browser keeps up to six keep-alive connections per host and reuses them for any
// session's requests, so a connection the master gave to one worker carries requests of
// sessions of the other workers. Protocol as in tests/interop/node/common.mjs.
//
// Config:
//   url             "http://127.0.0.1:PORT" (required)
//   clientScript    path of socket.io-client's dist/socket.io.min.js (required)
//   executablePath  the browser, default "/usr/bin/chromium"
//   userDataDir     a fresh, empty profile directory (required)
//   count           sessions, default 4 (the browser allows six connections per host)
//   rounds          emits (with acks) per session after connecting, default 5
//   timeoutMs       hard stop, default 60000
//
// Events:
//   {"event":"launched","version":..}
//   {"event":"result","pids":[..],"sids":[..],"acks":N,"told":N,"errors":[..]}
//   {"event":"page_error","message":..}, {"event":"console_error","text":..,"url":..}
//   {"event":"exit","code":0} / {"event":"fatal",..}

import { reportPageErrors, runBrowserScript, withBrowser } from "./browser_common.mjs";
import { emit } from "../../interop/node/common.mjs";

runBrowserScript(main, ["url", "clientScript", "userDataDir"]);

async function main(cfg) {
  await withBrowser(cfg, {}, async (context) => {
    context.setDefaultTimeout(30000);
    const page = await context.newPage();
    reportPageErrors(page);
    // Same origin as the Socket.IO server: the page itself is the server's 404.
    await page.goto(cfg.url + "/", { waitUntil: "load" });
    await page.addScriptTag({ path: cfg.clientScript });
    const result = await page.evaluate(
      async ({ url, count, rounds }) => {
        const errors = [];
        const sockets = await Promise.all(
          Array.from(
            { length: count },
            () =>
              new Promise((resolve, reject) => {
                const s = io(url, { transports: ["polling"], forceNew: true, reconnection: false });
                s.on("connect", () => resolve(s));
                s.on("connect_error", (e) => reject(new Error(e.message)));
              }),
          ),
        );
        sockets.forEach((s) => s.on("disconnect", (r) => r !== "io client disconnect" && errors.push(r)));
        const pids = [];
        const sids = [];
        for (const s of sockets) {
          const me = await s.timeout(10000).emitWithAck("whoami");
          pids.push(me.pid);
          sids.push(me.sid);
        }
        let acks = 0;
        // Every session polls and posts at once, many times: the pooled connections carry
        // requests of every session.
        await Promise.all(
          sockets.map(async (s) => {
            for (let i = 0; i < rounds; i++) {
              await s.timeout(10000).emitWithAck("whoami");
              acks += 1;
            }
          }),
        );
        let told = 0;
        const allTold = Promise.all(sockets.map((s) => new Promise((r) => s.once("told", () => r((told += 1))))));
        await sockets[0].timeout(10000).emitWithAck("tell", "all", "hi");
        await allTold;
        sockets.forEach((s) => s.disconnect());
        return { pids, sids, acks, told, errors };
      },
      { url: cfg.url, count: cfg.count || 4, rounds: cfg.rounds || 5 },
    );
    emit("result", result);
  });
}
