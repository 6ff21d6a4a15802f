// Live view of the consent gateway. Everything that comes from the server is put on the page
// with textContent, never as HTML: a caller's display name is attacker-controlled.
"use strict";

const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const CSRF = meta("csrf");
const ROLE = meta("role");
const PERMS = new Set(meta("perms").split(",").filter(Boolean));
const rows = new Map(); // call id -> {tr, data}
let serverSkew = 0; // server clock minus ours, seconds
let backoff = 500;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function pill(value) {
  return el("span", { class: `pill ${value}`, text: value });
}

function fmtDuration(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${String(sec).padStart(2, "0")}`;
}

function fmtBytes(n) {
  if (n == null) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(1)} GiB`;
}

function setStatus(text, down) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.classList.toggle("down", !!down);
}

// -- live calls -------------------------------------------------------------------------------

async function act(call, op, button) {
  if (op === "stop" && !confirm("Stop recording this call? What was recorded so far is kept; nothing more is recorded.")) return;
  button.disabled = true;
  try {
    const r = await fetch(`/api/calls/${encodeURIComponent(call)}/${op}`, {
      method: "POST", headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) setStatus(`${op} refused: ${body.error || r.status}`, true);
  } finally {
    button.disabled = false;
  }
}

function actionsFor(d) {
  const td = el("td", { class: "actions" });
  if (!PERMS.has("control") || d.state !== "bridged") return td;
  if (d.recording === "recording") {
    td.append(el("button", { "data-op": "pause", text: "Pause", onclick: (e) => act(d.call, "pause", e.target) }));
  }
  if (d.recording === "paused") {
    td.append(el("button", { "data-op": "resume", text: "Resume", onclick: (e) => act(d.call, "resume", e.target) }));
  }
  if (d.recording === "recording" || d.recording === "paused") {
    td.append(el("button", { "data-op": "stop", text: "Stop recording", onclick: (e) => act(d.call, "stop", e.target) }));
  }
  return td;
}

function duration(d) {
  const end = d.ended != null ? d.ended : Date.now() / 1000 + serverSkew;
  return fmtDuration(end - d.started);
}

function render(d) {
  const caller = el("td", { class: "caller", "data-field": "caller" },
    el("span", { class: "masked", text: d.caller_masked || "(no number)" }),
    el("span", { class: "display", "data-field": "display", text: d.caller_display || "" }));
  const rec = el("td", { "data-field": "recording" }, pill(d.recording));
  if (d.by && ["paused", "stopped", "saved"].includes(d.recording)) {
    // "saved" follows a stop: say who stopped it, not who "saved" it (the gateway saves).
    const who = d.by.replace(/^dashboard:/, "");
    rec.append(el("span", { class: "by", text: d.recording === "saved" ? ` (stopped by ${who})` : ` by ${who}` }));
  }
  const tr = el("tr", { "data-call": d.call, class: d.state === "ended" ? "ended" : "" },
    caller,
    el("td", { "data-field": "route",
      text: [d.route, d.language, d.kind === "siprec" ? "SIPREC" : ""].filter(Boolean).join(" · ") }),
    el("td", { "data-field": "state" }, pill(d.state)),
    el("td", { "data-field": "consent" }, pill(d.consent)),
    rec,
    el("td", { class: "num", "data-field": "duration", text: duration(d) }),
    el("td", { class: "num", "data-field": "sealed", text: fmtBytes(d.bytes_sealed) }),
    el("td", { "data-field": "node", text: d.node || "" }),
    el("td", { "data-field": "worker", text: d.worker }),
    actionsFor(d));
  if (d.reason && d.state === "ended") tr.title = d.reason;
  return tr;
}

function upsert(d) {
  const tbody = document.querySelector("#calls tbody");
  const tr = render(d);
  const old = rows.get(d.call);
  if (old) old.tr.replaceWith(tr);
  else tbody.prepend(tr);
  rows.set(d.call, { tr, data: d });
  document.getElementById("no-calls").hidden = rows.size > 0;
}

function remove(call) {
  const old = rows.get(call);
  if (old) old.tr.remove();
  rows.delete(call);
  document.getElementById("no-calls").hidden = rows.size > 0;
}

function card(key, label, value, bad) {
  return el("div", { class: `card${bad ? " bad" : ""}`, "data-card": key },
    el("div", { class: "k", text: label }), el("div", { class: "v", text: value }));
}

function renderSummary(s) {
  const ready = s.workers.filter((w) => w.ready).length;
  const rate = s.today ? s.today.opt_out_rate : null; // none for a user scoped to tenants
  const st = s.storage || {};
  const lowDisk = st.free_ratio != null && st.free_ratio < 0.1;
  document.getElementById("summary").replaceChildren(
    card("live", "Live calls", String(s.live_calls)),
    card("recording", "Recording now", String(s.recording_calls)),
    card("capacity", "Workers / capacity", `${ready}/${s.workers.length} · ${s.capacity_calls} calls`, ready < s.workers.length),
    ...(s.today ? [card("optout", "Opt-out today", rate == null ? "–" : `${(rate * 100).toFixed(1)} %`)] : []),
    card("failopen", "Fail-open (unrecorded)", String(s.failopen), s.failopen > 0),
    card("storage", "Spool free · errors", `${fmtBytes(st.free_bytes)} · ${st.errors ?? 0}`, lowDisk || st.errors > 0),
    ...(s.nodes && s.nodes.length > 1 ? [card("nodes", "Nodes",
      s.nodes.map((n) => `${n.name} ${n.ready}/${n.workers}`).join(" · "), s.nodes.some((n) => n.ready < n.workers))] : []),
    ...(st.upload_pending == null ? [] : [card("upload", "Waiting for object store",
      `${st.upload_pending}${st.upload_failing ? " · store unreachable" : ""}`, st.upload_failing)]));
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.onopen = () => { backoff = 500; setStatus("Connected: live updates"); };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.t === "snapshot") {
      serverSkew = m.now - Date.now() / 1000;
      for (const call of [...rows.keys()]) remove(call);
      for (const d of m.calls) upsert(d);
      renderSummary(m.summary);
    } else if (m.t === "call") {
      upsert(m.call);
    } else if (m.t === "gone") {
      remove(m.call);
    } else if (m.t === "summary") {
      renderSummary(m.summary);
    }
  };
  ws.onclose = (ev) => {
    if (ev.code === 4001) { location.assign("/login"); return; }
    setStatus(`disconnected; reconnecting in ${Math.round(backoff / 1000)} s`, true);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 10000);
  };
}

setInterval(() => {
  for (const { tr, data } of rows.values()) {
    if (data.ended == null) tr.querySelector('[data-field="duration"]').textContent = duration(data);
  }
}, 1000);

// -- auditor: audit log and recordings' metadata ---------------------------------------------

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) { location.assign("/login"); throw new Error("logged out"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || String(r.status));
  return body;
}

function table(headers, rowsData) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rowsData.map((cells) => el("tr", {}, ...cells.map((c) => el("td", { text: c == null ? "" : String(c) }))))));
}

async function showAudit() {
  const sec = document.getElementById("audit-section");
  const [a, r] = await Promise.all([getJSON("/api/audit?limit=200"), getJSON("/api/recordings")]);
  const chain = a.chain.ok
    ? el("p", { class: "chain-ok", id: "chain", text: `Audit chain intact: ${a.chain.entries} entries, head ${a.chain.head_hash.slice(0, 16)}…` })
    : el("p", { class: "chain-bad", id: "chain", text: `Audit chain BROKEN at entry ${a.chain.problem.seq} (${a.chain.problem.kind}): ${a.chain.problem.message}` });
  sec.replaceChildren(el("h2", { text: "Audit log" }), chain,
    table(["#", "time", "actor", "action", "subject", "details"],
      a.entries.map((e) => [e.seq, e.ts, e.actor, e.action, e.subject, JSON.stringify(e.details)])),
    el("h2", { text: "Recordings (metadata only: the gateway holds no key to play them)" }),
    table(["id", "started", "status", "duration", "size", "route", "signed", "on hold"],
      r.recordings.map((x) => [x.id, x.started_at, x.status, x.duration_s == null ? "" : `${x.duration_s.toFixed(1)} s`,
        fmtBytes(x.bytes), x.route, x.signed ? "yes" : "no", x.held ? "yes" : ""])));
  sec.querySelector("table").id = "audit-table";
}

// -- admin: users ---------------------------------------------------------------------------

async function post(url, body) {
  const r = await fetch(url, { method: "POST", credentials: "same-origin",
    headers: { "X-CSRF-Token": CSRF, "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || String(r.status));
  return data;
}

async function showUsers() {
  const sec = document.getElementById("users-section");
  const u = await getJSON("/api/users");
  const msg = el("p", { role: "status" });
  const name = el("input", { name: "name", placeholder: "name", required: "", maxlength: "32" });
  const role = el("select", { name: "role" }, ...u.roles.map((r) => el("option", { value: r, text: r })));
  const pw = el("input", { name: "password", type: "password", placeholder: "password (10+ characters)", required: "", autocomplete: "new-password" });
  const form = el("form", { onsubmit: async (e) => {
    e.preventDefault();
    try { await post("/api/users", { name: name.value, role: role.value, password: pw.value }); await showUsers(); }
    catch (err) { msg.textContent = err.message; }
  } }, name, role, pw, el("button", { type: "submit", text: "Add user" }));
  const tbl = el("table", {}, el("thead", {}, el("tr", {}, ...["name", "role", "locked", "last login", ""].map((h) => el("th", { text: h })))),
    el("tbody", {}, ...u.users.map((x) => el("tr", { "data-user": x.name },
      el("td", { text: x.name }), el("td", { text: x.role }), el("td", { text: x.locked ? `yes (${x.failures} failures)` : "" }),
      el("td", { text: x.last_login ? new Date(x.last_login * 1000).toLocaleString() : "never" }),
      el("td", {},
        el("button", { text: "Unlock", onclick: async () => { try { await post(`/api/users/${encodeURIComponent(x.name)}/unlock`); await showUsers(); } catch (err) { msg.textContent = err.message; } } }),
        el("button", { text: "Remove", onclick: async () => {
          if (!confirm(`Remove user ${x.name}?`)) return;
          try { await post(`/api/users/${encodeURIComponent(x.name)}/remove`); await showUsers(); } catch (err) { msg.textContent = err.message; } } }))))));
  sec.replaceChildren(el("h2", { text: "Users" }), msg, tbl, form);
}

// -- tabs -----------------------------------------------------------------------------------

function tabs() {
  const nav = document.getElementById("tabs");
  const list = PERMS.has("live") ? [["live", "Live calls", "live-section", null]] : [];
  if (PERMS.has("recordings")) list.push(["recordings", "Recordings", "recordings-section", showRecordings]);
  if (PERMS.has("review") || PERMS.has("approve")) list.push(["requests", "Access requests", "requests-section", showRequests]);
  if (PERMS.has("subject")) list.push(["subject", "Subject request", "subject-section", showSubject]);
  if (PERMS.has("audit")) list.push(["audit", "Audit", "audit-section", showAudit]);
  if (PERMS.has("users")) list.push(["users", "Users", "users-section", showUsers]);
  if (!PERMS.has("live")) document.getElementById("live-section").hidden = true;
  if (list.length === 0 || (list.length === 1 && list[0][0] === "live")) return;
  const select = (id) => {
    for (const [key, , sec] of list) {
      document.getElementById(sec).hidden = key !== id;
      nav.querySelector(`[data-tab="${key}"]`).setAttribute("aria-selected", String(key === id));
    }
    const load = list.find((t) => t[0] === id)[3];
    if (load) load().catch((e) => setStatus(e.message, true));
  };
  for (const [key, label] of list) nav.append(el("button", { "data-tab": key, text: label, onclick: () => select(key) }));
  select(list[0][0]);
}

document.getElementById("who").textContent = `${meta("user")} (${ROLE})`;
document.getElementById("logout-csrf").value = CSRF;
tabs();
if (PERMS.has("live")) connect();
else setStatus("Recordings: metadata and access requests. Listening needs an approved request and your own age identity.");
