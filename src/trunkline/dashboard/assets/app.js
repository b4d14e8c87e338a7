// trunkline dashboard: read-only views of the registry, the socket map, traces and
// benchmark results. Data comes from /api/* (JSON) and two WebSocket feeds that push the
// whole current value on every change. Text goes in with textContent; only mermaid's own
// SVG (securityLevel "strict") is inserted as markup.
"use strict";

const KINDS = ["tcp", "udp", "unix", "unixgram", "unixseq", "fifo"];
const $ = (selector) => document.querySelector(selector);
let diagramCount = 0;
let renderQueue = Promise.resolve();

mermaid.initialize({ startOnLoad: false, securityLevel: "strict", maxEdges: 2000,
                     flowchart: { htmlLabels: true },
                     sequence: { showSequenceNumbers: true } });

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function ago(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return seconds + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + String(seconds % 60).padStart(2, "0") + "s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h" + String(Math.floor(seconds % 3600 / 60)).padStart(2, "0") + "m";
  return Math.floor(seconds / 86400) + "d";
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

// Diagrams are drawn one at a time (mermaid keeps global state while it renders).
function drawDiagram(container, source) {
  const job = renderQueue.then(async () => {
    const id = "diagram-" + (++diagramCount);
    try {
      const { svg } = await mermaid.render(id, source);
      container.innerHTML = svg;
      container.setAttribute("data-rendered", "ok");
    } catch (err) {
      container.replaceChildren(el("pre", { class: "notes" }, "diagram failed: " + err));
      container.setAttribute("data-rendered", "error");
      const stray = document.getElementById("d" + id);  // mermaid's leftover on failure
      if (stray) stray.remove();
    }
  });
  renderQueue = job.catch(() => {});
  return job;
}

// A feed: the server sends the whole value now and after every change; reconnects.
function follow(path, label, onValue) {
  const status = $("#live-" + label);
  let delay = 500;
  function open() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
    ws.onopen = () => { status.textContent = label + ": live"; status.className = "live on"; delay = 500; };
    ws.onmessage = (event) => onValue(JSON.parse(event.data));
    ws.onclose = () => {
      status.textContent = label + ": reconnecting"; status.className = "live off";
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 8000);
    };
  }
  open();
}

// ---------------------------------------------------------------- services

let servicesView = null;
const seenInstances = new Set();
let firstServicesView = true;

function renderServices(view) {
  servicesView = view;
  $("#registry-name").textContent = view.registry || "";
  const body = $("#services tbody");
  const note = $("#services-note");
  if (view.instances === null) {
    note.textContent = view.error ? "registry not answering: " + view.error : "waiting for the registry...";
    body.replaceChildren();
    return;
  }
  const services = new Set(view.instances.map((i) => i.service));
  note.textContent = `${services.size} services, ${view.instances.length} instances` +
    (view.stale ? ` (stale: ${view.error})` : "");
  const rows = view.instances.map((i) => {
    const key = i.service + "/" + i.id;
    const fresh = !firstServicesView && !seenInstances.has(key);
    seenInstances.add(key);
    return el("tr", { "data-service": i.service, "data-instance": i.id, class: fresh ? "new" : null },
      el("td", {}, el("strong", {}, i.service), " ",
         el("button", { type: "button", class: "to-map", title: "show this service on the socket map",
                        onclick: () => mapOf(i.service) }, "map")),
      el("td", { class: "mono" }, i.id),
      el("td", {}, el("span", { class: "badge" }, i.protocol)),
      el("td", { class: "addr" }, ...i.urls.flatMap((u, n) => n ? [el("br"), u] : [u])),
      el("td", {}, i.pid),
      el("td", {}, i.hostname + (i.this_host ? "" : " (other)")),
      el("td", { class: "age", "data-started": i.started }, ago(Date.now() / 1000 - i.started)));
  });
  if (view.stale) rows.unshift(el("tr", {}, el("td", { colSpan: 7 }, el("span", { class: "badge stale" }, "stale"), view.error || "")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 7, class: "note" },
    "No service registered. Services appear here as they register (trunkline.register(...))")));
  body.replaceChildren(...rows);
  firstServicesView = false;
}

function tick() {
  $("#clock").textContent = new Date().toLocaleTimeString();
  for (const cell of document.querySelectorAll("#services td.age")) {
    cell.textContent = ago(Date.now() / 1000 - Number(cell.getAttribute("data-started")));
  }
}

// ---------------------------------------------------------------- traces

let selectedTrace = null;
let selectedCount = null;  // its number of events when last drawn

function renderTraces(listing) {
  $("#traces-dir").textContent = listing.directory || "";
  const note = $("#traces-note");
  if (!listing.directory) note.textContent = "No trace directory: start the dashboard with --traces DIR.";
  else if (listing.error) note.textContent = listing.error;
  else note.textContent = listing.total
    ? `${listing.total} traces (newest first); new ones appear as they are written`
    : "No traces yet: write some with --trace-file (serve) or --trace=json --trace-file (call) in this directory.";
  if (listing.skipped_files.length) note.textContent += `; not read (over 4 MiB): ${listing.skipped_files.join(", ")}`;
  const items = listing.traces.map((t) => el("li",
    { "data-trace-id": t.id, class: t.id === selectedTrace ? "selected" : null, tabIndex: 0,
      onclick: () => selectTraceSafely(t.id),
      onkeydown: (event) => { if (event.key === "Enter") selectTraceSafely(t.id); } },
    el("div", { class: "title" }, t.title,
       t.status ? el("span", { class: "badge" }, t.status) : null),
    el("div", { class: "meta" },
       ...t.side.split("+").map((s) => el("span", { class: "badge " + s }, s)),
       [t.kind, t.local && t.remote ? `${t.local} \u2192 ${t.remote}` : t.remote || t.local,
        t.duration_ms !== null ? t.duration_ms + " ms" : "", when(t.started)].filter(Boolean).join("  \u00b7  "),
       el("br"), el("span", { class: "mono" }, t.file))));
  $("#traces").replaceChildren(...items);
  // the trace on show grew (a connection still talking): draw it again
  const shown = listing.traces.find((t) => t.id === selectedTrace);
  if (shown && shown.events_count !== selectedCount) selectTraceSafely(selectedTrace, true);
}

const selectTraceSafely = (id, quiet) => attempt(selectTrace, "#traces-note")(id, quiet);

async function selectTrace(id, quiet) {
  selectedTrace = id;
  for (const li of document.querySelectorAll("#traces li")) {
    li.classList.toggle("selected", li.getAttribute("data-trace-id") === id);
  }
  const response = await fetch("/api/traces/" + encodeURIComponent(id));
  const detail = $("#trace-detail");
  if (!response.ok) { if (!quiet) detail.replaceChildren(el("p", { class: "note" }, "That trace is gone.")); return; }
  const trace = await response.json();
  if (selectedTrace !== id) return;  // another was picked meanwhile
  selectedCount = trace.events_count;
  const parts = [el("h3", {}, trace.title), el("p", { class: "note" },
    [trace.side, trace.kind, trace.local && trace.remote ? `${trace.local} \u2192 ${trace.remote}` : "",
     trace.duration_ms !== null ? trace.duration_ms + " ms" : "", trace.trace_id ? "trace id " + trace.trace_id : "",
     trace.file].filter(Boolean).join("  \u00b7  "))];
  if (trace.events.length) parts.push(waterfall(trace.events));
  if (trace.timeline) parts.push(el("pre", { class: "timeline" }, trace.timeline));
  else if (trace.format === "text") parts.push(el("pre", { class: "timeline" }, trace.text));
  const diagram = el("div", { class: "diagram", id: "trace-diagram" });
  if (trace.mermaid) parts.push(diagram);
  detail.replaceChildren(...parts);
  if (trace.mermaid) await drawDiagram(diagram, trace.mermaid);
}

function waterfall(events) {
  const end = Math.max(...events.map((e) => e.offset_ns + e.duration_ns), 1);
  const ordered = [...events].sort((a, b) => a.offset_ns - b.offset_ns || a.duration_ns - b.duration_ns);
  const rows = ordered.map((e) => {
    const left = 100 * e.offset_ns / end, width = 100 * e.duration_ns / end;
    const bar = el("div", { class: "bar " + e.side, title: JSON.stringify(e.detail || {}) });
    bar.style.left = left + "%";
    bar.style.width = Math.max(width, 0.3) + "%";
    return el("div", { class: "row" },
      el("span", {}, (e.side === "server" ? "server " : "") + e.step),
      el("div", { class: "track" }, bar),
      el("span", { class: "dur" }, (e.duration_ns / 1e6).toFixed(3) + " ms"));
  });
  return el("div", { class: "waterfall" }, ...rows);
}

// ---------------------------------------------------------------- map

function mapQuery() {
  const form = $("#map-form");
  const query = new URLSearchParams();
  for (const box of form.querySelectorAll("input[name=kind]:checked")) query.append("kind", box.value);
  for (const name of ["pid", "service"]) {
    const value = form.elements[name].value.trim();
    if (value) query.set(name, value);
  }
  if (form.elements.listening.checked) query.set("listening", "1");
  return query;
}

async function refreshMap() {
  const status = $("#map-status");
  const panel = $("#map-panel");
  panel.removeAttribute("data-rendered");
  status.textContent = "mapping...";
  const query = mapQuery();
  history.replaceState(null, "", query.toString() ? "?" + query : location.pathname);
  const response = await fetch("/api/map?" + query);
  const data = await response.json();
  const diagram = $("#map-diagram");
  if (!response.ok || data.error) {
    status.textContent = "";
    diagram.replaceChildren(el("p", { class: "notes" }, data.error));
    panel.setAttribute("data-rendered", "error");
    return;
  }
  const map = data.map;
  status.textContent = `${map.processes.length} processes, ${map.sockets.length} sockets and FIFOs, ` +
    `${map.connections.length} connections (${new Date().toLocaleTimeString()})`;
  $("#map-notes").replaceChildren(...map.notes.map((n) => el("li", {}, n)));
  const command = (pid) => (map.processes.find((p) => p.pid === pid) || {}).name || "?";
  const end = (e) => e.pid !== null ? `${e.pid} ${e.command}` : e.command;
  $("#map-connections tbody").replaceChildren(...map.connections.map((c) => el("tr", {},
    el("td", {}, c.kind), el("td", {}, end(c.client)), el("td", {}, c.directed ? "\u2192" : "\u2014"),
    el("td", {}, end(c.server)), el("td", { class: "addr" }, c.address || "(unnamed)"),
    el("td", {}, c.services.join(", ")))));
  $("#map-socket-count").textContent = map.sockets.length;
  $("#map-sockets tbody").replaceChildren(...map.sockets.map((s) => el("tr", {},
    el("td", {}, s.kind), el("td", {}, s.state), el("td", { class: "addr" }, s.local || "(unnamed)"),
    el("td", { class: "addr" }, s.remote), el("td", {}, s.pids.map((p) => `${p} ${command(p)}`).join(", ") || "-"),
    el("td", {}, s.services.join(", ")))));
  await drawDiagram(diagram, data.mermaid);
  panel.setAttribute("data-rendered", diagram.getAttribute("data-rendered"));
}

const refreshMapSafely = () => attempt(refreshMap, "#map-status")();

function mapOf(service) {
  const form = $("#map-form");
  form.elements.service.value = service;
  form.elements.pid.value = "";
  refreshMapSafely();
  $("#map-panel").scrollIntoView();
}

function setUpMapForm() {
  const params = new URLSearchParams(location.search);
  const kinds = new Set(params.getAll("kind").flatMap((k) => k.split(",")));
  $("#map-kinds").replaceChildren(...KINDS.map((k) => el("label", {},
    el("input", { type: "checkbox", name: "kind", value: k, checked: kinds.has(k) }), " " + k)));
  const form = $("#map-form");
  form.elements.pid.value = params.get("pid") || "";
  form.elements.service.value = params.get("service") || "";
  form.elements.listening.checked = params.get("listening") === "1";
  form.addEventListener("submit", (event) => { event.preventDefault(); refreshMapSafely(); });
}

// ---------------------------------------------------------------- benchmarks

async function refreshBench() {
  const response = await fetch("/api/bench");
  const listing = await response.json();
  $("#bench-dir").textContent = listing.directory || "";
  const note = $("#bench-note");
  if (!listing.directory) note.textContent = "No benchmark directory: start the dashboard with --bench DIR " +
    "(files written by trunkline bench NAME --json --plot DIR/NAME.png > DIR/NAME.json).";
  else note.textContent = listing.error || (listing.results.length ? "" : "No results in this directory yet.");
  $("#bench").replaceChildren(...listing.results.map((r) => el("div", { class: "bench-card", "data-bench": r.name },
    el("h3", {}, r.name, " ", el("small", { class: "note" }, new Date(r.written * 1000).toLocaleString())),
    r.host ? el("div", { class: "figures" }, r.host) : null,
    el("div", { class: "figures" }, Object.entries(r.figures).map(([k, v]) => `${k} ${v}`).join(", ")),
    r.error ? el("p", { class: "notes" }, r.error) : null,
    r.plot ? el("img", { src: "/api/bench/" + encodeURIComponent(r.plot), alt: r.name + " plot", loading: "lazy" }) : null,
    el("a", { href: "/api/bench/" + encodeURIComponent(r.json) }, r.json))));
}

// An action that fails (the dashboard stopped, say) says so on the page, not in the console.
function attempt(action, where) {
  return (...args) => action(...args).catch((err) => { $(where).textContent = "failed: " + err.message; });
}

// ---------------------------------------------------------------- start

setUpMapForm();
tick();
setInterval(tick, 1000);
attempt(async () => {
  const view = await (await fetch("/api/services")).json();
  if (!servicesView) renderServices(view);
}, "#services-note")();
follow("/ws/services", "services", renderServices);
follow("/ws/traces", "traces", renderTraces);
const refreshBenchSafely = attempt(refreshBench, "#bench-note");
$("#bench-refresh").addEventListener("click", refreshBenchSafely);
refreshBenchSafely();
refreshMapSafely();
