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

import { mkdirSync } from "node:fs";
import { stat } from "node:fs/promises";
import { chromium } from "playwright-core";
import {
  armTimeout,
  emit,
  fail,
  finish,
  installCrashHandlers,
  parseConfig,
  EXIT_BAD_CONFIG,
} from "../../interop/node/common.mjs";

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

installCrashHandlers();
const cfg = parseConfig();
if (cfg) {
  const missing = ["url", "serverUrl", "namespace", "userDataDir", "screenshot", "serverId"].filter(
    (key) => typeof cfg[key] !== "string" || !cfg[key],
  );
  if (missing.length || !Array.isArray(cfg.socketIds) || !Array.isArray(cfg.rooms)) {
    fail(`config needs ${missing.concat(["socketIds", "rooms"]).join(", ")}`, EXIT_BAD_CONFIG);
  } else {
    armTimeout(cfg.timeoutMs || 60000);
    main(cfg).then(
      () => finish(0),
      (err) => fail(err),
    );
  }
}

async function main(cfg) {
  mkdirSync(cfg.userDataDir, { recursive: true });
  const context = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.executablePath || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    timeout: 30000,
  });
  try {
    const browser = context.browser();
    emit("launched", { version: browser ? browser.version() : null });
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
    page.on("pageerror", (err) => emit("page_error", { message: String(err && err.message) }));
    page.on("console", (msg) => {
      if (msg.type() === "error") emit("console_error", { text: msg.text(), url: msg.location().url || null });
    });
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
    await page.screenshot({ path: cfg.screenshot, fullPage: true });
    const st = await stat(cfg.screenshot);
    emit("screenshot", { path: cfg.screenshot, bytes: st.size });
    emit("rooms", { text: await pageShowing("/rooms/", cfg.rooms) });
    emit("servers", { text: await pageShowing("/servers/", [cfg.serverId]) });
    emit("done");
  } finally {
    await context.close().catch(() => {});
  }
}
