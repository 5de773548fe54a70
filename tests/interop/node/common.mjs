// Shared plumbing for the interop client scripts.
//
// Protocol with the Python side (tests/interop/nodeproc.py):
//   * argv[2] is a JSON object with the scenario configuration;
//   * stdout carries one JSON object per line, each with an "event" key;
//   * stdin carries one JSON object per line, each with a "cmd" key;
//   * a failure prints {"event":"fatal","error":...} and exits non-zero;
//   * every script stops by itself after config.timeoutMs (default 10 s).

import { createInterface } from "node:readline";

export const EXIT_OK = 0;
export const EXIT_FATAL = 1;
export const EXIT_BAD_CONFIG = 2;
export const EXIT_TIMEOUT = 3;

let exiting = false;

// Writes one JSON line. Writes to a pipe are synchronous on Linux and macOS,
// so a line emitted before process.exit() is never lost.
export function emit(event, fields = {}) {
  if (exiting && event !== "fatal" && event !== "exit") return;
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

export function finish(code = EXIT_OK, fields = {}) {
  if (exiting) return;
  emit("exit", { code, ...fields });
  exiting = true;
  process.stdout.write("", () => process.exit(code));
  // in case the write callback never fires (closed pipe)
  setTimeout(() => process.exit(code), 200).unref();
}

export function fail(error, code = EXIT_FATAL) {
  if (exiting) return;
  const message = error instanceof Error ? error.stack || error.message : String(error);
  emit("fatal", { error: message });
  finish(code);
}

export function parseConfig() {
  const raw = process.argv[2];
  if (raw === undefined) {
    fail("usage: node script.mjs '<json config>'", EXIT_BAD_CONFIG);
    return null;
  }
  try {
    const cfg = JSON.parse(raw);
    if (cfg === null || typeof cfg !== "object" || Array.isArray(cfg)) {
      throw new Error("config must be a JSON object");
    }
    return cfg;
  } catch (err) {
    fail(`bad config: ${err.message}`, EXIT_BAD_CONFIG);
    return null;
  }
}

let hardTimer = null;

// The hard stop: whatever happens, the script ends after timeoutMs.
export function armTimeout(timeoutMs) {
  const ms = Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 10000;
  hardTimer = setTimeout(() => fail(`timeout after ${ms} ms`, EXIT_TIMEOUT), ms);
  return hardTimer;
}

// Ends the script with status 0 once the library has nothing left to do
// (e.g. a last request still in flight after a close), or after graceMs at
// the latest. Call `stopInput` first so that stdin does not keep it alive.
export function finishWhenIdle(graceMs, stopInput) {
  if (exiting) return;
  if (stopInput) stopInput();
  if (hardTimer) clearTimeout(hardTimer);
  process.exitCode = 0;
  process.once("exit", (code) => {
    if (exiting) return;
    exiting = true;
    process.stdout.write(JSON.stringify({ event: "exit", code }) + "\n");
  });
  setTimeout(() => finish(0), graceMs).unref();
}

export function installCrashHandlers() {
  process.on("uncaughtException", (err) => fail(err));
  process.on("unhandledRejection", (err) => fail(err));
  // a closed stdout (the parent went away) must not turn into a crash loop
  process.stdout.on("error", () => process.exit(EXIT_FATAL));
}

// The start of a script: the crash handlers, then the config of argv[2]. Returns the config,
// or null (having failed with EXIT_BAD_CONFIG) when it is not a JSON object, when a key of
// `strings` is not a non-empty string, or when a key of `lists` is not an array.
export function loadConfig(strings = [], lists = []) {
  installCrashHandlers();
  const cfg = parseConfig();
  if (!cfg) return null;
  const missing = strings
    .filter((key) => typeof cfg[key] !== "string" || !cfg[key])
    .concat(lists.filter((key) => !Array.isArray(cfg[key])));
  if (missing.length) {
    fail(`config needs ${missing.join(", ")}`, EXIT_BAD_CONFIG);
    return null;
  }
  return cfg;
}

// Starts a script: loadConfig(strings, lists), the hard stop at cfg.timeoutMs (defaultTimeoutMs
// when it is not set, else armTimeout's own default), then main(cfg). A promise that main
// returns fails the script when it rejects; with exitWhenDone, the script also exits 0 once it
// resolves.
export function startScript(main, { strings = [], lists = [], defaultTimeoutMs, exitWhenDone = false } = {}) {
  const cfg = loadConfig(strings, lists);
  if (!cfg) return;
  armTimeout(cfg.timeoutMs || defaultTimeoutMs);
  const result = main(cfg);
  if (exitWhenDone) {
    result.then(
      () => finish(0),
      (err) => fail(err),
    );
  } else if (result && typeof result.catch === "function") {
    result.catch(fail);
  }
}

// Reads JSON commands from stdin; `handler(cmd)` may be async. Commands run
// one after another, in arrival order. When stdin ends (the parent closed
// it or died) `onEnd` runs. Returns a function that stops reading (without
// running `onEnd`).
export function readCommands(handler, onEnd) {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let chain = Promise.resolve();
  let stopped = false;
  rl.on("line", (line) => {
    if (stopped) return;
    const text = line.trim();
    if (!text) return;
    let cmd;
    try {
      cmd = JSON.parse(text);
    } catch (err) {
      fail(`bad command line ${JSON.stringify(text)}: ${err.message}`);
      return;
    }
    chain = chain.then(() => handler(cmd)).catch((err) => fail(err));
  });
  rl.on("close", () => {
    if (!stopped) chain.then(() => onEnd && onEnd());
  });
  return () => {
    stopped = true;
    rl.close();
    process.stdin.destroy();
  };
}

// The last case of a script's command switch: {"cmd":"exit"} ends the script at once (status
// 0); any other command is an error.
export function exitOrUnknown(cmd) {
  if (cmd.cmd === "exit") {
    finish(0);
    return;
  }
  throw new Error(`unknown command ${JSON.stringify(cmd)}`);
}

// Binary payloads travel as base64 inside the JSON lines.
export function toBase64(data) {
  if (Buffer.isBuffer(data)) return data.toString("base64");
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString("base64");
  if (ArrayBuffer.isView(data)) {
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");
  }
  throw new TypeError(`not binary data: ${Object.prototype.toString.call(data)}`);
}

export function isBinary(data) {
  return Buffer.isBuffer(data) || data instanceof ArrayBuffer || ArrayBuffer.isView(data);
}

// Builds the binary value to send: "buffer" (Node Buffer, the default),
// "arraybuffer" or "uint8array".
export function fromBase64(b64, as = "buffer") {
  const buf = Buffer.from(b64, "base64");
  switch (as) {
    case "buffer":
      return buf;
    case "arraybuffer":
      return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    case "uint8array":
      return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    default:
      throw new Error(`unknown binary kind ${JSON.stringify(as)}`);
  }
}

// Makes close/error details JSON-safe (they may be Errors, CloseEvents...).
export function describe(value) {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object") return value;
  if (value instanceof Error) {
    const out = { message: value.message };
    if (value.code !== undefined) out.code = value.code;
    if (value.type !== undefined) out.type = value.type;
    if (value.description !== undefined) out.description = describe(value.description);
    if (value.transport !== undefined) out.transport = value.transport;
    return out;
  }
  const out = {};
  for (const key of ["message", "description", "code", "reason", "wasClean", "type", "status"]) {
    if (value[key] !== undefined) out[key] = describe(value[key]);
  }
  if (value.context !== undefined && value.context !== null) {
    const ctx = value.context;
    const c = {};
    for (const key of ["code", "reason", "wasClean", "status", "statusText", "responseText"]) {
      if (ctx[key] !== undefined) c[key] = typeof ctx[key] === "object" ? String(ctx[key]) : ctx[key];
    }
    out.context = c;
  }
  return out;
}
