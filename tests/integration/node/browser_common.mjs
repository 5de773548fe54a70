// What the browser scripts share: their start (config, hard stop, exit status), Debian's
// headless Chromium through playwright-core with a fresh profile, and the reports of a page's
// errors and screenshots. Protocol as in tests/interop/node/common.mjs: JSON config in argv[2],
// one JSON event per line on stdout.
//
// Config read here:
//   executablePath  the browser, default "/usr/bin/chromium"
//   userDataDir     a fresh, empty profile directory (required)
//   timeoutMs       hard stop, default 60000
//
// Events:
//   {"event":"launched","version":..}
//   {"event":"page_error",..,"message":..}, {"event":"console_error",..,"text":..,"url":..}
//   {"event":"screenshot","path":..,"bytes":N}
//   {"event":"exit","code":0} once main() resolves; {"event":"fatal",..} on failure

import { mkdirSync } from "node:fs";
import { stat } from "node:fs/promises";
import { chromium } from "playwright-core";
import { emit, startScript } from "../../interop/node/common.mjs";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// Runs `main(cfg)` on the config (`strings` and `lists` required as in loadConfig) under the
// hard stop; the script exits 0 once it resolves.
export function runBrowserScript(main, strings = [], lists = []) {
  startScript(main, { strings, lists, defaultTimeoutMs: 60000, exitWhenDone: true });
}

// Launches Chromium with the profile cfg.userDataDir (and playwright's launch `options`, such
// as the viewport), reports "launched", and runs `body(context)`; the context is closed after,
// which ends Chromium and reaps it.
export async function withBrowser(cfg, options, body) {
  mkdirSync(cfg.userDataDir, { recursive: true });
  const context = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.executablePath || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
    ...options,
  });
  try {
    const browser = context.browser();
    emit("launched", { version: browser ? browser.version() : null });
    return await body(context);
  } finally {
    await context.close().catch(() => {});
  }
}

// Reports the page's uncaught errors and console errors, each event with `fields` first.
export function reportPageErrors(page, fields = {}) {
  page.on("pageerror", (err) => emit("page_error", { ...fields, message: String(err && err.message) }));
  page.on("console", (msg) => {
    if (msg.type() === "error") {
      emit("console_error", { ...fields, text: msg.text(), url: msg.location().url || null });
    }
  });
}

// Saves a full-page screenshot of `page` to `path` and reports its size.
export async function saveScreenshot(page, path) {
  await page.screenshot({ path, fullPage: true });
  const st = await stat(path);
  emit("screenshot", { path, bytes: st.size });
}
