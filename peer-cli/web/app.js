// The web interface of `peer daemon`: plain JavaScript, no build step, no
// network but the daemon's own control API (docs/API.md). The session cookie
// (HttpOnly, SameSite=Strict) is sent by the browser; every change is a
// same-origin fetch, so it carries an Origin header the daemon checks.
"use strict";

const $ = (sel) => document.querySelector(sel);
const POLL_MS = 1000;
let detailId = null;
// The open torrent's stream URLs (GET /torrents/ID/streams), once its metadata is here.
let streams = { id: null, files: null };
let removeId = null;
let loggedIn = false;
let timer = null;

// ---- formatting ---------------------------------------------------------------
function bytes(n) {
  if (n == null) return "\u2013";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + " " + u[i];
}
const rate = (n) => (n ? bytes(n) + "/s" : "\u2013");
function eta(s) {
  if (s == null) return "\u221e";
  if (s === 0) return "\u2013";
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}
const ratio = (r) => (r == null ? "\u2013" : r.toFixed(2));
const pct = (p) => (p * 100).toFixed(1).replace(/\.0$/, "") + "%";
function when(unix) {
  if (!unix) return "never";
  const ago = Math.max(0, Math.round(Date.now() / 1000 - unix));
  return new Date(unix * 1000).toLocaleTimeString() + " (" + eta(ago) + " ago)";
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}
function bar(p) {
  const b = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0",
    "aria-valuemax": "100", "aria-valuenow": String(Math.round(p * 100)) },
    el("span"), el("b"));
  setBar(b, p);
  return b;
}
function setBar(b, p) {
  b.firstChild.style.width = pct(p);
  b.lastChild.textContent = pct(p);
  b.setAttribute("aria-valuenow", String(Math.round(p * 100)));
}

// ---- the API ------------------------------------------------------------------
class HttpError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let v = null;
  try { v = await r.json(); } catch (_) { v = null; }
  if (!r.ok) {
    if (r.status === 401) showLogin();
    throw new HttpError(r.status, (v && v.error) || "HTTP " + r.status);
  }
  return v;
}
let sayTimer = null;
function say(text, isError) {
  const m = $("#message");
  m.textContent = text;
  m.className = isError ? "error" : "";
  clearTimeout(sayTimer);
  // Good news fades after a while; errors stay until the next message.
  if (!isError) sayTimer = setTimeout(() => { m.textContent = ""; }, 8000);
}

// ---- login state -------------------------------------------------------------
function showLogin() {
  loggedIn = false;
  $("#login").hidden = false;
  $("#app").hidden = true;
  $("#logout").hidden = true;
}
function showApp() {
  if (loggedIn) return;
  loggedIn = true;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
}

// ---- the torrent list --------------------------------------------------------
function rowFor(t) {
  const name = el("button", { type: "button", class: "link", "data-role": "open",
    onclick: () => openDetail(t.id) });
  const pauseButton = el("button", { type: "button", "data-action": "toggle",
    onclick: (ev) => toggle(ev.currentTarget.dataset.id, ev.currentTarget.dataset.paused === "1") });
  const remove = el("button", { type: "button", class: "danger", "data-action": "remove",
    onclick: () => askRemove(t.id) }, "Remove");
  // Sequential download on/off (`POST /torrents/ID/order`).
  const seqButton = el("button", { type: "button", "data-action": "sequential",
    onclick: (ev) => setSequential(t.id, ev.currentTarget.getAttribute("aria-pressed") !== "true") }, "In order");
  const tr = el("tr", { "data-id": t.id },
    el("td", { class: "name" }, name, el("div", { class: "labels" }), el("div", { class: "err" })),
    el("td", { class: "state", "data-label": "State" }),
    el("td", { class: "progress" }, bar(0)),
    el("td", { class: "num", "data-label": "Down" }),
    el("td", { class: "num", "data-label": "Up" }),
    el("td", { class: "num", "data-label": "Peers" }),
    el("td", { class: "num", "data-label": "Ratio" }),
    el("td", { class: "num", "data-label": "ETA" }),
    el("td", { class: "actions" }, pauseButton, seqButton, remove));
  return tr;
}
// The state, and while the disk holds the torrent back, how much waits for it
// (`waiting_for_disk`, `disk_queued`).
const diskNote = (t) => (t.waiting_for_disk ? "waiting for disk" + (t.disk_queued ? ", " + bytes(t.disk_queued) + " queued" : "") : "");
const stateText = (t) => t.state + (t.waiting_for_disk ? " (" + diskNote(t) + ")" : "");
function updateRow(tr, t) {
  const c = tr.children;
  tr.className = "st-" + t.state;
  tr.dataset.state = t.state;
  tr.classList.toggle("disk-wait", !!t.waiting_for_disk);
  const open = c[0].firstChild;
  open.textContent = t.name;
  open.setAttribute("aria-label", "Details of " + t.name);
  c[0].lastChild.textContent = t.error || "";
  // Labels (issue 23: the automation tools' categories), as tags.
  const labels = t.labels || [];
  const tags = c[0].children[1];
  if (tags.dataset.labels !== labels.join("\n")) {
    tags.dataset.labels = labels.join("\n");
    tags.replaceChildren(...labels.map((l) => el("span", { class: "tag" }, l)));
    tags.setAttribute("aria-label", labels.length ? "Labels: " + labels.join(", ") : "");
  }
  c[1].textContent = stateText(t);
  setBar(c[2].firstChild, t.progress);
  c[2].firstChild.setAttribute("aria-label", "Progress of " + t.name);
  c[3].textContent = rate(t.download_rate);
  c[4].textContent = rate(t.upload_rate);
  c[5].textContent = t.peers + (t.seeds ? " (" + t.seeds + " seeds)" : "");
  c[6].textContent = ratio(t.ratio);
  c[7].textContent = t.state === "downloading" ? eta(t.eta) : "\u2013";
  const tg = c[8].firstChild;
  tg.dataset.id = t.id;
  tg.dataset.paused = t.paused ? "1" : "0";
  tg.textContent = t.paused ? "Resume" : "Pause";
  tg.setAttribute("aria-label", (t.paused ? "Resume " : "Pause ") + t.name);
  tg.disabled = t.state === "metadata" || (t.state === "failed" && !t.pieces_total);
  const seq = c[8].children[1];
  seq.setAttribute("aria-pressed", t.sequential ? "true" : "false");
  seq.classList.toggle("on", !!t.sequential);
  seq.title = t.sequential ? "Downloading in order: click for rarest-first" : "Download in order (to play while it downloads)";
  seq.setAttribute("aria-label", "Sequential download of " + t.name);
  seq.disabled = t.state === "metadata";
  c[8].lastChild.setAttribute("aria-label", "Remove " + t.name);
}
function renderList(list) {
  const body = $("#rows");
  const seen = new Set();
  let prev = null;
  for (const t of list) {
    seen.add(t.id);
    let tr = body.querySelector('tr[data-id="' + t.id + '"]');
    if (!tr) tr = rowFor(t);
    updateRow(tr, t);
    const want = prev ? prev.nextSibling : body.firstChild;
    if (want !== tr) body.insertBefore(tr, want);
    prev = tr;
  }
  for (const tr of [...body.children]) if (!seen.has(tr.dataset.id)) tr.remove();
  $("#empty").hidden = list.length > 0;
  $("#list").hidden = list.length === 0;
}
function renderStatus(s) {
  $("#t-down").textContent = rate(s.download_rate);
  $("#t-up").textContent = rate(s.upload_rate);
  $("#t-downloaded").textContent = bytes(s.downloaded);
  $("#t-uploaded").textContent = bytes(s.uploaded);
  $("#t-peers").textContent = s.peers;
  $("#t-torrents").textContent = s.torrents + (s.fetching_metadata ? " (+" + s.fetching_metadata + " fetching)" : "");
  const dir = $("#add-dir");
  if (!dir.value) dir.value = localStorage.getItem("peer.dir") || s.download_dir || "";
  kv($("#session-info"), [
    ["Peers connect to", (s.listen_addrs && s.listen_addrs.length ? s.listen_addrs : [s.listen_addr]).join(", ")],
    ["DHT node", s.dht_addr || "off"],
    ["Port mapping", s.port_mapping ? (s.port_mapping.message || s.port_mapping.state) : "off"],
    ["External address (as others see us)", (s.external_addresses || []).map((e) => e.ip + " (" + e.source + ")").join(", ") || "not known yet"],
    ["Control API and this page", s.control_addr || location.host],
    ["Peer ID", s.peer_id],
    ["Downloading / seeding / paused", s.downloading + " / " + s.seeding + " / " + s.paused],
  ]);
}
function kv(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v == null ? "\u2013" : v)]));
}

// One poll at a time: a refresh asked for while one runs happens right after it.
let polling = false;
let again = false;
async function refresh() {
  if (polling) { again = true; return; }
  polling = true;
  clearTimeout(timer);
  try {
    const [s, list] = await Promise.all([api("GET", "/status"), api("GET", "/torrents")]);
    showApp();
    renderStatus(s);
    renderList(list);
    if (detailId) await refreshDetail();
  } catch (e) {
    if (e.status !== 401) say(e.message, true);
  } finally {
    polling = false;
  }
  if (again) { again = false; refresh(); return; }
  if (loggedIn) timer = setTimeout(refresh, POLL_MS);
}

// ---- actions -----------------------------------------------------------------
async function toggle(id, paused) {
  try {
    await api("POST", "/torrents/" + id + (paused ? "/resume" : "/pause"), {});
    say(paused ? "Resumed." : "Paused.");
  } catch (e) { say(e.message, true); }
  refresh();
}
async function setSequential(id, on) {
  try {
    await api("POST", "/torrents/" + id + "/order", { sequential: on });
    say(on ? "Downloading in order." : "Downloading rarest-first.");
  } catch (e) { say(e.message, true); }
  refresh();
}
function askRemove(id) {
  removeId = id;
  const tr = $('#rows tr[data-id="' + id + '"]');
  $("#remove-name").textContent = tr ? tr.querySelector(".link").textContent : id;
  $("#remove-data").checked = false;
  $("#remove-dialog").showModal();
}
$("#remove-dialog").addEventListener("close", async () => {
  const d = $("#remove-dialog");
  if (d.returnValue !== "remove" || !removeId) return;
  const id = removeId;
  removeId = null;
  try {
    const v = await api("DELETE", "/torrents/" + id + "?delete_data=" + $("#remove-data").checked);
    say(v.data_deleted ? "Removed, data deleted." : "Removed.");
    if (detailId === id) closeDetail();
  } catch (e) { say(e.message, true); }
  refresh();
});
function addBody(extra) {
  const dir = $("#add-dir").value.trim();
  if (!dir) throw new Error("Say where to save it (an absolute directory).");
  localStorage.setItem("peer.dir", dir);
  return Object.assign({ dir, paused: $("#add-paused").checked,
    sequential: $("#add-sequential").checked }, extra);
}
async function add(extra, form) {
  try {
    const v = await api("POST", "/torrents", addBody(extra));
    say("Added " + v.name + (v.state === "metadata" ? " (fetching the metadata)." : "."));
    form.reset();
  } catch (e) { say(e.message, true); }
  refresh();
}
$("#form-magnet").addEventListener("submit", (ev) => {
  ev.preventDefault();
  add({ magnet: $("#add-magnet").value.trim() }, ev.target);
});
// A torrent's labels (issue 23), edited in its detail view: comma-separated.
$("#form-labels").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = detailId;
  if (!id) return;
  const labels = $("#detail-labels").value.split(",").map((l) => l.trim()).filter((l) => l);
  try {
    const v = await api("POST", "/torrents/" + id + "/labels", { labels });
    say(v.labels.length ? "Labels: " + v.labels.join(", ") + "." : "Labels removed.");
    $("#detail-labels").blur();
  } catch (e) { say(e.message, true); }
  refresh();
});
$("#form-url").addEventListener("submit", (ev) => {
  ev.preventDefault();
  say("Fetching\u2026");
  add({ url: $("#add-url").value.trim() }, ev.target);
});
$("#form-file").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = $("#add-file").files[0];
  if (!f) return;
  const buf = new Uint8Array(await f.arrayBuffer());
  let bin = "";
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
  add({ torrent: btoa(bin) }, ev.target);
});
$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/web/logout", {}); } catch (_) { /* already out */ }
  showLogin();
});

// ---- the detail view ---------------------------------------------------------
function openDetail(id) {
  detailId = id;
  $("#detail").hidden = false;
  $("#torrents").hidden = true;
  $("#add").hidden = true;
  $("#detail-h").textContent = "\u2026";
  refreshDetail().then(() => $("#detail").focus());
}
function closeDetail() {
  const id = detailId;
  detailId = null;
  $("#detail").hidden = true;
  $("#torrents").hidden = false;
  $("#add").hidden = false;
  const b = id && $('#rows tr[data-id="' + id + '"] .link');
  if (b) b.focus();
}
$("#detail-close").addEventListener("click", closeDetail);
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && detailId && !$("#remove-dialog").open) closeDetail();
});
function rows(table, list, cells) {
  table.tBodies[0].replaceChildren(...list.map((x) => el("tr", {}, ...cells(x).map((c) =>
    c instanceof Node ? el("td", {}, c) : el("td", typeof c === "number" ? { class: "num" } : {}, c)))));
}
async function refreshDetail() {
  const id = detailId;
  let t, d;
  try {
    [t, d] = await Promise.all([api("GET", "/torrents/" + id), api("GET", "/torrents/" + id + "/details")]);
  } catch (e) {
    if (e.status === 404) { closeDetail(); say("That torrent is gone.", true); }
    return;
  }
  if (id !== detailId) return;
  $("#detail-h").textContent = t.name;
  kv($("#detail-info"), [
    ["State", stateText(t) + (t.error ? ": " + t.error : "")],
    ["Disk", t.waiting_for_disk ? diskNote(t) : "keeping up" + (t.disk_queued ? " (" + bytes(t.disk_queued) + " queued)" : "")],
    ["Progress", pct(t.progress) + " (" + bytes(t.bytes_have) + " of " + bytes(t.total_length) + ")"],
    ["Down / up", rate(t.download_rate) + " / " + rate(t.upload_rate)],
    ["Downloaded / uploaded", bytes(t.downloaded) + " / " + bytes(t.uploaded)],
    ["Ratio", ratio(t.ratio)],
    ["ETA", t.state === "downloading" ? eta(t.eta) : "\u2013"],
    ["Web seeds", (t.web_seeds || []).map((w) => w.url + ": " + w.state + ", " + bytes(w.downloaded)
      + (w.download_rate ? " at " + rate(w.download_rate) : "") + (w.error ? " (" + w.error + ")" : "")).join("; ") || "none"],
    ["Info-hash", t.id],
    ["Saved in", t.save_path],
  ]);
  // The labels box follows the torrent, except while someone edits it.
  const lb = $("#detail-labels");
  if (document.activeElement !== lb && lb.dataset.id !== id + "\n" + (t.labels || []).join(",")) {
    lb.dataset.id = id + "\n" + (t.labels || []).join(",");
    lb.value = (t.labels || []).join(", ");
  }
  drawPieces(d.pieces);
  // The wanted column shows once the API reports it (file selection).
  const sel = d.files.some((f) => f.wanted !== undefined);
  $("#files-wanted").hidden = !sel;
  if (streams.id !== id || !streams.files) {
    try {
      streams = { id, files: (await api("GET", "/torrents/" + id + "/streams")).files };
    } catch (_) {
      streams = { id, files: null }; // no metadata yet: no links this time
    }
    if (id !== detailId) return;
  }
  const playlist = $("#playlist");
  playlist.hidden = !streams.files;
  playlist.href = "/torrents/" + encodeURIComponent(id) + "/playlist.m3u";
  // Both lists leave pad files out, in the same order.
  const urls = streams.files ? streams.files.map((s) => s.url) : [];
  let k = 0;
  rows($("#files"), d.files, (f) => {
    const url = urls[k++];
    return [f.path, bytes(f.length), bar(f.progress)]
      .concat(sel ? [f.wanted === false ? "no" : "yes"] : [])
      .concat([url ? el("a", { href: url, target: "_blank", rel: "noopener", class: "play",
        title: "Open in the browser, or copy the link into a player (mpv, VLC)" }, "play") : "\u2013"]);
  });
  rows($("#peers"), d.peers, (p) => [p.address, p.transport || "tcp", p.client, p.flags, pct(p.progress),
    rate(p.download_rate), rate(p.upload_rate)]);
  rows($("#trackers"), d.trackers, (r) => [r.tier, r.url, when(r.last_announce),
    r.peers_returned == null ? "\u2013" : r.peers_returned, r.error || ""]);
}
function drawPieces(p) {
  const c = $("#pieces");
  const w = Math.max(1, Math.round(c.clientWidth * (window.devicePixelRatio || 1)));
  c.width = w;
  c.height = 24;
  const g = c.getContext("2d");
  g.clearRect(0, 0, w, 24);
  const n = p.count;
  if (!n) return;
  const hex = p.bitfield;
  const has = (i) => (parseInt(hex[i >> 2], 16) >> (3 - (i & 3))) & 1;
  const color = getComputedStyle(document.documentElement).getPropertyValue("--accent") || "#0b5cad";
  for (let x = 0; x < w; x++) {
    const a = Math.floor((x * n) / w), b = Math.max(a + 1, Math.floor(((x + 1) * n) / w));
    let k = 0;
    for (let i = a; i < b; i++) k += has(i);
    if (!k) continue;
    g.globalAlpha = k / (b - a);
    g.fillStyle = color;
    g.fillRect(x, 0, 1, 24);
  }
  c.setAttribute("aria-label", "Pieces: " + p.have + " of " + n + " verified");
}

refresh();
