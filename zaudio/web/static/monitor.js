// The monitor page: one WebSocket (/ws/monitor) pushing JSON updates:
//   {"type":"list", ok, nodes, streams}             every second (the proxy's list;
//                                                   node.what: what `zaudio ls` shows)
//   {"type":"levels", streams: {name: {rms, peak, db, freq, spec, ...}}}  ~15/s
//   {"type":"results", results: [{processor, stream, t, data, ...}]}
// Draws per-stream meters and scrolling spectrograms, and the results and nodes tables.

const $ = (id) => document.getElementById(id);
const rows = new Map();     // stream name -> {el, meter, bar, text, canvas, ctx, last}
const results = new Map();  // processor -> {tr, last}
let retry = 1;

// A dark-to-bright colour map (black, purple, red, orange, pale yellow), 256 entries.
const STOPS = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];
const CMAP = Array.from({ length: 256 }, (_, i) => {
  const x = (i / 255) * (STOPS.length - 1);
  const k = Math.min(Math.floor(x), STOPS.length - 2);
  const f = x - k;
  return STOPS[k].map((a, j) => Math.round(a + (STOPS[k + 1][j] - a) * f));
});

function setState(state, detail) {
  const el = $("state");
  el.textContent = state;
  el.dataset.state = state;
  $("detail").textContent = detail || "";
}

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function row(name, bands) {
  let r = rows.get(name);
  if (r) return r;
  const box = el("div", { class: "stream", "data-stream": name });
  const left = el("div");
  left.append(el("div", { class: "name" }, name));
  const text = el("div", { class: "small" }, "");
  const meter = el("div", { class: "meter", "data-level": "0", "data-db": "-100", "data-updates": "0" });
  const bar = el("div", { class: "bar" });
  meter.append(bar);
  left.append(meter, text);
  const canvas = el("canvas", { class: "spectrogram", width: "400", height: String(bands) });
  box.append(left, canvas);
  $("streams").append(box);
  $("nostreams").hidden = true;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  r = { el: box, meter, bar, text, canvas, ctx, last: performance.now(), updates: 0,
        column: ctx.createImageData(1, bands) };
  rows.set(name, r);
  return r;
}

function onLevels(streams) {
  for (const [name, s] of Object.entries(streams)) {
    const r = row(name, s.spec.length);
    r.last = performance.now();
    r.updates++;
    r.el.classList.remove("stale");
    const rms = Math.max(...s.rms);
    const pct = Math.max(0, Math.min(100, ((s.db + 60) / 60) * 100));
    r.bar.style.width = pct + "%";
    r.bar.style.setProperty("--full", pct > 0 ? (10000 / pct) + "%" : "100%");
    r.meter.dataset.level = rms.toFixed(4);
    r.meter.dataset.db = s.db.toFixed(1);
    r.meter.dataset.freq = String(s.freq);
    r.meter.dataset.updates = String(r.updates);
    r.text.textContent = `${s.db > -100 ? s.db.toFixed(1) : "-inf"} dBFS · peak ` +
      `${Math.max(...s.peak).toFixed(3)} · ~${Math.round(s.freq)} Hz · ${s.rate} Hz × ` +
      `${s.channels} · ${s.blocks} blocks · ${s.gaps} gaps`;
    // scroll one pixel left, draw the new column at the right (low frequencies at the bottom)
    const { canvas, ctx, column } = r;
    const w = canvas.width, h = canvas.height;
    ctx.drawImage(canvas, 1, 0, w - 1, h, 0, 0, w - 1, h);
    const px = column.data;
    for (let b = 0; b < h; b++) {
      const c = CMAP[s.spec[b]];
      const o = (h - 1 - b) * 4;
      px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2]; px[o + 3] = 255;
    }
    ctx.putImageData(column, w - 1, 0);
  }
}

function age(t) {
  const s = Date.now() / 1000 - t;
  return s < 1 ? "now" : s < 120 ? `${s.toFixed(0)} s` : `${(s / 60).toFixed(0)} min`;
}

function onResults(list) {
  const body = $("results").tBodies[0];
  for (const res of list) {
    let r = results.get(res.processor);
    if (!r) {
      const tr = el("tr", { "data-processor": res.processor });
      tr.append(el("td", {}, res.processor), el("td"), el("td"), el("td", { class: "data" }));
      body.append(tr);
      r = { tr };
      results.set(res.processor, r);
    }
    r.t = res.t;
    const cells = r.tr.cells;
    cells[1].textContent = res.stream;
    cells[2].textContent = age(res.t);
    cells[3].textContent = JSON.stringify(res.data);
  }
}

function onList(msg) {
  if (!msg.ok) {
    setState("error", msg.error);
    return;
  }
  setState("live", `${msg.nodes.length} node(s), ${msg.streams.length} stream(s)`);
  const body = $("nodes").tBodies[0];
  body.replaceChildren();
  const now = Date.now() / 1000;
  const sorted = [...msg.nodes].sort((a, b) => (a.role + a.name).localeCompare(b.role + b.name));
  for (const n of sorted) {
    const counters = Object.entries(n.stats || {})
      .filter(([, v]) => typeof v === "number")
      .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(" · ");
    const up = typeof n.since === "number" ? `${Math.max(0, now - n.since).toFixed(0)} s` : "-";
    const tr = el("tr", { "data-node": n.name });
    for (const cell of [n.role, n.name, n.host, n.pid, n.what || "-", up, counters]) {
      tr.append(el("td", {}, String(cell)));
    }
    body.append(tr);
  }
  const known = new Set(msg.streams.map((s) => s.name));
  for (const [name, r] of rows) {
    const idle = performance.now() - r.last;
    if (idle > 3000) r.el.classList.add("stale");
    if (idle > 10000 && !known.has(name)) { r.el.remove(); rows.delete(name); }
  }
  $("nostreams").hidden = rows.size > 0;
  for (const r of results.values()) r.tr.cells[2].textContent = age(r.t);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws/monitor`);
  ws.onopen = () => { retry = 1; setState("connecting", "waiting for the proxy"); };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "levels") onLevels(msg.streams);
    else if (msg.type === "results") onResults(msg.results);
    else if (msg.type === "list") onList(msg);
  };
  ws.onclose = () => {
    setState("error", `lost the server; reconnecting in ${retry} s`);
    setTimeout(connect, retry * 1000);
    retry = Math.min(retry * 2, 10);
  };
}

connect();
