// Meridian operator console. Plain JS, no build step. Every call goes to
// the same REST routes as API clients (/v2, /admin/v1), authenticated by
// the session cookie; changes carry the session's CSRF token. Charts are
// uPlot (vendored, see vendor/README.md).
"use strict";

const state = { me: null, project: "", timers: [], charts: [] };
const PER_PAGE = 20;

// ------------------------------------------------------------ helpers

// h builds an element: h("td", {class: "x"}, "text", child...). Text is
// always set as text, never parsed as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.me) headers["X-CSRF-Token"] = state.me.csrfToken;
  if (state.project) headers["X-Meridian-Project"] = state.project;
  let resp;
  try {
    resp = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new APIError(0, "network error: " + e.message);
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!resp.ok) {
    const msg = (data && (data.message || data.error)) || text || resp.statusText;
    if (resp.status === 401 && state.me) { showLogin("Your session has ended: " + msg); }
    throw new APIError(resp.status, `${resp.status}: ${msg}`);
  }
  return data;
}

// errorBox returns an alert element and a function that shows an error in it.
function errorBox() {
  const box = h("div", { class: "error", role: "alert", hidden: true });
  const show = (e) => { box.textContent = e ? (e.message || String(e)) : ""; box.hidden = !e; };
  return [box, show];
}

// action runs fn for a button, disabling it meanwhile and showing any error.
function action(btn, show, fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    btn.disabled = true;
    show(null);
    try { await fn(); } catch (e) { show(e); } finally { btn.disabled = false; }
  };
}

function fmtTime(s) { return s ? new Date(s).toLocaleString() : "—"; }
function fmtDuration(sec) {
  if (sec == null) return "—";
  sec = Math.round(sec);
  const hh = Math.floor(sec / 3600), mm = Math.floor((sec % 3600) / 60), ss = sec % 60;
  return (hh ? hh + " h " : "") + (hh || mm ? mm + " min " : "") + ss + " s";
}

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
}

// pager renders a paginated list: load(page) returns {pageInfo, data}.
function pager(render, load) {
  const wrap = h("div", { class: "paged" });
  const [err, show] = errorBox();
  let page = 1, last = "";
  const go = async (p) => {
    show(null);
    try {
      const res = await load(p);
      // Unchanged data keeps its rows: a periodic refresh must not swap a
      // button out from under a click.
      const key = p + JSON.stringify(res);
      if (key === last) return;
      last = key;
      page = p;
      const info = res.pageInfo || { currentPage: p, lastPage: 1, total: (res.data || []).length };
      const prev = h("button", { type: "button", disabled: page <= 1, onclick: () => go(page - 1) }, "‹ Previous");
      const next = h("button", { type: "button", disabled: page >= info.lastPage, onclick: () => go(page + 1) }, "Next ›");
      wrap.replaceChildren(render(res.data || [], () => go(page)),
        h("div", { class: "pager" }, prev, h("span", {}, `page ${info.currentPage} of ${Math.max(info.lastPage, 1)} · ${info.total} total`), next));
    } catch (e) { show(e); }
  };
  go(1);
  return { el: h("div", {}, err, wrap), reload: () => go(page) };
}

// pageOf cuts one page out of a list the API returns whole (the Raft
// members, a session's participants), in the shape pager expects.
function pageOf(items, page, perPage) {
  const lastPage = Math.max(1, Math.ceil(items.length / perPage));
  const p = Math.min(Math.max(1, page), lastPage);
  return { pageInfo: { currentPage: p, perPage, lastPage, total: items.length }, data: items.slice((p - 1) * perPage, p * perPage) };
}

function every(ms, fn) {
  const id = setInterval(fn, ms);
  state.timers.push(id);
}

function can(role) {
  const rank = { viewer: 1, operator: 2, admin: 3 };
  return state.me && rank[state.me.role] >= rank[role];
}

// ------------------------------------------------------------ sign-in

async function showLogin(msg) {
  state.me = null;
  document.getElementById("app").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("project-box").hidden = true;
  document.getElementById("who").textContent = "";
  const g = document.getElementById("global-error");
  g.textContent = msg || ""; g.hidden = !msg;
  const login = document.getElementById("login");
  login.hidden = false;
  try {
    const opts = await (await fetch("/console/auth/options")).json();
    document.getElementById("sso-box").hidden = !opts.oidc;
    document.getElementById("sso").href = "/console/auth/login?return=" + encodeURIComponent(location.pathname.startsWith("/console/") ? location.pathname : "/console/");
    document.getElementById("local-form").hidden = !opts.local;
  } catch (e) {
    g.textContent = "cannot reach the control plane: " + e.message; g.hidden = false;
  }
}

function setupLogin() {
  const form = document.getElementById("local-form");
  const err = form.querySelector(".error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const fd = new FormData(form);
    try {
      await api("POST", "/console/auth/local", { username: fd.get("username"), password: fd.get("password") });
      form.reset();
      await start();
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/console/auth/logout");
    } catch (e) {
      if (e.status !== 401) {
        // Refused (CSRF, another origin) or not reached: the session is
        // still alive on the server, so saying "Signed out." would lie.
        const g = document.getElementById("global-error");
        g.textContent = `Sign-out failed, you are still signed in: ${e.message}`;
        g.hidden = false;
        return;
      }
      showLogin("Signed out (the session had already ended).");
      return;
    }
    showLogin("Signed out.");
  });
  document.getElementById("project").addEventListener("change", (ev) => { state.project = ev.target.value; route(); });
  document.getElementById("nav").addEventListener("click", (ev) => {
    const a = ev.target.closest("a");
    if (!a) return;
    ev.preventDefault();
    history.pushState({}, "", a.getAttribute("href"));
    route();
  });
  window.addEventListener("popstate", route);
}

async function start() {
  try {
    state.me = await api("GET", "/console/api/me");
  } catch (e) {
    if (e.status === 401) { showLogin(); return; }
    showLogin(e.message);
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("global-error").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  const u = state.me.user;
  document.getElementById("who").textContent = `${u.email || u.name || u.subject} · ${state.me.role}`;
  for (const a of document.querySelectorAll("#nav a[data-role]")) a.hidden = !can(a.dataset.role);
  try {
    const res = await api("GET", "/admin/v1/projects?perPage=100");
    const sel = document.getElementById("project");
    sel.replaceChildren(...res.data.filter((p) => p.activeKeys > 0).map((p) => h("option", { value: p.userId }, p.keyNames.length ? `${p.keyNames[0]} (${p.userId})` : p.userId)));
    state.project = sel.value || "";
    document.getElementById("project-box").hidden = res.data.length < 2;
  } catch (e) { /* no project list: the oldest key's project is used */ }
  route();
}

// ------------------------------------------------------------ routing

const sections = { rooms: roomsPage, sessions: liveSessionsPage, history: pastSessionsPage, webhooks: webhooksPage, keys: keysPage, cluster: clusterPage, audit: auditPage };

function route() {
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  for (const c of state.charts) c.destroy();
  state.charts = [];
  if (!state.me) return;
  const parts = location.pathname.replace(/^\/console\/?/, "").split("/").filter(Boolean);
  const name = sections[parts[0]] ? parts[0] : "rooms";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.section === name);
  const app = document.getElementById("app");
  app.hidden = false;
  app.replaceChildren(sections[name](parts.slice(1)));
}

function navigate(path) { history.pushState({}, "", path); route(); }

// ------------------------------------------------------------ rooms

function roomsPage() {
  const [err, show] = errorBox();
  const linkOut = h("div", { id: "meeting-link", class: "notice", hidden: true });
  const list = pager((rooms, reload) => table(["Room", "Custom id", "Created", "Status", "Webhook endpoint", ""], rooms.map((r) => {
    const copy = h("button", { type: "button", class: "copy-link" }, "Copy meeting link");
    copy.onclick = action(copy, show, async () => {
      const res = await api("POST", `/v2/rooms/${encodeURIComponent(r.roomId)}/meeting-link`, {});
      linkOut.replaceChildren("Meeting link for ", h("code", {}, r.roomId), ": ", h("input", { readonly: true, size: 80, value: res.url, class: "link" }));
      linkOut.hidden = false;
      try { await navigator.clipboard.writeText(res.url); linkOut.append(" (copied)"); } catch { linkOut.append(" (select and copy it)"); }
    });
    const deact = h("button", { type: "button", class: "danger deactivate", disabled: r.disabled || !can("operator") }, "Deactivate");
    deact.onclick = action(deact, show, async () => {
      if (!confirm(`Deactivate room ${r.roomId}? Nobody can join it afterwards.`)) return;
      await api("POST", "/v2/rooms/deactivate", { roomId: r.roomId });
      reload();
    });
    return h("tr", { dataset: { room: r.roomId } }, h("td", {}, h("code", {}, r.roomId)), h("td", {}, r.customRoomId || ""), h("td", {}, fmtTime(r.createdAt)),
      h("td", {}, r.disabled ? "deactivated" : "active", r.requireSSO ? " · SSO" : ""),
      h("td", {}, r.webhook && r.webhook.endPoint ? h("a", { href: `/console/webhooks?url=${encodeURIComponent(r.webhook.endPoint)}`, class: "endpoint",
        onclick: (ev) => { ev.preventDefault(); navigate(ev.currentTarget.getAttribute("href")); } }, r.webhook.endPoint) : ""),
      h("td", {}, copy, " ", deact));
  })), (p) => api("GET", `/v2/rooms?page=${p}&perPage=${PER_PAGE}`));

  const form = h("form", { id: "create-room" },
    h("h2", {}, "New room"),
    h("label", {}, "Custom id (optional)", h("input", { name: "customRoomId", maxlength: 128 })),
    h("label", { class: "inline" }, h("input", { type: "checkbox", name: "requireSSO" }), " participants sign in with single sign-on"),
    h("button", { type: "submit", disabled: !can("operator") }, "Create room"));
  const submit = form.querySelector("button");
  form.addEventListener("submit", action(submit, show, async () => {
    const fd = new FormData(form);
    const body = {};
    if (fd.get("customRoomId")) body.customRoomId = fd.get("customRoomId");
    if (fd.get("requireSSO")) body.requireSSO = true;
    const room = await api("POST", "/v2/rooms", body);
    form.reset();
    linkOut.replaceChildren("Created room ", h("code", {}, room.roomId), ".");
    linkOut.hidden = false;
    list.reload();
  }));
  return h("section", {}, h("h1", {}, "Rooms"), form, err, linkOut, list.el);
}

// ------------------------------------------------------------ sessions

// qualityCell fills in a past session's mean quality score (1-5, from
// the edges' loss, jitter and RTT samples) once its stats arrive.
function qualityCell(id) {
  const td = h("td", { class: "quality" }, "…");
  api("GET", `/v2/sessions/${encodeURIComponent(id)}/stats`).then((st) => {
    const mean = (k) => {
      const xs = (st.stats || []).map((e) => e.qualityScore[k]).filter((x) => x > 0);
      return xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1) : "—";
    };
    td.textContent = `audio ${mean("audio")} · video ${mean("video")}`;
  }, (e) => { td.textContent = e.message; td.classList.add("down"); });
  return td;
}

function sessionsTable(sessions, live) {
  return table(["Room", "Session", live ? "Started" : "Start – end", "Duration", "Participants", live ? "" : "Quality (1-5)", ""], sessions.map((s) => {
    const dur = live ? (Date.now() - new Date(s.start)) / 1000 : (new Date(s.end) - new Date(s.start)) / 1000;
    const active = s.participants.filter((p) => p.timelog.some((t) => !t.end)).length;
    return h("tr", { dataset: { session: s.id } }, h("td", {}, h("code", {}, s.roomId)), h("td", {}, h("code", {}, s.id)),
      h("td", {}, live ? fmtTime(s.start) : `${fmtTime(s.start)} – ${fmtTime(s.end)}`), h("td", {}, fmtDuration(dur)),
      h("td", {}, live ? `${active} live / ${s.participants.length}` : String(s.participants.length)), live ? h("td", {}) : qualityCell(s.id),
      h("td", {}, h("a", { href: `/console/sessions/${s.id}`, class: "open-session", onclick: (ev) => { ev.preventDefault(); navigate(`/console/sessions/${s.id}`); } }, live ? "Live graphs" : "Quality")));
  }));
}

function liveSessionsPage(rest) {
  if (rest[0]) return sessionPage(rest[0]);
  const list = pager((ss) => ss.length ? sessionsTable(ss, true) : h("p", { class: "muted" }, "No meeting is in progress."),
    (p) => api("GET", `/v2/sessions?status=ongoing&page=${p}&perPage=${PER_PAGE}`));
  every(5000, list.reload);
  return h("section", {}, h("h1", {}, "Live sessions"), list.el);
}

function pastSessionsPage() {
  const list = pager((ss) => ss.length ? sessionsTable(ss, false) : h("p", { class: "muted" }, "No ended sessions."),
    (p) => api("GET", `/v2/sessions?status=ended&page=${p}&perPage=${PER_PAGE}`));
  return h("section", {}, h("h1", {}, "Past sessions"), list.el);
}

// The four graphs of a participant: what the edge measured on the streams
// it sent (send*) and received (recv*), one point per stats interval.
const GRAPHS = [
  { key: "bitrate", title: "Bitrate (kbit/s)", series: [["averageSendVideoBitrate", "video sent"], ["averageSendAudioBitrate", "audio sent"], ["averageRecvVideoBitrate", "video received"], ["averageRecvAudioBitrate", "audio received"]], scale: 1 / 1000 },
  { key: "loss", title: "Packets lost", series: [["sendVideoPacketLost", "video sent"], ["sendAudioPacketLost", "audio sent"], ["recvVideoPacketLost", "video received"], ["recvAudioPacketLost", "audio received"]] },
  { key: "jitter", title: "Jitter (ms)", series: [["averageVideoJitter", "video"], ["averageAudioJitter", "audio"]] },
  { key: "rtt", title: "Round-trip time (ms)", series: [["averageVideoRtt", "video"], ["averageAudioRtt", "audio"]] },
];
const COLORS = ["#2563eb", "#16a34a", "#dc2626", "#9333ea"];

function graphData(g, stats) {
  const xs = stats.map((e) => new Date(e.time).getTime() / 1000);
  return [xs, ...g.series.map(([k]) => stats.map((e) => (e[k] || 0) * (g.scale || 1)))];
}

function newChart(g, host, stats) {
  const width = Math.max(320, Math.min(host.clientWidth || 360, 560));
  const opts = {
    width, height: 180,
    series: [{}, ...g.series.map(([, label], i) => ({ label, stroke: COLORS[i], width: 1.5 }))],
    axes: [{}, { size: 50 }],
    scales: { x: { time: true } },
  };
  const u = new uPlot(opts, graphData(g, stats), host);
  state.charts.push(u);
  return u;
}

// Participant cards per page: each carries four live charts.
const CARDS_PER_PAGE = 8;

function sessionPage(id) {
  const [err, show] = errorBox();
  const summary = h("span", {});
  // Built once: a button re-created by every refresh could lose a click
  // that straddles the refresh.
  const endBtn = h("button", { type: "button", class: "danger end-session", hidden: true }, "End session");
  endBtn.onclick = action(endBtn, show, async () => {
    if (!confirm("End this session for everyone?")) return;
    await api("POST", "/v2/sessions/end", { roomId, sessionId: id });
    list.reload();
  });
  const head = h("p", {}, summary, " ", endBtn);
  const people = h("div", { id: "participants" });
  const cards = new Map(); // participantId -> {el, hosts, charts, points}, this page's only
  let ended = false, roomId = "";
  // The session comes whole from the API; its participants are paged here
  // (and only this page's stats are fetched): a large meeting would
  // otherwise draw four charts for everyone.
  const list = pager((items) => {
    const shown = new Set();
    const els = items.map(({ p, stats }) => {
      const live = p.timelog.some((t) => !t.end);
      let card = cards.get(p.participantId);
      if (!card) {
        const hosts = GRAPHS.map((g) => h("div", { class: "chart", dataset: { graph: g.key } }, h("h3", {}, g.title)));
        const el = h("div", { class: "participant", dataset: { participant: p.participantId } },
          h("h2", {}, p.name || p.participantId, " ", h("span", { class: "muted status" })), h("div", { class: "muted points" }), h("div", { class: "charts" }, hosts));
        card = { el, hosts, charts: null, points: 0 };
        cards.set(p.participantId, card);
      }
      shown.add(p.participantId);
      card.el.querySelector(".status").textContent = `${p.participantId} · ${live ? "in the meeting" : "left"}`;
      if (!card.charts) {
        card.charts = GRAPHS.map((g, i) => newChart(g, card.hosts[i], stats));
      } else if (stats.length !== card.points) {
        GRAPHS.forEach((g, i) => card.charts[i].setData(graphData(g, stats)));
      }
      card.points = stats.length;
      card.el.dataset.points = String(stats.length);
      card.el.querySelector(".points").textContent = stats.length ? `${stats.length} samples, last at ${fmtTime(stats[stats.length - 1].time)}` : "waiting for the first stats sample";
      return card.el;
    });
    // Cards of another page: their charts go.
    for (const [pid, card] of cards) {
      if (shown.has(pid)) continue;
      for (const u of card.charts || []) {
        u.destroy();
        state.charts = state.charts.filter((x) => x !== u);
      }
      cards.delete(pid);
    }
    people.replaceChildren(...els);
    return items.length ? people : h("p", { class: "muted" }, "Nobody has joined yet.");
  }, async (page) => {
    const s = await api("GET", `/v2/sessions/${encodeURIComponent(id)}`);
    ended = s.status !== "ongoing";
    roomId = s.roomId;
    const dur = ((s.end ? new Date(s.end) : Date.now()) - new Date(s.start)) / 1000;
    endBtn.hidden = ended || !can("operator");
    summary.replaceChildren("Room ", h("code", {}, s.roomId), ` · ${s.status} · started ${fmtTime(s.start)} · ${fmtDuration(dur)}`);
    const pg = pageOf(s.participants || [], page, CARDS_PER_PAGE);
    const data = await Promise.all(pg.data.map(async (p) => {
      const st = await api("GET", `/v2/sessions/${encodeURIComponent(id)}/participant/${encodeURIComponent(p.participantId)}/stats`);
      return { p, stats: st.stats || [] };
    }));
    return { pageInfo: pg.pageInfo, data };
  });
  every(3000, () => { if (!ended) list.reload(); });
  return h("section", {}, h("h1", {}, "Session ", h("code", {}, id)), err, head, list.el);
}

// ------------------------------------------------------------ webhooks

function webhooksPage() {
  const [err, show] = errorBox();
  const filter = h("form", { id: "delivery-filter" },
    h("label", {}, "Status", h("select", { name: "status" }, ["", "pending", "delivered", "failed"].map((s) => h("option", { value: s }, s || "any")))),
    h("label", {}, "Endpoint URL", h("input", { name: "url", size: 40 })),
    h("button", { type: "submit" }, "Filter"));
  let q = "";
  const params = new URLSearchParams(location.search);
  for (const k of ["status", "url"]) {
    if (params.get(k)) {
      filter.elements[k].value = params.get(k);
      q += `&${k}=${encodeURIComponent(params.get(k))}`;
    }
  }
  const endpoints = h("div", { id: "endpoints" });
  const list = pager((ds, reload) => {
    const byURL = new Map();
    for (const d of ds) {
      const e = byURL.get(d.url) || { url: d.url, delivered: 0, failed: 0, pending: 0 };
      e[d.status] = (e[d.status] || 0) + 1;
      byURL.set(d.url, e);
    }
    // Counted from the deliveries on this page of the log, not from all of
    // them: the heading says so.
    endpoints.replaceChildren(h("h2", {}, "Endpoints in this page of the delivery log"),
      h("p", { class: "muted" }, `Counts of the ${ds.length} deliveries shown below, not of the whole log.`),
      table(["URL", "Delivered", "Pending", "Failed"],
      [...byURL.values()].map((e) => h("tr", {}, h("td", {}, h("code", {}, e.url)), h("td", {}, e.delivered), h("td", {}, e.pending), h("td", {}, e.failed)))));
    return table(["Event", "Room", "Endpoint", "Status", "Attempts", "Last answer", "Created", ""], ds.map((d) => {
      const btn = h("button", { type: "button", class: "redeliver", disabled: !can("operator") }, "Redeliver");
      btn.onclick = action(btn, show, async () => {
        await api("POST", `/v2/webhooks/deliveries/${encodeURIComponent(d.id)}/redeliver`, {});
        reload();
      });
      return h("tr", { dataset: { delivery: d.id } }, h("td", {}, d.eventType), h("td", {}, h("code", {}, d.roomId)), h("td", {}, h("code", {}, d.url)),
        h("td", { class: "status" }, d.status), h("td", { class: "attempts" }, d.attempts), h("td", {}, d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : "", d.lastError ? ` ${d.lastError}` : ""),
        h("td", {}, fmtTime(d.createdAt)), h("td", {}, btn));
    }));
  }, (p) => api("GET", `/v2/webhooks/deliveries?page=${p}&perPage=${PER_PAGE}${q}`));
  filter.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const fd = new FormData(filter);
    q = "";
    for (const k of ["status", "url"]) if (fd.get(k)) q += `&${k}=${encodeURIComponent(fd.get(k))}`;
    list.reload();
  });
  every(5000, list.reload); // redeliveries and retries happen in the background
  return h("section", {}, h("h1", {}, "Webhooks"), err, endpoints, h("h2", {}, "Delivery log"), filter, list.el);
}

// ------------------------------------------------------------ API keys

function keysPage() {
  const [err, show] = errorBox();
  const fresh = h("div", { id: "new-secret", class: "notice", hidden: true });
  const list = pager((keys, reload) => table(["Name", "API key", "Project", "Created", "Status", ""], keys.map((k) => {
    const btn = h("button", { type: "button", class: "danger revoke", disabled: !!k.revokedAt }, "Revoke");
    btn.onclick = action(btn, show, async () => {
      if (!confirm(`Revoke key ${k.name || k.apiKey}? Tokens signed with it stop working.`)) return;
      await api("DELETE", `/admin/v1/keys/${encodeURIComponent(k.apiKey)}`);
      reload();
    });
    return h("tr", { dataset: { key: k.apiKey } }, h("td", {}, k.name || ""), h("td", {}, h("code", {}, k.apiKey)), h("td", {}, h("code", {}, k.userId)),
      h("td", {}, fmtTime(k.createdAt)), h("td", { class: "status" }, k.revokedAt ? `revoked ${fmtTime(k.revokedAt)}` : "active"), h("td", {}, btn));
  })), (p) => api("GET", `/admin/v1/keys?page=${p}&perPage=${PER_PAGE}`));
  const form = h("form", { id: "create-key" }, h("h2", {}, "New API key"),
    h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 64 })),
    h("label", {}, "Project (empty: a new one)", h("input", { name: "userId", size: 28, value: state.project || undefined })),
    h("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", action(form.querySelector("button"), show, async () => {
    const fd = new FormData(form);
    const body = { name: fd.get("name") };
    if (fd.get("userId")) body.userId = fd.get("userId");
    const k = await api("POST", "/admin/v1/keys", body);
    form.reset();
    // The secret is shown this once: the control plane keeps it sealed.
    fresh.replaceChildren(h("strong", {}, "Copy the secret now: it will not be shown again."), h("br"),
      "API key ", h("code", { class: "new-key" }, k.apiKey), h("br"), "Secret ", h("span", { class: "secret" }, k.secret));
    fresh.hidden = false;
    list.reload();
  }));
  return h("section", {}, h("h1", {}, "API keys"), form, err, fresh, list.el);
}

// ------------------------------------------------------------ cluster

// clockCell shows how far an edge's clock is off the control plane's, as
// the edge measured it; past a second (the edge warns in its log too) it is
// marked: tickets, timelines and webhooks read that clock.
function clockCell(e) {
  const ms = e.clockOffsetMs;
  if (ms === undefined || ms === null) return h("td", { class: "clock muted" }, "not measured");
  const text = `${ms < 0 ? "-" : "+"}${(Math.abs(ms) / 1000).toFixed(1)} s`;
  return h("td", { class: Math.abs(ms) > 1000 ? "clock down" : "clock", title: "this edge's clock ahead of the control plane's (negative: behind)" }, text);
}

function clusterPage() {
  const leader = h("p", {}, "Leader: ", h("code", { id: "leader" }, "…"));
  const health = h("p", { id: "health" });
  const edges = pager((list) => {
    const regions = new Map();
    for (const e of list) regions.set(e.region, [...(regions.get(e.region) || []), e]);
    if (!list.length) return h("p", { class: "muted" }, "No edge has registered.");
    return h("div", {}, [...regions].map(([region, es]) => h("div", { class: "region", dataset: { region } }, h("h3", {}, region),
      table(["Edge", "Status", "Load", "Participants", "Rooms", "Tracks", "CPU", "Egress", "Clock", "Last heartbeat"], es.map((e) =>
        h("tr", { dataset: { edge: e.id } }, h("td", {}, h("code", {}, e.id)),
          h("td", { class: e.up ? "up" : "down" }, e.up ? (e.draining ? "draining" : "up") : "down"),
          // No report reached this node or the leader: the load is unknown, not zero.
          e.loadFrom ? h("td", { title: `reported by: ${e.loadFrom}` }, `${Math.round(e.load * 100)} % of ${e.capacity || "∞"}`) : h("td", { class: "muted" }, "not reported"),
          h("td", {}, e.participants), h("td", {}, e.rooms), h("td", {}, e.tracks),
          h("td", {}, `${Math.round((e.cpu || 0) * 100)} %`), h("td", {}, `${((e.egressBps || 0) / 1e6).toFixed(2)} Mbit/s`), clockCell(e),
          h("td", {}, fmtTime(e.lastHeartbeat))))))));
  }, (p) => api("GET", `/admin/v1/edges?page=${p}&perPage=50`));
  // The members come whole from /admin/v1/cluster and are paged here, with
  // each member's probe from /console/api/cluster/health.
  const healthCell = (m) => {
    if (!m) return h("td", {}, "—");
    return h("td", { class: m.ready ? "up health" : "down health" }, m.ready ? `ready (${m.latencyMs} ms)` : (m.error || `not ready (HTTP ${m.status})`));
  };
  const members = pager((ms) => h("div", { id: "members" }, table(["Node", "Raft address", "API address", "Suffrage", "Role", "Health"], ms.map((m) =>
    h("tr", { dataset: { node: m.id } }, h("td", {}, h("code", {}, m.id)), h("td", {}, m.raftAddr), h("td", {}, m.httpAddr || (m.health || {}).url || ""),
      h("td", {}, m.suffrage), h("td", {}, m.leader ? "leader" : "follower"), healthCell(m.health))))),
  async (p) => {
    const [c, hl] = await Promise.all([api("GET", "/admin/v1/cluster"), api("GET", "/console/api/cluster/health")]);
    const byID = new Map(hl.members.map((m) => [m.id, m]));
    leader.replaceChildren("Leader: ", h("code", { id: "leader" }, c.leader || "none (election in progress)"));
    const ready = hl.members.filter((m) => m.ready).length;
    health.textContent = `${ready} of ${hl.members.length} members ready`;
    health.className = ready === hl.members.length ? "up" : "down";
    return pageOf(c.members.map((m) => ({ ...m, health: byID.get(m.id) })), p, PER_PAGE);
  });
  every(5000, () => { members.reload(); edges.reload(); });
  return h("section", {}, h("h1", {}, "Cluster"), health, leader, h("h2", {}, "Raft members"), members.el, h("h2", {}, "Edges by region"), edges.el);
}

// ------------------------------------------------------------ audit

function auditPage() {
  const list = pager((items) => table(["When", "Who", "Role", "Action", "Target", "Result", "From"], items.map((a) =>
    h("tr", { dataset: { seq: a.seq } }, h("td", {}, fmtTime(a.at)), h("td", { class: "actor" }, a.actor), h("td", {}, a.role || ""), h("td", { class: "action" }, h("code", {}, a.action)), h("td", {}, h("code", {}, a.target || "")),
      h("td", { class: "result" }, String(a.status), a.detail ? ` ${a.detail}` : ""), h("td", { class: "from" }, a.ip || "")))),
  (p) => api("GET", `/admin/v1/audit?page=${p}&perPage=50`));
  return h("section", {}, h("h1", {}, "Audit log"), list.el);
}

setupLogin();
start();
