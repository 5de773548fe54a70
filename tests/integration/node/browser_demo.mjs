// Drives the fastio chat demo in headless Chromium (Debian's, through playwright-core):
// two pages in one room, a typed message with its typing indicator, a shared image, and a
// screenshot. Protocol as in tests/interop/node/common.mjs: JSON config in argv[2], one JSON
// event per line on stdout.
//
// Config:
//   url             "http://127.0.0.1:PORT/" of `fastio demo` (required)
//   executablePath  the browser, default "/usr/bin/chromium"
//   userDataDir     a fresh, empty profile directory (required)
//   pngPath         a PNG file to share (required)
//   screenshot      where to save the screenshot PNG (required)
//   room            default "r1"
//   text            the message to type, default "hello bob"
//   scenario        "chat" (default): two pages, as below; "alone": one page, and its
//                   header text once it shows "<room>: 1 online" (or after statusTimeoutMs)
//   timeoutMs       hard stop, default 60000
//
// Events:
//   {"event":"launched","version":..}
//   {"event":"joined","who":"alice"|"bob","room":..,"transport":..}
//   {"event":"online","who":"alice","status":..}  the first page counts two people in the room
//   {"event":"status","who":"alice","status":..}  ("alone") the header of the lone page
//   {"event":"typing_shown","who":"bob","text":..}
//   {"event":"message_seen","who":"bob","nick":..,"text":..}
//   {"event":"own_message","who":"alice","nick":..,"text":..}
//   {"event":"typing_cleared","who":"bob"}
//   {"event":"image_seen","who":"bob","nick":..,"naturalWidth":N,"naturalHeight":N,"base64":..}
//   {"event":"screenshot","path":..,"bytes":N}
//   {"event":"page_error","who":..,"message":..}
//   {"event":"console_error","who":..,"text":..,"url":..}
//   {"event":"done"}, then {"event":"exit","code":0}; {"event":"fatal",..} on failure

import { reportPageErrors, runBrowserScript, saveScreenshot, withBrowser } from "./browser_common.mjs";
import { emit } from "../../interop/node/common.mjs";

runBrowserScript(main, ["url", "userDataDir", "pngPath", "screenshot"]);

async function main(cfg) {
  const room = cfg.room || "r1";
  const text = cfg.text || "hello bob";
  await withBrowser(cfg, { viewport: { width: 900, height: 640 } }, async (context) => {
    context.setDefaultTimeout(15000);

    async function open(nick) {
      const page = await context.newPage();
      reportPageErrors(page, { who: nick });
      const url = new URL(cfg.url);
      url.searchParams.set("nick", nick);
      url.searchParams.set("room", room);
      await page.goto(url.toString(), { waitUntil: "load" });
      return page;
    }

    async function joined(page, who) {
      await page.waitForFunction((r) => document.body.dataset.room === r, room);
      const transport = await page.evaluate(() =>
        window.chatSocket && window.chatSocket.io.engine ? window.chatSocket.io.engine.transport.name : null,
      );
      emit("joined", { who, room: await page.evaluate(() => document.body.dataset.room), transport });
    }

    // the nick and text of the last log line of `lines`, once it shows
    async function messageShown(lines) {
      const line = lines.last();
      await line.waitFor();
      return { nick: await line.locator(".nick").textContent(), text: await line.locator(".text").textContent() };
    }

    const alice = await open("alice");
    await joined(alice, "alice");

    if (cfg.scenario === "alone") {
      // one page in the room: its header shows the room's count (itself)
      const want = room + ": 1 online";
      try {
        await alice.waitForFunction((w) => document.getElementById("status").textContent === w, want, {
          timeout: cfg.statusTimeoutMs || 5000,
        });
      } catch (err) {
        // reported, not thrown: the test asserts on the text
      }
      emit("status", { who: "alice", status: await alice.textContent("#status") });
      emit("done");
      return;
    }

    const bob = await open("bob");
    await joined(bob, "bob");

    // the page that was in the room first sees the newcomer in its count
    await alice.waitForFunction((r) => document.getElementById("status").textContent === r + ": 2 online", room);
    emit("online", { who: "alice", status: await alice.textContent("#status") });

    // alice types: bob sees the typing indicator while she types
    await alice.locator("#text").pressSequentially(text, { delay: 15 });
    await bob.waitForFunction(() => document.getElementById("typing").textContent.includes("alice is typing"));
    emit("typing_shown", { who: "bob", text: await bob.textContent("#typing") });

    // alice submits: the message shows on bob's page, and the indicator goes away
    await alice.locator("#text").press("Enter");
    emit("message_seen", { who: "bob", ...(await messageShown(bob.locator("#log .msg", { hasText: text }))) });
    emit("own_message", { who: "alice", ...(await messageShown(alice.locator("#log .msg.mine", { hasText: text }))) });
    await bob.waitForFunction(() => document.getElementById("typing").textContent === "");
    emit("typing_cleared", { who: "bob" });

    // alice shares an image through the file input: bob's page shows it
    await alice.setInputFiles("#file", cfg.pngPath);
    const img = bob.locator("#log img.shared").last();
    await img.waitFor();
    await bob.waitForFunction(() => {
      const el = [...document.querySelectorAll("#log img.shared")].pop();
      return el && el.complete && el.naturalWidth > 0;
    });
    const info = await img.evaluate(async (el) => {
      const buf = new Uint8Array(await (await fetch(el.src)).arrayBuffer());
      let bin = "";
      for (const b of buf) bin += String.fromCharCode(b);
      const line = el.closest(".msg");
      return {
        naturalWidth: el.naturalWidth,
        naturalHeight: el.naturalHeight,
        base64: btoa(bin),
        nick: line && line.querySelector(".nick") ? line.querySelector(".nick").textContent : null,
      };
    });
    emit("image_seen", { who: "bob", ...info });

    await saveScreenshot(bob, cfg.screenshot);
    emit("done");
  });
}
