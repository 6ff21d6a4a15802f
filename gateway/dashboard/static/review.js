// Review: recordings' metadata and consent receipts, access requests and their decisions, and
// the player. The page never sees the reviewer's age identity: the file goes straight to the
// decryption worker (/static/bundle/review-worker.js, built from the npm age-encryption package
// by scripts/setup.sh), which fetches the ciphertext itself and posts back PCM blocks that are
// played with Web Audio and dropped once heard. Nothing is put in storage, cookies or the URL.
// Uses app.js's helpers (el, pill, getJSON, post, setStatus, fmtDuration, fmtBytes, PERMS); it is
// loaded first, and app.js calls showRecordings / showRequests when their tab opens.
"use strict";

const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
const CATEGORIES = ["complaint", "quality", "subject_request", "legal", "other"];
const NO_KEY = "Load your age identity to listen: it stays in this tab's memory only, and only while you use it.";
const AHEAD_BLOCKS = 8; // PCM blocks (0.5 s each) the worker may send ahead of the playhead

// -- the decryption worker ---------------------------------------------------------------------

const review = { worker: null, seq: 0, pending: new Map(), recipients: null, player: null, query: {}, me: null };

function ageWorker() {
  if (!review.worker) {
    const w = new Worker("/static/bundle/review-worker.js");
    w.onmessage = (ev) => {
      const m = ev.data;
      const p = m.id !== undefined ? review.pending.get(m.id) : null;
      if (p) {
        review.pending.delete(m.id);
        if (m.ok) p.resolve(m);
        else p.reject(Object.assign(new Error(m.message), { status: m.status }));
      } else if (review.player) {
        review.player.onWorker(m);
      }
    };
    w.onerror = (ev) => {
      ev.preventDefault();
      keyStatus(`The decryption worker failed to start (${ev.message || "is it built? run scripts/setup.sh"}).`, true);
    };
    review.worker = w;
  }
  return review.worker;
}

function ask(op, args = {}) {
  const id = ++review.seq;
  return new Promise((resolve, reject) => {
    review.pending.set(id, { resolve, reject });
    ageWorker().postMessage({ id, op, ...args });
  });
}

function tell(op, args = {}) {
  if (review.worker) review.worker.postMessage({ op, ...args });
}

// Forget the identity: the worker (and with it every key and plaintext it held) is ended.
function forgetKey(why) {
  closePlayer();
  if (review.worker) review.worker.terminate();
  review.worker = null;
  for (const p of review.pending.values()) p.reject(new Error("the key was forgotten"));
  review.pending.clear();
  review.recipients = null;
  keyStatus(why || NO_KEY);
}

// Every tab that plays or searches has its key box; they all show the one key's state.
function keyStatus(text, bad) {
  for (const s of document.querySelectorAll(".key-status")) {
    s.textContent = text;
    s.classList.toggle("error", !!bad);
  }
  for (const f of document.querySelectorAll(".key-forget")) f.hidden = !review.recipients;
}

async function loadKey(args) {
  try {
    const r = await ask("identity", args);
    review.recipients = r.recipients;
    keyStatus(`Key ready for ${r.recipients.map((x) => x.slice(0, 16) + "…").join(", ")}: held only in this tab's decryption worker, never sent.`);
  } catch (e) {
    review.recipients = null;
    keyStatus(e.message, true);
  }
}

function keyBox() {
  const file = el("input", { type: "file", class: "key-file", accept: ".txt,.key,text/plain", "aria-label": "age identity file" });
  file.addEventListener("change", async () => {
    const f = file.files[0];
    file.value = ""; // the page keeps no reference to the file
    if (f) await loadKey({ file: f });
  });
  const paste = el("textarea", { class: "key-paste", rows: "2", placeholder: "…or paste AGE-SECRET-KEY-…", autocomplete: "off",
    spellcheck: "false", "aria-label": "pasted age identity" });
  const use = el("button", { type: "button", class: "key-use", text: "Use pasted key", onclick: async () => {
    const text = paste.value;
    paste.value = "";
    await loadKey({ text });
  } });
  const forget = el("button", { type: "button", class: "key-forget", text: "Forget key", hidden: "", onclick: () => forgetKey() });
  const box = el("div", { class: "key-box" },
    el("label", { text: "Your age identity: " }, file), paste, use, forget, el("p", { class: "key-status", role: "status" }));
  return box;
}

// The page's "to" date includes that day; the API's `until` is the first instant left out.
function dayAfter(date) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

// -- recordings -------------------------------------------------------------------------------

// The consent outcomes the index lists (consent/receipt.py Outcome), as the page names them.
const CONSENT = {
  silence: "granted: no decline key",
  key: "granted by key",
  "client-header": "granted: client's header",
  "client-metadata": "granted: client's metadata",
  window: "granted: window ended",
  declined: "declined",
  withdrawn: "withdrawn",
};

function recordingsUrl(after) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(review.query)) if (v) q.set(k, v);
  if (after) q.set("after", after);
  return `/api/recordings?${q}`;
}

async function showRecordings() {
  const sec = document.getElementById("recordings-section");
  const f = (name, attrs = {}) => el("input", { name, ...attrs });
  const status = el("select", { name: "status" }, el("option", { value: "", text: "any status" }),
    ...["complete", "truncated", "incomplete", "discarded", "deleted"].map((s) => el("option", { value: s, text: s })));
  const held = el("select", { name: "held" }, el("option", { value: "", text: "held or not" }),
    el("option", { value: "yes", text: "on hold" }), el("option", { value: "no", text: "not held" }));
  const consent = el("select", { name: "consent" }, el("option", { value: "", text: "any consent" }),
    ...Object.entries(CONSENT).map(([v, t]) => el("option", { value: v, text: t })));
  const form = el("form", { id: "rec-filters", class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    review.query = {};
    for (const [k, v] of data.entries()) if (v) review.query[k] = k === "until" ? dayAfter(String(v)) : String(v);
    listRecordings(null).catch((err) => setStatus(err.message, true));
  } },
  el("label", { text: "From " }, f("since", { type: "date" })), el("label", { text: "to " }, f("until", { type: "date" })),
  f("route", { placeholder: "route", maxlength: "64" }), f("node", { placeholder: "node", maxlength: "64" }),
  f("language", { placeholder: "language (sv)", maxlength: "3", pattern: "[a-z]{2,3}", size: "6" }),
  consent, status, held,
  el("select", { name: "order" }, el("option", { value: "", text: "newest first" }), el("option", { value: "oldest", text: "oldest first" })),
  el("button", { type: "submit", text: "Search" }));
  const tbl = el("table", { id: "rec-table" }, el("thead", {}, el("tr", {},
    ...["started", "duration", "status", "consent", "route", "node", "lang", "key", "hold", ""].map((h) => el("th", { text: h })))), el("tbody"));
  sec.replaceChildren(el("h2", { text: "Recordings" }),
    el("p", { class: "hint", text: "Metadata only. Listening needs an approved access request and your own age identity; the server holds no key that plays a recording." }),
    ...(PERMS.has("review") ? [keyBox()] : []), form, tbl,
    el("button", { id: "rec-more", hidden: "", text: "Older recordings", onclick: () => listRecordings(review.next).catch((e) => setStatus(e.message, true)) }),
    el("section", { id: "rec-detail", "aria-live": "polite" }), el("section", { class: "player", hidden: "" }));
  if (PERMS.has("review")) keyStatus(review.recipients ? "Key ready." : NO_KEY);
  await listRecordings(null);
}

async function listRecordings(after) {
  const r = await getJSON(recordingsUrl(after));
  const body = document.querySelector("#rec-table tbody");
  if (!after) body.replaceChildren();
  for (const x of r.recordings) {
    body.append(el("tr", { "data-rec": x.id, tabindex: "0", class: "clickable", onclick: () => showRecording(x.id, "rec-detail"),
      onkeydown: (e) => { if (e.key === "Enter") showRecording(x.id, "rec-detail"); } },
      el("td", { text: new Date(x.started_at).toLocaleString() }),
      el("td", { class: "num", text: x.duration_s == null ? "–" : fmtDuration(x.duration_s) }),
      el("td", {}, pill(x.status)),
      el("td", { class: "consent", text: x.consent ? CONSENT[x.consent] || x.consent : (x.origin === "legacy" ? "imported" : "–") }),
      el("td", { text: x.route || "" }), el("td", { text: x.node || "" }), el("td", { text: x.language || "" }),
      el("td", { text: x.own_key ? "own" : "" }), el("td", { text: x.held ? "held" : "" }),
      el("td", {}, el("button", { type: "button", text: "Open" }))));
  }
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: "10", text: "No recordings match." })));
  review.next = r.next;
  document.getElementById("rec-more").hidden = !r.next;
}

function receiptView(rc) {
  if (!rc) return el("p", { text: "No consent receipt is stored for this recording." });
  const dl = el("dl", { class: "receipt" });
  const row = (k, v) => { if (v != null && v !== "") dl.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
  row("decision", rc.decision || rc.state);
  row("mode", rc.mode);
  row("route", rc.route);
  if (rc.language) row("language", `${rc.language.code} (chosen by ${rc.language.chosen_by})`);
  if (rc.prompt) {
    row("notice heard", `${rc.prompt.id} v${rc.prompt.version} (${rc.prompt.language}), ${(rc.prompt.played_ms / 1000).toFixed(1)} s played`);
    row("notice sha256", rc.prompt.sha256);
  }
  if (rc.siprec) row("SIPREC", JSON.stringify(rc.siprec));
  row("keys", rc.digits.length ? rc.digits.map((d) => `${d.digit} at ${d.t.toFixed(2)} s (${d.effect}${d.via ? `, ${d.via}` : ""})`).join("; ") : "none pressed");
  row("answered", rc.answered_at);
  row("decided", rc.decided_at);
  row("reason", rc.reason);
  return el("div", {}, dl, el("details", {}, el("summary", { text: "Whole receipt" }), el("pre", { text: JSON.stringify(rc, null, 2) })));
}

function grantRow(g, policy) {
  const mine = g.requester === meta("user");
  const actions = el("td", { class: "actions" });
  const act = (op, label, confirmText) => el("button", { type: "button", "data-op": op, text: label, onclick: async (e) => {
    if (confirmText && !confirm(confirmText)) return;
    e.target.disabled = true;
    try {
      await post(`/api/review/grants/${encodeURIComponent(g.id)}/${op}`, {});
      await refreshReview();
    } catch (err) {
      setStatus(`${label} refused: ${err.message}`, true);
      e.target.disabled = false;
    }
  } });
  const selfGrant = mine && policy && !policy.four_eyes; // a small site's choice, audited
  if (g.state === "requested" && ((PERMS.has("approve") && !mine) || selfGrant)) {
    actions.append(act("approve", mine ? "Grant myself" : "Approve", mine ? "Four eyes are off on this gateway: grant yourself access? It is audited." : null),
      act("deny", "Deny"));
  }
  if (g.state === "approved" && mine && g.category === "erasure" && PERMS.has("subject")) {
    actions.append(act("erase", "Erase now", "Erase this recording and forget its caller's number? This cannot be undone (a held recording is kept)."));
  } else if (g.state === "approved" && mine && PERMS.has("review")) {
    actions.append(el("button", { type: "button", "data-op": "play", text: "Play", onclick: () => openPlayer(g).catch((err) => setStatus(err.message, true)) }));
  }
  if ((g.state === "approved" || g.state === "requested") && (PERMS.has("approve") || mine)) {
    actions.append(act("revoke", mine && g.state === "requested" ? "Withdraw" : "Revoke", "End this access now?"));
  }
  const when = g.expires_at && g.state === "approved" ? `until ${new Date(g.expires_at * 1000).toLocaleString()}` : "";
  return el("tr", { "data-grant": g.id },
    el("td", { text: g.recording }), el("td", { text: g.requester }), el("td", { text: g.category }),
    el("td", { class: "reason", text: g.reason }), el("td", {}, pill(g.state)),
    el("td", { text: [g.decided_by, g.self_granted ? "(self)" : ""].filter(Boolean).join(" ") }),
    el("td", { text: when }), actions);
}

function grantsTable(list, policy) {
  return el("table", { class: "grants" }, el("thead", {}, el("tr", {},
    ...["recording", "requester", "category", "reason", "state", "decided by", "expires", ""].map((h) => el("th", { text: h })))),
  el("tbody", {}, ...list.map((g) => grantRow(g, policy))));
}

async function showRecording(id, boxId) {
  review.current = id;
  if (boxId) review.detailBox = boxId;
  const [d, gl] = await Promise.all([getJSON(`/api/recordings/${encodeURIComponent(id)}`),
    getJSON("/api/review/grants").catch(() => ({ grants: [], policy: null }))]);
  const r = d.recording;
  const box = document.getElementById(review.detailBox || "rec-detail");
  const meta_ = el("dl", { class: "meta" });
  for (const [k, v] of [["recording", r.id], ["started", r.started_at], ["ended", r.finished_at], ["status", r.status],
    ["duration", r.duration_s == null ? null : fmtDuration(r.duration_s)], ["size", fmtBytes(r.bytes)], ["route", r.route],
    ["origin", r.origin], ["format", `${r.media_type}, ${r.sample_rate} Hz, ${r.channels} channels`],
    ["key", r.own_key ? "a key of its own (wrapped)" : "the operators' recipients"], ["signed", r.signed ? "yes" : "no"],
    ["retention", r.retention_days == null ? null : `${r.retention_days} days`]]) {
    if (v != null && v !== "") meta_.append(el("dt", { text: k }), el("dd", { text: String(v) }));
  }
  const parts = [el("h2", { text: `Recording ${r.id}` }), meta_, el("h3", { text: "Consent receipt" }), receiptView(d.receipt)];
  if (d.holds.length) {
    parts.push(el("h3", { text: "Legal holds" }), el("ul", {}, ...d.holds.map((h) => el("li", { text: `${h.reason} (${h.actor}, ${h.created_at})` }))));
  }
  if (PERMS.has("holds")) parts.push(holdForm(r.id, d.holds.length > 0));
  parts.push(el("h3", { text: "Access" }), d.grants.length ? grantsTable(d.grants, gl.policy) : el("p", { text: "No access requests for this recording." }));
  if (PERMS.has("review")) parts.push(requestForm(r.id, gl.policy));
  box.replaceChildren(...parts);
}

function holdForm(recId, held) {
  const reason = el("input", { name: "reason", maxlength: "500", required: "", size: "40",
    placeholder: held ? "why the hold ends" : "why it must be kept (case, complaint…)" });
  const msg = el("p", { role: "status" });
  const op = held ? "release" : "hold";
  const form = el("form", { id: "hold-form", class: "request", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await post(`/api/recordings/${encodeURIComponent(recId)}/${op}`, { reason: reason.value });
      await showRecording(recId);
    } catch (err) {
      msg.textContent = err.message;
      msg.className = "error";
    }
  } }, reason, el("button", { type: "submit", "data-op": op, text: held ? "Release hold" : "Place legal hold" }), msg);
  return el("div", {}, el("h3", { text: held ? "Release the hold" : "Place a legal hold" }), el("p", { class: "hint", text: held
    ? "On hold: retention and erasure keep it until the hold is released."
    : "A held recording is kept through retention and erasure until released." }), form);
}

function requestForm(recId, policy) {
  const cats = PERMS.has("subject") ? [...CATEGORIES, "erasure"] : CATEGORIES;
  const category = el("select", { name: "category" }, ...cats.map((c) => el("option", { value: c, text: c === "erasure" ? "erasure (data subject)" : c.replace("_", " ") })));
  const reason = el("textarea", { name: "reason", rows: "2", maxlength: "500", required: "", placeholder: "Why you need to hear this call (complaint reference, …)" });
  const msg = el("p", { role: "status" });
  const form = el("form", { id: "request-form", class: "request", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await post("/api/review/grants", { recording: recId, category: category.value, reason: reason.value });
      await showRecording(recId);
    } catch (err) {
      msg.textContent = err.message;
      msg.className = "error";
    }
  } }, el("label", { text: "Category " }, category), reason, el("button", { type: "submit", text: "Request access" }), msg);
  const note = policy && !policy.four_eyes
    ? el("p", { class: "warn", text: "Four eyes are OFF on this gateway: you may grant your own requests. Every self-grant is logged and audited." })
    : el("p", { class: "hint", text: "An approver other than you decides; access lasts a limited time and every fetch is audited." });
  return el("div", {}, el("h3", { text: "Request access" }), note, form);
}

// -- access requests (approvers, reviewers, auditors) ---------------------------------------------

async function showRequests() {
  const sec = document.getElementById("requests-section");
  const gl = await getJSON("/api/review/grants");
  const p = gl.policy;
  const open = gl.grants.filter((g) => g.state === "requested");
  sec.replaceChildren(el("h2", { text: "Access requests" }),
    p.four_eyes ? el("p", { class: "hint", text: `Four eyes: a request is decided by an approver who did not make it. Access lasts ${Math.round(p.grant_s / 3600)} h${p.allow_download ? "; downloads allowed" : ""}.` })
      : el("p", { class: "warn", id: "four-eyes-off", text: "Four eyes are OFF: reviewers may grant their own requests (audited as self-granted)." }),
    ...(PERMS.has("review") ? [keyBox()] : []),
    el("h3", { text: `Waiting for a decision (${open.length})` }), grantsTable(open, p),
    el("h3", { text: "All requests" }), grantsTable(gl.grants.filter((g) => g.state !== "requested"), p),
    el("section", { class: "player", hidden: "" }));
  if (PERMS.has("review")) keyStatus(review.recipients ? "Key ready." : NO_KEY);
}

async function refreshReview() {
  const rq = document.getElementById("requests-section");
  if (rq && !rq.hidden) await showRequests();
  const box = review.detailBox && document.getElementById(review.detailBox);
  if (box && !box.closest("section[hidden]") && review.current) await showRecording(review.current);
}

// -- a data subject's calls (the officer) ----------------------------------------------------------

const MAX_PAGES = 4000; // 2 million calls at 500 a page: a bound, not a limit anyone should meet

async function showSubject() {
  const sec = document.getElementById("subject-section");
  const number = el("input", { name: "number", id: "subject-number", required: "", autocomplete: "off", size: "22",
    placeholder: "+46 70 123 45 67" });
  const since = el("input", { name: "since", type: "date" });
  const until = el("input", { name: "until", type: "date" });
  const progress = el("p", { id: "subject-progress", role: "status" });
  const results = el("div", { id: "subject-results" });
  const form = el("form", { id: "subject-form", class: "filters", onsubmit: async (e) => {
    e.preventDefault();
    const typed = number.value;
    number.value = ""; // the number stays in this page's memory only while it is searched
    try {
      await subjectSearch(typed, since.value, until.value, progress, results);
    } catch (err) {
      progress.textContent = err.message;
      progress.className = "error";
    }
  } }, el("label", { text: "Caller number " }, number), el("label", { text: "From " }, since),
  el("label", { text: "to " }, until), el("button", { type: "submit", text: "Search" }));
  sec.replaceChildren(el("h2", { text: "Data-subject request" }),
    el("p", { class: "hint", text: "The gateway stores caller numbers encrypted. This page fetches them for the period, decrypts them here with your identity and compares; the server learns only which calls matched, never the number you searched for." }),
    keyBox(), form, progress, results, el("section", { id: "subject-detail" }), el("section", { class: "player", hidden: "" }));
  keyStatus(review.recipients ? "Key ready." : NO_KEY);
}

async function subjectSearch(typed, since, until, progress, results) {
  if (!review.recipients) throw new Error("Load your age identity first: it decrypts the numbers, here.");
  progress.className = "";
  results.replaceChildren();
  const base = new URLSearchParams();
  if (since) base.set("since", since);
  if (until) base.set("until", dayAfter(until));
  let label = "", after = "", checked = 0, unreadable = 0, target = "";
  const calls = [];
  for (let page = 0; page < MAX_PAGES; page++) {
    const q = new URLSearchParams(base);
    if (label) q.set("label", label);
    if (after) q.set("after", after);
    const r = await getJSON(`/api/subject/numbers?${q}`);
    label = r.label;
    const m = await ask("match", { number: typed, numbering: r.numbering, numbers: r.numbers });
    target = m.target;
    checked += m.checked;
    unreadable += m.unreadable;
    calls.push(...m.calls);
    progress.textContent = `Checked ${checked} numbers; ${calls.length} calls match so far…`;
    if (!r.next) break;
    after = r.next;
  }
  typed = "";
  const found = await post("/api/subject/found", { label, calls });
  progress.textContent = `${target}: ${found.calls.length} calls, ${found.recordings.length} recordings `
    + `(checked ${checked} numbers${unreadable ? `; ${unreadable} not readable with your key` : ""}). Request ${label}.`;
  const tbl = el("table", { id: "subject-table" }, el("thead", {}, el("tr", {},
    ...["started", "duration", "status", "route", "hold", ""].map((h) => el("th", { text: h })))),
  el("tbody", {}, ...found.recordings.map((x) => el("tr", { "data-rec": x.id },
    el("td", { text: new Date(x.started_at).toLocaleString() }),
    el("td", { class: "num", text: x.duration_s == null ? "–" : fmtDuration(x.duration_s) }),
    el("td", {}, pill(x.status)), el("td", { text: x.route || "" }), el("td", { text: x.held ? "held" : "" }),
    el("td", {}, el("button", { type: "button", text: "Open", onclick: () => showRecording(x.id, "subject-detail").catch((e) => setStatus(e.message, true)) }))))));
  results.replaceChildren(found.recordings.length ? tbl : el("p", { text: "No recordings of this number in the period." }));
}

// -- the player ------------------------------------------------------------------------------

class Player {
  constructor(grant, info, box) {
    this.grant = grant;
    this.rate = info.rate;
    this.channels = info.channels;
    this.frames = info.frames || 0;
    this.box = box;
    this.gen = 0;
    this.speed = 1;
    this.sched = [];
    this.pos = 0; // frames, where playback is (or paused)
    this.playing = false;
    this.peaks = null;
    this.ctx = new AudioContext({ sampleRate: this.rate, latencyHint: "playback" });
    this.ctx.suspend();
    this.splitter = this.ctx.createChannelSplitter(2);
    this.merger = this.ctx.createChannelMerger(2);
    this.gains = [this.ctx.createGain(), this.ctx.createGain()];
    this.muted = [false, false];
    this.solo = -1;
    for (let c = 0; c < 2; c++) {
      this.splitter.connect(this.gains[c], this.channels === 1 ? 0 : c);
      this.gains[c].connect(this.merger, 0, c);
    }
    this.merger.connect(this.ctx.destination);
    this.tick = this.tick.bind(this);
    this.raf = requestAnimationFrame(this.tick);
  }

  position() {
    const now = this.ctx.currentTime;
    for (const s of this.sched) {
      if (now >= s.t0 && now < s.t1) return s.at + (now - s.t0) * this.rate * this.speed;
    }
    return this.pos;
  }

  start(from) {
    this.gen += 1;
    for (const s of this.sched) { s.src.onended = null; try { s.src.stop(); } catch { /* not started */ } }
    this.sched = [];
    this.pos = Math.max(0, Math.min(from, Math.max(0, this.frames - 1)));
    this.nextT = 0;
    this.ended = false;
    tell("play", { from: Math.floor(this.pos), gen: this.gen, credit: AHEAD_BLOCKS });
  }

  onWorker(m) {
    if (m.op === "peaks" && m.grant === this.grant.id) {
      this.peaks = m.peaks;
      if (m.frames) this.frames = m.frames;
      const scan = this.box.querySelector("[data-field=scan]");
      if (scan) {
        scan.textContent = m.done >= 1 ? "" : `waveform ${Math.round(m.done * 100)} %`;
        if (m.done >= 1) this.box.dataset.scanned = "1";
      }
      this.draw();
    } else if (m.op === "pcm" && m.gen === this.gen) {
      const n = m.channels[0].length;
      const buf = this.ctx.createBuffer(m.channels.length, n, this.rate);
      m.channels.forEach((c, i) => buf.copyToChannel(c, i));
      const src = this.ctx.createBufferSource();
      src.buffer = buf;
      src.playbackRate.value = this.speed;
      src.connect(this.splitter);
      const t0 = Math.max(this.nextT, this.ctx.currentTime + 0.05);
      this.nextT = t0 + n / this.rate / this.speed;
      const s = { t0, t1: this.nextT, at: m.at, src };
      this.sched.push(s);
      src.onended = () => {
        this.sched = this.sched.filter((x) => x !== s);
        this.pos = m.at + n;
        tell("more", { gen: this.gen, n: 1 });
        if (this.ended && !this.sched.length) this.finish();
      };
      src.start(t0);
    } else if (m.op === "end" && m.gen === this.gen) {
      this.ended = true;
      if (!this.sched.length) this.finish();
    } else if (m.op === "failed") {
      this.fail(m);
    }
  }

  fail(m) {
    const ended = m.status === 403 || m.status === 404;
    setStatus(ended ? `Access ended: ${m.message}` : `Playback failed: ${m.message}`, true);
    if (ended) closePlayer();
  }

  finish() {
    this.playing = false;
    this.ctx.suspend();
    this.pos = this.frames;
    this.render();
  }

  toggle() {
    if (this.playing) {
      this.playing = false;
      this.pos = this.position();
      this.ctx.suspend();
    } else {
      this.playing = true;
      if (this.ended || !this.sched.length) this.start(this.pos >= this.frames - 1 ? 0 : this.pos);
      this.ctx.resume();
    }
    this.render();
  }

  seek(frame) {
    this.start(frame);
    if (this.playing) this.ctx.resume();
    this.render();
  }

  setSpeed(v) {
    this.speed = v;
    this.seek(this.position());
  }

  setMute(c, on) {
    this.muted[c] = on;
    this.applyGains();
  }

  setSolo(c) {
    this.solo = this.solo === c ? -1 : c;
    this.applyGains();
  }

  applyGains() {
    for (let c = 0; c < 2; c++) {
      const audible = this.solo === -1 ? !this.muted[c] : this.solo === c;
      this.gains[c].gain.value = audible ? 1 : 0;
    }
    this.render();
  }

  draw() {
    for (let c = 0; c < 2; c++) {
      const cv = this.box.querySelector(`canvas[data-channel="${c}"]`);
      if (!cv || !this.peaks) continue;
      const p = this.peaks[this.channels === 1 ? 0 : c];
      const g = cv.getContext("2d");
      g.clearRect(0, 0, cv.width, cv.height);
      g.fillStyle = c === 0 ? "#2f6fb3" : "#1b6e3a";
      const mid = cv.height / 2;
      const w = cv.width / p.length;
      for (let i = 0; i < p.length; i++) {
        const h = Math.max(1, p[i] * mid);
        g.fillRect(i * w, mid - h, Math.max(1, w), 2 * h);
      }
    }
  }

  render() {
    const b = this.box;
    const pos = this.position();
    const t = this.frames ? pos / this.frames : 0;
    for (const head of b.querySelectorAll(".playhead")) head.style.left = `${(t * 100).toFixed(3)}%`;
    b.querySelector("[data-field=time]").textContent = `${fmtDuration(pos / this.rate)} / ${fmtDuration(this.frames / this.rate)}`;
    b.querySelector("button[data-op=toggle]").textContent = this.playing ? "Pause" : "Play";
    for (let c = 0; c < 2; c++) {
      b.querySelector(`button[data-op=mute][data-channel="${c}"]`).setAttribute("aria-pressed", String(this.muted[c]));
      b.querySelector(`button[data-op=solo][data-channel="${c}"]`).setAttribute("aria-pressed", String(this.solo === c));
    }
    const range = b.querySelector("input[type=range]");
    if (document.activeElement !== range) range.value = String(Math.round(t * 1000));
  }

  tick() {
    if (this.closed) return;
    this.render();
    this.raf = requestAnimationFrame(this.tick);
  }

  close() {
    this.closed = true;
    this.gen += 1;
    cancelAnimationFrame(this.raf);
    for (const s of this.sched) { s.src.onended = null; try { s.src.stop(); } catch { /* not started */ } s.src.buffer = null; }
    this.sched = [];
    this.peaks = null;
    this.ctx.close();
    tell("close");
  }
}

function closePlayer() {
  if (review.player) review.player.close();
  review.player = null;
  for (const box of document.querySelectorAll(".player")) {
    box.hidden = true;
    box.replaceChildren();
  }
  document.removeEventListener("keydown", playerKeys);
}

function playerKeys(e) {
  const p = review.player;
  if (!p || ["INPUT", "TEXTAREA", "SELECT"].includes(e.target.tagName)) return;
  const step = 5 * p.rate;
  const speedAt = SPEEDS.indexOf(p.speed);
  const keys = {
    " ": () => p.toggle(),
    k: () => p.toggle(),
    ArrowLeft: () => p.seek(Math.max(0, p.position() - step)),
    ArrowRight: () => p.seek(p.position() + step),
    Home: () => p.seek(0),
    "[": () => p.setSpeed(SPEEDS[Math.max(0, speedAt - 1)]),
    "]": () => p.setSpeed(SPEEDS[Math.min(SPEEDS.length - 1, speedAt + 1)]),
    1: () => p.setMute(0, !p.muted[0]),
    2: () => p.setMute(1, !p.muted[1]),
    "!": () => p.setSolo(0),
    "@": () => p.setSolo(1),
    Escape: () => closePlayer(),
  };
  const f = keys[e.key];
  if (f) {
    e.preventDefault();
    f();
    const sel = document.querySelector(".player select[name=speed]");
    if (sel) sel.value = String(p.speed);
  }
}

async function openPlayer(g) {
  if (!review.recipients) {
    keyStatus("Load your age identity first (file or paste): it never leaves this tab.", true);
    document.querySelector("main > section:not([hidden]) .key-file")?.focus();
    return;
  }
  closePlayer();
  const box = document.querySelector("main > section:not([hidden]) .player");
  if (!box) return;
  const detail = await getJSON(`/api/recordings/${encodeURIComponent(g.recording)}`);
  const info = await ask("open", { grant: g.id, ownKey: detail.recording.own_key });
  box.hidden = false;
  const p = new Player(g, info, box);
  review.player = p;
  const channel = (c, label) => el("div", { class: "channel" },
    el("div", { class: "label" }, el("span", { text: label }),
      el("button", { type: "button", "data-op": "mute", "data-channel": String(c), "aria-pressed": "false", text: "Mute", onclick: () => p.setMute(c, !p.muted[c]) }),
      el("button", { type: "button", "data-op": "solo", "data-channel": String(c), "aria-pressed": "false", text: "Solo", onclick: () => p.setSolo(c) })),
    el("div", { class: "wave", onclick: (e) => {
      const r = e.currentTarget.getBoundingClientRect();
      p.seek(((e.clientX - r.left) / r.width) * p.frames);
    } }, el("canvas", { width: "1200", height: "80", "data-channel": String(c), "aria-label": `${label} waveform` }), el("div", { class: "playhead" })));
  const speed = el("select", { name: "speed", "aria-label": "speed", onchange: () => p.setSpeed(Number(speed.value)) },
    ...SPEEDS.map((s) => el("option", { value: String(s), text: `${s}×` })));
  speed.value = "1";
  const range = el("input", { type: "range", min: "0", max: "1000", value: "0", "aria-label": "position",
    onchange: () => p.seek((Number(range.value) / 1000) * p.frames) });
  const controls = el("div", { class: "controls" },
    el("button", { type: "button", "data-op": "toggle", text: "Play", onclick: () => p.toggle() }), range,
    el("span", { "data-field": "time", class: "num" }), speed, el("span", { "data-field": "scan", class: "hint" }));
  if (g.allow_download) {
    controls.append(el("button", { type: "button", "data-op": "download", text: "Download WAV", onclick: () => downloadWav(g).catch((e) => setStatus(e.message, true)) }));
  }
  controls.append(el("button", { type: "button", "data-op": "close", text: "Close", onclick: () => closePlayer() }));
  box.replaceChildren(el("h3", { text: `Playing ${g.recording}` }),
    el("p", { class: "hint", text: `Under ${g.requester}'s access, approved by ${g.decided_by || "?"}; until ${new Date(g.expires_at * 1000).toLocaleString()}. Decrypted in this tab only; closing the player releases it.` }),
    channel(0, "Caller (channel 0)"), channel(1, "Helpline (channel 1)"), controls,
    el("p", { class: "hint keys", text: "Keys: Space play/pause · ←/→ 5 s · Home start · [ ] speed · 1/2 mute caller/helpline · Shift+1/2 solo · Esc close" }));
  document.addEventListener("keydown", playerKeys);
  p.toggle(); // plays at once: the click on Play is the page's user gesture for audio
  p.render();
  box.scrollIntoView({ block: "nearest" });
}

async function downloadWav(g) {
  await post(`/api/review/grants/${encodeURIComponent(g.id)}/download`, {}); // audited, or refused
  const { blob } = await ask("wav");
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: `recording-${g.recording}.wav` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

window.addEventListener("pagehide", () => forgetKey());
