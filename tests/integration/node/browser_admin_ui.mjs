// Drives the Socket.IO Admin UI (@socket.io/admin-ui's own built page) in headless Chromium
// (Debian's, through playwright-core): log in through the UI's connection form, first with a
// wrong password, then the right one; then read the sockets, rooms and servers pages and take a
// screenshot. Protocol as in tests/interop/node/common.mjs: JSON config in argv[2], one JSON
// event per line on stdout.
//
// Config:
//   url             the page, "http://127.0.0.1:PORT/" (required)
//   serverUrl       what to type as the server URL (required)
//   namespace       the admin namespace to type in the advanced options (required)
//   username, password, wrongPassword
//   socketIds       ids the sockets page must show (required)
//   rooms           room names the rooms page must show (required)
//   serverId        the server id the servers page must show (required)
//   executablePath  the browser, default "/usr/bin/chromium"
//   userDataDir     a fresh, empty profile directory (required)
//   screenshot      where to save the screenshot PNG (required)
//   timeoutMs       hard stop, default 60000
//
// Events:
//   {"event":"launched","version":..}
//   {"event":"refused","text":..}          the form shows the error for the wrong password
//   {"event":"connected"}                  the form closed and the app bar says "connected"
//   {"event":"sockets","text":..}          the sockets page's text, once it shows every id
//   {"event":"rooms","text":..}            the rooms page's text, once it shows every room
//   {"event":"servers","text":..}          the servers page's text, once it shows the server
//   {"event":"screenshot","path":..,"bytes":N}
//   {"event":"blocked","url":..}           a request off the test server, not made
//   {"event":"page_error","message":..}, {"event":"console_error","text":..,"url":..}
//   {"event":"done"}, then {"event":"exit","code":0}; {"event":"fatal",..} on failure

import { reportPageErrors, runBrowserScript, saveScreenshot, withBrowser } from "./browser_common.mjs";
import { emit } from "../../interop/node/common.mjs";

runBrowserScript(
  main,
  ["url", "serverUrl", "namespace", "userDataDir", "screenshot", "serverId"],
  ["socketIds", "rooms"],
);

async function main(cfg) {
  await withBrowser(cfg, { viewport: { width: 1280, height: 800 } }, async (context) => {
    context.setDefaultTimeout(15000);
    // The page links web fonts and icons from CDNs: the test runs offline, so only the test
    // server is reachable (the UI works without them).
    const origin = new URL(cfg.url).origin;
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith(origin)) return route.continue();
      emit("blocked", { url });
      return route.abort();
    });

    const page = await context.newPage();
    reportPageErrors(page);
    await page.goto(cfg.url, { waitUntil: "load" });

    // The connection form opens by itself on a first visit.
    const form = page.locator("form").filter({ has: page.getByLabel("Server URL") });
    await form.getByLabel("Server URL").fill(cfg.serverUrl);
    await form.getByLabel("Username").fill(cfg.username || "");
    await form.getByLabel("Password").fill(cfg.wrongPassword || "wrong");
    await form.getByText("Advanced options").click();
    await form.getByLabel("Admin namespace").fill(cfg.namespace);
    await form.getByRole("button", { name: "Connect" }).click();
    await page.waitForFunction(() => /invalid credentials/i.test(document.body.innerText));
    emit("refused", { text: await form.innerText() });

    await form.getByLabel("Password").fill(cfg.password || "");
    await form.getByRole("button", { name: "Connect" }).click();
    await form.waitFor({ state: "hidden" });
    await page.waitForFunction(() => /\bconnected\b/i.test(document.querySelector("header").innerText));
    emit("connected", {});

    async function pageShowing(hash, wanted) {
      await page.goto(new URL("#" + hash, cfg.url).toString());
      await page.waitForFunction(
        (words) => words.every((w) => document.querySelector("main").innerText.includes(w)),
        wanted,
      );
      // the route change slides the page in: wait for the transition to end (for the screenshot)
      await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running"));
      return page.locator("main").innerText();
    }

    emit("sockets", { text: await pageShowing("/sockets/", cfg.socketIds) });
    await saveScreenshot(page, cfg.screenshot);
    emit("rooms", { text: await pageShowing("/rooms/", cfg.rooms) });
    emit("servers", { text: await pageShowing("/servers/", [cfg.serverId]) });
    emit("done");
  });
}
