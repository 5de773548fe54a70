// Node's Engine.IO v3 parser (engine.io-parser 2.x, as socket.io-client 2.x ships it) as the
// reference for fastio's v3 polling payloads.  argv[2]: {"encode": [{"packets", "supportsBinary"}],
// "decode": [payload]}, where a packet is {"type", "data"} and binary values (packet data or a
// binary payload) are {"$bin": base64}.  Prints {"event": "result", "encoded": [...],
// "decoded": [[packet, ...], ...]} and exits.
import { createRequire } from "node:module";
import { emit, fail, finish, parseConfig } from "./common.mjs";

const require = createRequire(import.meta.url);
const parser = createRequire(require.resolve("socket.io-client-v2"))("engine.io-parser");

const fromWire = (v) => (v && typeof v === "object" && "$bin" in v ? Buffer.from(v.$bin, "base64") : v);
const toWire = (v) => (Buffer.isBuffer(v) ? { $bin: v.toString("base64") } : v);

const cfg = parseConfig();
if (cfg) {
  try {
    const encoded = (cfg.encode || []).map(({ packets, supportsBinary }) => {
      let out;
      parser.encodePayload(packets.map((p) => ({ type: p.type, data: fromWire(p.data) })), supportsBinary,
        (payload) => { out = payload; });
      return toWire(out);
    });
    const decoded = (cfg.decode || []).map((payload) => {
      const packets = [];
      parser.decodePayload(fromWire(payload), (packet) => {
        packets.push({ type: packet.type, data: toWire(packet.data) });
      });
      return packets;
    });
    emit("result", { encoded, decoded });
    finish();
  } catch (err) {
    fail(err);
  }
}
