"use strict";
// The cachegate dashboard. Every figure comes from the admin API, called with the token the
// operator types in (kept in this tab's sessionStorage only). Data is written into the page
// with textContent, never as HTML.
(function () {
  const POLL_MS = 2000;
  const HISTORY = 150; // points kept per series: 5 minutes at one poll every 2 s
  const TOP_EVERY = 5; // top keys walk the whole memory tier: every 5th poll only
  const TOP_LIMIT = 10;
  const MAX_SERIES = 8; // the busiest routes drawn
  const MIN_SPAN = 10; // the chart spans at least this many points (20 s)
  const COLORS = ["#2f6fdb", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0b7285", "#a07b00", "#495057"];
  const TOKEN_KEY = "cachegate.admin-token";
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let timer = null;
  let polls = 0;
  let previous = null; // the last report and when it came
  const history = []; // { t, total, routes: { path: { rate, ratio } } }

  // === the API ===

  async function api(method, path, body) {
    const init = {
      method,
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw apiError(method, path, 0, "the admin API cannot be reached (" + e.message + ")");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const detail = (data && (data.detail || data.error)) || text || response.statusText;
      throw apiError(method, path, response.status, detail);
    }
    return data;
  }

  function apiError(method, path, status, detail) {
    const e = new Error(method + " " + path + (status ? " answered " + status : "") + ": " + detail);
    e.status = status;
    return e;
  }

  // === small DOM helpers ===

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function fill(id, rows, columns, empty) {
    const body = $(id);
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { class: "none", colspan: String(columns) }, empty)));
      return;
    }
    for (const row of rows) body.append(row);
  }

  function kv(id, pairs) {
    const list = $(id);
    list.replaceChildren();
    for (const [label, value, cls] of pairs) {
      list.append(el("dt", {}, label), el("dd", cls ? { class: cls } : {}, value));
    }
  }

  const int = (n) => (n ?? 0).toLocaleString("en-US");
  const pct = (r) => (r == null ? "–" : (100 * r).toFixed(1) + " %");
  function bytes(n) {
    n = n || 0;
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function secs(s) {
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }
  const time = (ms) => new Date(ms).toLocaleTimeString("en-GB");

  // === errors and state ===

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  // === polling ===

  function start() {
    stop();
    polls = 0;
    poll();
    timer = setInterval(poll, POLL_MS);
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  async function poll() {
    const withTop = polls % TOP_EVERY === 0;
    polls++;
    try {
      const report = await api("GET", "/stats");
      render(report);
      if (withTop) await refreshTop();
      clearError();
      setStatus("live", "updated " + time(Date.now()) + " \u00b7 every " + POLL_MS / 1000 + " s");
    } catch (e) {
      setStatus("error", "not updated");
      showError(e.message + (e.status === 401 ? "\nEnter the instance's admin token above." : ""));
      if (e.status === 401) stop();
    }
  }

  async function refreshTop() {
    const answer = await api("GET", "/entries/top?limit=" + TOP_LIMIT);
    const rows = (answer.entries || []).map((e) =>
      el(
        "tr",
        { title: e.key },
        el("td", {}, e.target + (e.stale ? " (stale)" : "")),
        el("td", {}, e.tenant === "" ? "shared" : e.tenant),
        el("td", { class: "num" }, int(e.hits)),
        el("td", { class: "num" }, bytes(e.size)),
        el("td", { class: "num" }, secs(e.ttl_left_secs)),
        el("td", { class: "num" }, secs(e.age_secs))
      )
    );
    fill("top-keys", rows, 6, "nothing stored");
  }

  // === rendering a report ===

  function requestsOf(r) {
    return (
      (r.hits || 0) + (r.collapsed || 0) + (r.misses || 0) + (r.coalesce_timeouts || 0) +
      (r.bypassed || 0) + (r.forwarded_methods || 0) + (r.upstream_errors || 0) +
      (r.internal_errors || 0) + (r.bad_requests || 0) + (r.misdirected || 0) +
      (r.auth_missing || 0) + (r.auth_invalid || 0) + (r.auth_forbidden || 0) +
      (r.auth_unavailable || 0)
    );
  }

  function render(report) {
    const now = performance.now();
    record(report, now);
    previous = { report, at: now };
    renderTiles(report);
    renderChart();
    renderMemory(report);
    renderShared(report.shared);
    renderPurges(report.recent_purges || []);
  }

  // One history point: per route, requests per second and hit ratio since the last poll.
  function record(report, now) {
    if (!previous) return;
    const dt = (now - previous.at) / 1000;
    const before = new Map((previous.report.routes || []).map((r) => [r.path, r]));
    const total = requestsOf(report) - requestsOf(previous.report);
    if (dt <= 0 || total < 0) {
      history.length = 0; // restarted: the counters went back
      return;
    }
    const routes = {};
    for (const r of report.routes || []) {
      const b = before.get(r.path);
      if (!b) continue;
      const hits = r.hits - b.hits;
      const misses = r.misses - b.misses;
      const all = hits + misses + (r.bypassed - b.bypassed);
      routes[r.path] = { rate: all / dt, ratio: hits + misses > 0 ? hits / (hits + misses) : null };
    }
    history.push({ t: now, total: total / dt, routes });
    while (history.length > HISTORY) history.shift();
  }

  function tile(label, value, bad) {
    return el("div", { class: bad ? "tile bad" : "tile" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label));
  }

  function renderTiles(r) {
    const last = history[history.length - 1];
    const errors = (r.upstream_errors || 0) + (r.internal_errors || 0);
    $("tiles").replaceChildren(
      tile("requests / s", last ? last.total.toFixed(1) : "–"),
      tile("hit ratio", pct(r.hit_ratio)),
      tile("hits", int(r.hits)),
      tile("misses", int(r.misses)),
      tile("collapsed", int(r.collapsed)),
      tile("bypassed", int(r.bypassed)),
      tile("stored", int(r.stored)),
      tile("writes", int(r.forwarded_methods)),
      tile("purges", int((r.admin_purges || 0) + (r.webhook_purges || 0) + (r.write_purges || 0))),
      tile("backend errors", int(errors), errors > 0)
    );
  }

  // The busiest routes over the history, with a color each.
  function seriesRoutes() {
    const load = new Map();
    for (const point of history) {
      for (const [path, v] of Object.entries(point.routes)) load.set(path, (load.get(path) || 0) + v.rate);
    }
    const paths = (previous ? previous.report.routes || [] : []).map((r) => r.path);
    paths.sort((a, b) => (load.get(b) || 0) - (load.get(a) || 0));
    return paths.slice(0, MAX_SERIES).map((path, i) => ({ path, color: COLORS[i % COLORS.length] }));
  }

  function renderChart() {
    const routes = seriesRoutes();
    const rateMax = Math.max(1, ...history.map((p) => p.total));
    drawChart("chart-rate", routes, (p, path) => p.routes[path]?.rate ?? null, rateMax, (v) => v.toFixed(v < 10 ? 1 : 0) + " /s", (p) => p.total);
    drawChart("chart-ratio", routes, (p, path) => p.routes[path]?.ratio ?? null, 1, (v) => Math.round(100 * v) + " %", null);
    const legend = $("legend");
    legend.replaceChildren(
      ...routes.map((r) => {
        const swatch = el("span", { class: "swatch" });
        swatch.style.background = r.color;
        return el("li", {}, swatch, r.path);
      })
    );
    if (routes.length) {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = "#1d2330";
      legend.append(el("li", {}, swatch, "all requests"));
    }
  }

  function drawChart(id, routes, value, max, label, total) {
    const W = 600, H = 120, L = 44, R = 8, T = 8, B = 16;
    // The window grows with the history up to HISTORY points, then slides.
    const span = Math.max(MIN_SPAN, history.length);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
    const x = (i) => L + ((W - L - R) * (span - history.length + i)) / (span - 1);
    const y = (v) => T + (H - T - B) * (1 - Math.min(v, max) / max);
    for (const f of [0, 0.5, 1]) {
      root.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(f * max), y2: y(f * max) }));
      const t = svg("text", { class: "axis", x: L - 4, y: y(f * max) + 3, "text-anchor": "end" });
      t.textContent = label(f * max);
      root.append(t);
    }
    const seconds = ((span - 1) * POLL_MS) / 1000;
    const ago = "\u2212" + (seconds < 120 ? seconds + " s" : Math.round(seconds / 60) + " min");
    for (const [text, xpos, anchor] of [[ago, L, "start"], ["now", W - R, "end"]]) {
      const t = svg("text", { class: "axis", x: xpos, y: H - 3, "text-anchor": anchor });
      t.textContent = text;
      root.append(t);
    }
    if (history.length < 2) {
      const t = svg("text", { class: "empty", x: W / 2, y: H / 2, "text-anchor": "middle" });
      t.textContent = previous ? "collecting\u2026" : "no data yet";
      root.append(t);
    }
    const line = (get, color, width) => {
      let d = "";
      let pen = false;
      history.forEach((p, i) => {
        const v = get(p);
        if (v == null) {
          pen = false;
          return;
        }
        d += (pen ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      });
      if (d) root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": width, "stroke-linejoin": "round" }));
    };
    if (total && history.length) line(total, "#1d2330", 1.5);
    for (const r of routes) line((p) => value(p, r.path), r.color, 2);
    $(id).replaceChildren(root);
    $(id).dataset.points = String(history.length);
  }

  function renderMemory(r) {
    const max = r.max_bytes || 0;
    $("memory-fill").style.width = max ? Math.min(100, (100 * r.bytes) / max).toFixed(1) + "%" : "0";
    kv("memory", [
      ["entries", int(r.entries)],
      ["bytes", bytes(r.bytes)],
      ["max_memory", max ? bytes(max) : "–"],
      ["used", max ? pct(r.bytes / max) : "–"],
      ["evictions", int(r.evictions)],
      ["share evictions", int(r.share_evictions)],
      ["route evictions", int(r.route_evictions)],
      ["purged / soft", int(r.purged) + " / " + int(r.soft_purged)],
      ["fenced fills", int(r.fenced)],
      ["tenant share", r.tenant_share != null ? bytes(r.tenant_share) : "none"],
    ]);
    const share = r.tenant_share || max;
    $("share-head").textContent = r.tenant_share ? "of share" : "of max";
    const rows = (r.tenant_memory || []).slice(0, 8).map((t) =>
      el(
        "tr",
        {},
        el("td", {}, t.tenant === "" ? "shared" : t.tenants > 1 ? t.tenant + " (" + int(t.tenants) + ")" : t.tenant),
        el("td", { class: "num" }, int(t.entries)),
        el("td", { class: "num" }, bytes(t.bytes)),
        el("td", { class: "num" }, share ? pct(t.bytes / share) : "–")
      )
    );
    fill("tenant-memory", rows, 4, "nothing stored");
  }

  function renderShared(s) {
    if (!s) {
      kv("shared", [
        ["state", "not configured"],
        ["to add one", "[redis] url in the config"],
      ]);
      return;
    }
    const pairs = [
      ["breaker", s.breaker, s.breaker === "closed" ? "good" : "bad"],
      ["subscribed to invalidations", s.subscribed ? "yes" : "no", s.subscribed ? "good" : "bad"],
      ["memory tier trusted", s.memory_trusted ? "yes" : "no", s.memory_trusted ? "" : "bad"],
      ["hits / misses", int(s.hits) + " / " + int(s.misses)],
      ["errors / timeouts", int(s.errors) + " / " + int(s.timeouts), s.errors || s.timeouts ? "bad" : ""],
      ["stores / fenced", int(s.stores) + " / " + int(s.fenced)],
      ["purges (pending replay)", int(s.purges) + " (" + int(s.replay_pending) + ")"],
      ["invalidations received / applied", int(s.invalidations_received) + " / " + int(s.invalidations_applied)],
      ["pub/sub lag, reconnects", s.pubsub_lag_ms + " ms, " + int(s.pubsub_reconnects)],
    ];
    if (s.redis) {
      pairs.push(
        ["Redis", s.redis.version + " " + s.redis.mode],
        ["Redis memory", bytes(s.redis.used_memory)],
        ["entries / tenants in Redis", int(s.redis.entries) + " / " + int(s.redis.tenants)]
      );
    } else {
      pairs.push(["Redis", "cannot be asked", "bad"]);
    }
    kv("shared", pairs);
  }

  function renderPurges(purges) {
    const rows = purges.slice(0, 12).map((p) =>
      el("tr", {}, el("td", {}, time(p.at_ms)), el("td", {}, p.source), el("td", { title: p.scope }, p.scope), el("td", { class: "num" }, int(p.purged)))
    );
    fill("recent-purges", rows, 4, "no purge since start");
  }

  // === forms ===

  function result(id, ok, text) {
    const out = $(id);
    out.className = ok ? "ok" : "err";
    out.textContent = text;
  }

  async function submit(form, button, id, send) {
    if (!token) {
      result(id, false, "Enter the admin token first.");
      return;
    }
    button.disabled = true;
    result(id, true, "\u2026");
    try {
      result(id, true, await send());
      await poll();
      await refreshTop();
    } catch (e) {
      result(id, false, e.message);
    } finally {
      button.disabled = false;
    }
  }

  $("purge-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit(event.target, $("purge-submit"), "purge-result", async () => {
      const tenant = $("purge-tenant").value.trim();
      const kind = $("purge-kind").value;
      const body = {};
      if (tenant) body.tenant = tenant;
      if (kind === "all") {
        body.all = true;
      } else {
        const values = $("purge-value").value.split(",").map((v) => v.trim()).filter(Boolean);
        if (!values.length) throw new Error("Give at least one value to purge by.");
        body[kind] = values;
      }
      if ($("purge-soft").checked) body.soft = true;
      const answer = await api("POST", "/purge", body);
      return "purged " + int(answer.purged) + (answer.purged === 1 ? " entry" : " entries");
    });
  });

  $("warm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit(event.target, $("warm-submit"), "warm-result", async () => {
      const paths = $("warm-paths").value.split("\n").map((v) => v.trim()).filter(Boolean);
      if (!paths.length) throw new Error("Give at least one path to warm.");
      const tenant = $("warm-tenant").value.trim();
      const host = $("warm-host").value.trim();
      const body = { tenant: tenant || null, paths };
      if (host) body.host = host;
      const report = await api("POST", "/warm", body);
      const failed = (report.results || []).filter((r) => r.status >= 400 || r.error);
      let text = "warmed " + int(report.done) + ", failed " + int(report.failed);
      for (const f of failed.slice(0, 5)) text += "\n" + f.path + ": " + (f.error || f.status);
      if (failed.length) throw new Error(text);
      return text;
    });
  });

  // === the token ===

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const typed = $("token").value.trim();
    if (!typed) {
      showError("Enter the instance's admin token (CACHEGATE_ADMIN_TOKEN, or what [admin] token_env or token_file names).");
      return;
    }
    token = typed;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    setStatus("idle", "connecting\u2026");
    start();
  });

  $("forget").addEventListener("click", () => {
    stop();
    sessionStorage.removeItem(TOKEN_KEY);
    // A fresh page: nothing the token let us read stays on screen.
    location.reload();
  });

  renderChart();
  if (token) {
    setStatus("idle", "connecting\u2026");
    start();
  } else {
    setStatus("idle", "not connected: enter the admin token");
  }
})();
