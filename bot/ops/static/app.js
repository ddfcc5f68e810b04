// The status page: one server-sent-events stream of snapshots; charts drawn on canvas.
"use strict";
const history = {};  // rule -> [[ts_ms, window_usd], ...] as the stream brings them
const MAX_POINTS = 2000;
let latest = null;

const $ = (id) => document.getElementById(id);
const usd = (v) => v == null ? "" : "$" + Math.round(v).toLocaleString("en-US");
const when = (ms) => ms == null ? "" : new Date(ms).toISOString().replace("T", " ").slice(0, 19);

function rows(table, items, cells) {
  const body = document.createElement("tbody");
  for (const item of items) {
    const tr = document.createElement("tr");
    for (const cell of cells(item)) {
      const td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = String(cell);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  if (!items.length) body.innerHTML = '<tr><td class="dim">none</td></tr>';
  table.replaceChildren(body);
}

function canvasFor(rule) {
  let c = document.getElementById("chart-" + rule);
  if (!c) {
    const title = document.createElement("div");
    title.textContent = "rule " + rule;
    c = document.createElement("canvas");
    c.id = "chart-" + rule;
    c.className = "chart";
    c.dataset.rule = rule;
    $("charts").append(title, c);
  }
  return c;
}

function draw(rule, thresholds) {
  const c = canvasFor(rule), pts = history[rule];
  c.dataset.points = String(pts.length);
  c.dataset.last = pts.length ? String(pts[pts.length - 1][1]) : "";
  const w = c.width = c.clientWidth || 800, h = c.height = c.clientHeight || 220;
  const g = c.getContext("2d");
  g.clearRect(0, 0, w, h);
  const top = Math.max(thresholds[1] || 1, ...pts.map((p) => p[1])) * 1.1;
  const t0 = pts.length ? pts[0][0] : 0, t1 = pts.length ? pts[pts.length - 1][0] : 1;
  const x = (t) => 50 + (w - 60) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1);
  const y = (v) => h - 20 - (h - 30) * (v / top);
  g.font = "11px sans-serif";
  thresholds.forEach((t, i) => {
    g.strokeStyle = ["#8a6d00", "#c0392b", "#ff00aa", "#aa00ff"][i % 4];
    g.setLineDash([4, 4]); g.beginPath(); g.moveTo(50, y(t)); g.lineTo(w - 10, y(t)); g.stroke();
    g.fillStyle = g.strokeStyle; g.fillText("L" + (i + 1) + " " + usd(t), 52, y(t) - 3);
  });
  g.setLineDash([]); g.strokeStyle = "#4fa3ff"; g.lineWidth = 2; g.beginPath();
  pts.forEach((p, i) => (i ? g.lineTo(x(p[0]), y(p[1])) : g.moveTo(x(p[0]), y(p[1]))));
  g.stroke();
  g.fillStyle = "#8899aa";
  g.fillText(when(t0), 50, h - 5);
  g.fillText(when(t1), w - 130, h - 5);
}

function button(text, cls, onclick) {
  const b = document.createElement("button");
  b.textContent = text; b.className = cls; b.onclick = onclick;
  return b;
}

async function press(what, body) {
  const token = $("token").value;
  const resp = await fetch("/api/" + what, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
    body: JSON.stringify(body || {}),
  });
  const data = await resp.json();
  $("answer").textContent = data.message;
  $("answer").dataset.status = String(resp.status);
  return data;
}

// a runtime change: the diff first, then a confirmation (the same ballots as Telegram)
async function propose() {
  const data = await press("change", { command: $("change").value });
  $("confirm").hidden = !data.request_id;
  $("confirm").onclick = async () => {
    $("confirm").hidden = true;
    await press("confirm", { request_id: data.request_id, approve: true });
  };
}

function render(s) {
  latest = s;
  $("mode").textContent = s.mode;
  $("ladder").textContent = s.ladder;
  $("ladder").className = "pill " + s.ladder;
  $("clock").textContent = when(s.now_ms);
  $("ha").hidden = !s.ha;  // ha: this process's role in its group
  if (s.ha) {
    $("ha").textContent = s.ha.role === "leader"
      ? "HA leader · " + s.ha.group + " · term " + s.ha.term
      : "HA " + s.ha.role + " · " + s.ha.group + " · leader " + (s.ha.leader || "none");
    $("ha").className = "pill ha-" + s.ha.role.replace(" ", "-");
  }
  $("controls").hidden = !s.controls;
  $("readonly").hidden = s.controls;
  for (const r of s.rules) {
    const pts = history[r.rule] = history[r.rule] || [];
    const last = pts[pts.length - 1];
    // a replay's clock reads 0 until its first event: no point at 1970
    if (s.events > 0 && (!last || last[0] !== s.now_ms)) pts.push([s.now_ms, r.window_usd]);
    if (pts.length > MAX_POINTS) pts.shift();
    draw(r.rule, r.thresholds_usd);
  }
  rows($("pending"), s.pending, (p) => [
    p.strategy || p.action_id, "deadline " + when(p.deadline_ts_ms),
    Math.max(0, Math.round((p.deadline_ts_ms - s.now_ms) / 1000)) + " s left",
    ...(s.controls && s.votes ? [
      button("Approve", "approve", () => press("approve", { request_id: p.request_id })),
      button("Reject", "reject", () => press("reject", { request_id: p.request_id })),
    ] : []),
  ]);
  rows($("feeds"), Object.entries(s.feeds), ([venue, f]) => {
    const state = document.createElement("span");
    state.textContent = f.state; state.className = f.state;
    const rejected = document.createElement("span");
    rejected.textContent = (f.rejected || 0) + " rows rejected";
    if (f.last_rejected) rejected.title = "last: " + f.last_rejected;
    return [venue, state, "silent " + Math.round(f.silent_s) + " s", (f.reconnects || 0) + " reconnects",
      rejected];
  });
  $("pnl").textContent = s.pnl_usd == null ? "no paper account" :
    "PnL " + usd(s.pnl_usd) + " · equity " + usd(s.equity_usd);
  rows($("positions"), s.positions || [], (p) => [p.symbol, p.side, p.size, "entry " + usd(p.entry)]);
  rows($("anomalies"), s.anomalies, (a) => [when(a.ts_ms), a.rule, "L" + a.level, usd(a.window_usd)]);
  rows($("actions"), s.actions, (a) => [when(a.ts_ms), a.strategy, a.status, a.detail || ""]);
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("conn").textContent = "live"; };
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = () => { $("conn").textContent = "reconnecting…"; };
}

window.addEventListener("DOMContentLoaded", () => {
  $("pause").onclick = () => press("pause", { reason: "paused from the status page" });
  $("propose").onclick = propose;
  $("resume").onclick = () => {
    if (window.confirm("Resume trading (back to ACTIVE)?")) press("resume");
  };
  connect();
});
