// The reviewer's decryption worker: the only place the reviewer's age identity ever is.
//
// The page hands it the identity file (a File object: the page itself never reads it) or a
// pasted text, and then asks it to open, play, scan or save a granted recording. The worker
// fetches the ciphertext itself (same origin, the session cookie) and decrypts it with the npm
// `age-encryption` package, chunk by chunk as the bytes arrive: no request it sends carries the
// identity, and plaintext leaves it only as PCM blocks posted to the page's audio graph (and, if
// the grant allows a download, as one WAV blob the page saves). Memory stays bounded: the
// player pulls a few seconds ahead with credits, the waveform is a fixed number of peaks.
//
// Bundled with esbuild by scripts/setup.sh into ../static/bundle/review-worker.js (never
// committed). Messages: see `handlers` below; replies carry the request's `id`.
import { Decrypter, identityToRecipient } from "age-encryption";
import { openedNumbers, sameNumber, searchForm } from "./numbers.js";

const BLOCK_FRAMES = 4096; // one PCM block posted to the page: 0.512 s at 8 kHz
const PEAK_BINS = 1200; // waveform resolution, whatever the length

let identities = null; // the reviewer's identity strings; null when none is loaded
let opened = null; // {grant, decrypter, info, frames, cipherSize}
let player = null; // {gen, cursor, credit, wake}

// -- identity ----------------------------------------------------------------------------

function parseIdentities(text, what) {
  const keys = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  if (keys.length === 0 || keys.some((k) => !k.startsWith("AGE-SECRET-KEY-"))) {
    throw new Error(`${what} is not an age identity file (lines of AGE-SECRET-KEY-…)`);
  }
  return keys;
}

async function loadIdentity({ file, text }) {
  const source = file ? await file.text() : String(text || "");
  const keys = parseIdentities(source, file ? `"${file.name}"` : "the pasted text");
  const recipients = [];
  for (const k of keys) {
    try {
      recipients.push(await identityToRecipient(k));
    } catch (e) {
      throw new Error(`not a valid age identity (${e.message})`);
    }
  }
  identities = keys;
  opened = null;
  stopPlayer();
  return { recipients };
}

function forget() {
  identities = null;
  opened = null;
  stopPlayer();
  return {};
}

// -- fetching and decrypting ---------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function get(url, init = {}) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store", ...init });
  if (!r.ok) {
    let message = `HTTP ${r.status}`;
    try {
      message = (await r.json()).error || message;
    } catch {
      // not JSON: keep the status
    }
    throw new HttpError(r.status, message);
  }
  return r;
}

function decrypterWith(keys) {
  const d = new Decrypter();
  for (const k of keys) d.addIdentity(k);
  return d;
}

async function decrypterFor(grant, ownKey) {
  if (!identities) throw new Error("load your age identity first");
  if (!ownKey) return decrypterWith(identities);
  // A recording with a key of its own: the key is age-encrypted to the operators' recipients.
  const wrapped = new Uint8Array(await (await get(`/api/review/grants/${grant}/key`)).arrayBuffer());
  let text;
  try {
    text = await decrypterWith(identities).decrypt(wrapped, "text");
  } catch (e) {
    throw new Error(`your identity does not open this recording's key (${e.message})`);
  }
  return decrypterWith(parseIdentities(text, "the recording's key"));
}

// Reads a decrypted byte stream with exact-length reads.
class Bytes {
  constructor(stream) {
    this.reader = stream.getReader();
    this.chunks = [];
    this.have = 0;
    this.done = false;
  }

  async fill(n) {
    while (this.have < n && !this.done) {
      const { value, done } = await this.reader.read();
      if (done) this.done = true;
      else if (value.length) {
        this.chunks.push(value);
        this.have += value.length;
      }
    }
  }

  // Up to n bytes (fewer only at the end); an empty array at the end.
  async read(n) {
    await this.fill(n);
    const take = Math.min(n, this.have);
    const out = new Uint8Array(take);
    let off = 0;
    while (off < take) {
      const c = this.chunks[0];
      const k = Math.min(c.length, take - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.have -= take;
    return out;
  }

  cancel() {
    this.reader.cancel().catch(() => {});
  }
}

// The WAV header the recorder writes (RIFF sizes may be 0xFFFFFFFF: "until the end").
async function readWavHeader(bytes) {
  const riff = await bytes.read(12);
  const tag = (b, o) => String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);
  if (riff.length < 12 || tag(riff, 0) !== "RIFF" || tag(riff, 8) !== "WAVE") {
    throw new Error("the decrypted recording is not a WAV file");
  }
  let fmt = null;
  let headerBytes = 12;
  for (let i = 0; i < 16; i++) {
    const h = await bytes.read(8);
    if (h.length < 8) break;
    const dv = new DataView(h.buffer);
    const id = tag(h, 0);
    const size = dv.getUint32(4, true);
    headerBytes += 8;
    if (id === "data") {
      if (!fmt) throw new Error("the WAV file has no fmt chunk before its data");
      return { ...fmt, dataSize: size === 0xffffffff ? null : size, headerBytes };
    }
    if (size > 1 << 16) throw new Error(`the WAV file has an oversized ${id} chunk`);
    const body = await bytes.read(size + (size & 1));
    headerBytes += body.length;
    if (id === "fmt ") {
      const f = new DataView(body.buffer);
      fmt = { format: f.getUint16(0, true), channels: f.getUint16(2, true), rate: f.getUint32(4, true),
        bits: f.getUint16(14, true) };
      if (fmt.format !== 1 || fmt.bits !== 16 || fmt.channels < 1 || fmt.channels > 2) {
        throw new Error(`this player plays 16-bit PCM WAV (this is format ${fmt.format}, ${fmt.bits} bits)`);
      }
    }
  }
  throw new Error("the WAV file has no data chunk");
}

// An open decrypting read of the whole recording from its first byte.
async function openStream(o) {
  const r = await get(`/api/review/grants/${o.grant}/ciphertext`);
  const size = Number(r.headers.get("Content-Length"));
  let plain;
  try {
    plain = await o.decrypter.decrypt(r.body);
  } catch (e) {
    throw new Error(`your identity does not open this recording (${e.message})`);
  }
  const bytes = new Bytes(plain);
  const info = await readWavHeader(bytes);
  const plainSize = Number.isFinite(size) && size > 0 ? plain.size(size) : null;
  const dataBytes = info.dataSize ?? (plainSize == null ? null : plainSize - info.headerBytes);
  const frameBytes = info.channels * 2;
  return { bytes, info, size, frames: dataBytes == null ? null : Math.floor(dataBytes / frameBytes), pos: 0 };
}

// Up to n frames from a cursor, as one Float32Array per channel (null at the end).
async function readFrames(cursor, n) {
  const ch = cursor.info.channels;
  const raw = await cursor.bytes.read(n * ch * 2);
  const frames = Math.floor(raw.length / (ch * 2));
  if (frames === 0) return null;
  const dv = new DataView(raw.buffer, raw.byteOffset, frames * ch * 2);
  const out = Array.from({ length: ch }, () => new Float32Array(frames));
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < ch; c++) out[c][i] = dv.getInt16((i * ch + c) * 2, true) / 32768;
  }
  raw.fill(0);
  cursor.pos += frames;
  return out;
}

// -- opening, the waveform, playback -------------------------------------------------------

async function open({ grant, ownKey }) {
  stopPlayer();
  const decrypter = await decrypterFor(grant, ownKey);
  opened = { grant, decrypter };
  const cursor = await openStream(opened);
  opened.info = cursor.info;
  opened.frames = cursor.frames;
  scan(opened, cursor); // in the background: peaks arrive as "peaks" messages
  return { rate: cursor.info.rate, channels: cursor.info.channels, frames: cursor.frames };
}

async function scan(o, cursor) {
  const ch = cursor.info.channels;
  const total = cursor.frames || 1;
  const per = Math.max(1, Math.ceil(total / PEAK_BINS));
  const peaks = Array.from({ length: ch }, () => new Float32Array(PEAK_BINS));
  let lastPost = 0;
  try {
    for (;;) {
      if (opened !== o) return cursor.bytes.cancel();
      const block = await readFrames(cursor, 16384);
      if (!block) break;
      const start = cursor.pos - block[0].length;
      for (let c = 0; c < ch; c++) {
        const b = block[c];
        for (let i = 0; i < b.length; i++) {
          const bin = Math.min(PEAK_BINS - 1, Math.floor((start + i) / per));
          const v = Math.abs(b[i]);
          if (v > peaks[c][bin]) peaks[c][bin] = v;
        }
        b.fill(0);
      }
      if (cursor.pos - lastPost > total / 20) {
        lastPost = cursor.pos;
        postMessage({ op: "peaks", grant: o.grant, done: cursor.pos / total, peaks: peaks.map((p) => p.slice()) });
      }
    }
    postMessage({ op: "peaks", grant: o.grant, done: 1, frames: cursor.pos, peaks });
  } catch (e) {
    postMessage({ op: "failed", grant: o.grant, what: "waveform", message: e.message, status: e.status });
  }
}

function stopPlayer() {
  if (player) {
    player.stopped = true;
    if (player.cursor) player.cursor.bytes.cancel();
    if (player.wake) player.wake();
    player = null;
  }
}

// Streams PCM from frame `from` while the page grants credit (one credit: one block).
async function play({ from, gen, credit }) {
  if (!opened) throw new Error("no recording is open");
  const o = opened;
  stopPlayer(); // a seek or a new speed: a new read from the start (age STREAM reads in order)
  const p = { gen, cursor: null, credit, wake: null, stopped: false };
  player = p;
  const cursor = await openStream(o);
  if (p.stopped) return cursor.bytes.cancel();
  p.cursor = cursor;
  while (cursor.pos < from) {
    if (p.stopped) return {};
    const skipped = await readFrames(cursor, Math.min(BLOCK_FRAMES * 16, from - cursor.pos));
    if (!skipped) break;
    for (const c of skipped) c.fill(0);
  }
  for (;;) {
    while (p.credit <= 0 && !p.stopped) await new Promise((resolve) => (p.wake = resolve));
    if (p.stopped || opened !== o) return {};
    const at = cursor.pos;
    const block = await readFrames(cursor, BLOCK_FRAMES);
    if (p.stopped) return {};
    if (!block) {
      postMessage({ op: "end", gen, at });
      return {};
    }
    p.credit -= 1;
    postMessage({ op: "pcm", gen, at, channels: block }, block.map((c) => c.buffer));
  }
}

function more({ gen, n }) {
  if (player && player.gen === gen) {
    player.credit += n;
    if (player.wake) player.wake();
  }
  return null; // no reply: credits are fire-and-forget
}

// The whole recording as a WAV blob with its real sizes (only when the grant allows a download).
async function wav() {
  if (!opened) throw new Error("no recording is open");
  const cursor = await openStream(opened);
  const ch = cursor.info.channels;
  const parts = [];
  let dataBytes = 0;
  for (;;) {
    const raw = await cursor.bytes.read(1 << 16);
    if (!raw.length) break;
    parts.push(raw);
    dataBytes += raw.length;
  }
  const h = new DataView(new ArrayBuffer(44));
  const put = (o, s) => [...s].forEach((c, i) => h.setUint8(o + i, c.charCodeAt(0)));
  put(0, "RIFF");
  h.setUint32(4, 36 + dataBytes, true);
  put(8, "WAVE");
  put(12, "fmt ");
  h.setUint32(16, 16, true);
  h.setUint16(20, 1, true);
  h.setUint16(22, ch, true);
  h.setUint32(24, cursor.info.rate, true);
  h.setUint32(28, cursor.info.rate * ch * 2, true);
  h.setUint16(32, ch * 2, true);
  h.setUint16(34, 16, true);
  put(36, "data");
  h.setUint32(40, dataBytes, true);
  return { blob: new Blob([h.buffer, ...parts], { type: "audio/wav" }) };
}

// -- a data subject's calls ------------------------------------------------------------------

// One page of sealed caller numbers ([call id, base64 age file]) compared with the number
// searched for; only the matching call ids leave the worker.
async function match({ number, numbering, numbers }) {
  if (!identities) throw new Error("load your age identity first");
  const target = searchForm(number, numbering);
  const d = decrypterWith(identities);
  const calls = [];
  let unreadable = 0;
  for (const [call, b64] of numbers) {
    let opened;
    try {
      opened = await d.decrypt(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), "text");
    } catch {
      unreadable += 1;
      continue;
    }
    if (openedNumbers(opened).some((n) => sameNumber(n, target, numbering))) calls.push(call);
  }
  return { target, calls: [...new Set(calls)], unreadable, checked: numbers.length };
}

function close() {
  opened = null;
  stopPlayer();
  return {};
}

const handlers = { identity: loadIdentity, forget, open, play, more, wav, close, match };

self.onmessage = async (event) => {
  const { id, op, ...args } = event.data;
  const handler = handlers[op];
  try {
    if (!handler) throw new Error(`unknown request ${op}`);
    const result = await handler(args);
    if (result !== null && id !== undefined) postMessage({ id, ok: true, ...result });
  } catch (e) {
    if (id !== undefined) postMessage({ id, ok: false, message: e.message, status: e.status });
    else postMessage({ op: "failed", what: op, gen: args.gen, message: e.message, status: e.status });
  }
};
