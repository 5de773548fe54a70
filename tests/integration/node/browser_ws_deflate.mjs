// A raw Engine.IO/Socket.IO session from a page of headless Chromium (Debian's, through
// playwright-core) to check permessage-deflate with a browser's own WebSocket. Protocol as in
// tests/interop/node/common.mjs: JSON config in argv[2], one JSON event per line on stdout.
//
// Config: url ("ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket"), executablePath,
//         userDataDir, sizes (letters per echoed message), timeoutMs
// Events: {"event":"launched","version":..}, {"event":"opened","extensions":..},
//         {"event":"echo","size":N,"ok":bool}, {"event":"done"}

import { reportPageErrors, runBrowserScript, withBrowser } from "./browser_common.mjs";
import { emit } from "../../interop/node/common.mjs";

runBrowserScript(main, ["url", "userDataDir"], ["sizes"]);

async function main(cfg) {
  await withBrowser(cfg, {}, async (context) => {
    const page = await context.newPage();
    reportPageErrors(page);
    const result = await page.evaluate(async ({ url, sizes }) => {
      const ws = new WebSocket(url);
      const inbox = [];
      let wake = null;
      ws.onmessage = (ev) => {
        if (ev.data === "2") { ws.send("3"); return; }
        inbox.push(ev.data);
        if (wake) { const w = wake; wake = null; w(); }
      };
      const next = async () => {
        while (!inbox.length) await new Promise((r) => { wake = r; });
        return inbox.shift();
      };
      await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
      const out = { extensions: ws.extensions, echoes: [] };
      if (!(await next()).startsWith("0")) throw new Error("no Engine.IO open packet");
      ws.send("40");
      if (!(await next()).startsWith("40")) throw new Error("no Socket.IO CONNECT");
      for (const size of sizes) {
        const text = "abcdefghij".repeat(size / 10);
        ws.send("42" + JSON.stringify(["echo", text]));
        const reply = await next();
        const [name, back] = JSON.parse(reply.slice(2));
        out.echoes.push({ size, ok: name === "echo" && back === text });
      }
      ws.close(1000);
      return out;
    }, { url: cfg.url, sizes: cfg.sizes });
    emit("opened", { extensions: result.extensions });
    for (const e of result.echoes) emit("echo", e);
    emit("done");
  });
}
