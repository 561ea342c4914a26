// Flashline dashboard: a table of the devices on the line, kept current by server-sent events.
"use strict";
(function () {
  const rows = document.getElementById("rows");
  const live = document.getElementById("live");
  const showAll = document.getElementById("showall");
  const allLines = document.getElementById("alllines");
  // ?line= of every request: this server's line (absent) or every line of the plant (*).
  const lineQ = () => allLines.checked ? "line=*" : "";
  const devices = new Map(); // mac -> device

  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const label = { issued: "JOB SENT", running: "RUNNING", pass: "PASS", fail: "FAIL", error: "ERROR", expired: "SILENT" };
  const bytes = (n) => n >= 1 << 30 ? (n / (1 << 30)).toFixed(2) + " GiB" : (n / (1 << 20)).toFixed(0) + " MiB";
  function ago(t) {
    if (!t) return "";
    const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000);
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(t).toLocaleString();
  }

  function progress(r, st) {
    if (!r) return "";
    if (st === "expired") return "";
    if (st === "pass" || st === "fail" || st === "error") {
      return `<div class="bar ${st}"><i style="width:100%"></i><span>${label[st]}</span></div>`;
    }
    if (r.progress_total > 0) {
      const p = Math.min(100, 100 * r.progress_done / r.progress_total);
      return `<div class="bar"><i style="width:${p.toFixed(1)}%"></i><span>${p.toFixed(0)}% · ${bytes(r.progress_done)} / ${bytes(r.progress_total)}</span></div>`;
    }
    return `<div class="bar busy"><i></i><span></span></div>`;
  }

  // status of a run as the operator sees it: SILENT once it is past silent_at (the
  // heartbeat timeout, or the job's expiry for agents without heartbeats).
  function statusOf(r) {
    if (!r) return "";
    const st = r.status;
    const silent = Date.parse(r.silent_at || r.expires_at);
    if ((st === "issued" || st === "running") && silent < Date.now()) return "expired";
    return st;
  }
  // stepOf names where a run is: "step 4 of 9 · Power button" while testing, "flashing"
  // while flashing, "done" after a pass, the failed step after a failure.
  function stepOf(r, st) {
    if (!r) return "";
    if (st === "pass") return `done <span class="muted">· tested and flashed</span>`;
    if (st === "fail" || st === "error") return r.failed_step ? `<span class="step">${esc(r.failed_step)}</span>` : "";
    if (st === "expired") return `silent <span class="muted">· last heard ${ago(r.heard_at || r.updated_at)}</span>`;
    if (r.phase === "flash") return `flashing`;
    const n = r.steps_total ? `step ${r.step_index || 0} of ${r.steps_total}` : "";
    return [n, r.step ? `<span class="step">${esc(r.step)}</span>` : (r.phase ? esc(r.phase) : "")].filter(Boolean).join(" · ");
  }
  const promptOf = (r, st) => r && r.prompt && (st === "running" || st === "issued") ? r.prompt : "";

  function rowHTML(d) {
    const r = d.run;
    const st = statusOf(r);
    let where = "";
    if (r) {
      const p = promptOf(r, st);
      const msg = st === "fail" || st === "error" ? r.reason : (p ? "" : r.message);
      where = stepOf(r, st) + (p ? `<div class="rowprompt">${esc(p)}</div>` : "") + (msg ? `<div class="msg">${esc(msg)}</div>` : "");
    }
    const serial = d.serial || "(no serial)";
    const boot = d.boot_mode === "localboot"
      ? `local disk <button class="reset" data-mac="${esc(d.mac)}" title="netboot and provision it again">reset</button>`
      : "provision";
    return `<td class="mono serial"><a href="#" data-serial="${esc(d.serial)}">${esc(serial)}</a></td>` +
      `<td class="mono c-mac">${esc(d.mac)}</td><td class="c-station">${esc(r && r.station || d.station || "")}</td><td class="c-product">${esc(d.product)}</td>` +
      `<td><span class="badge ${esc(st)}">${esc(label[st] || "—")}</span></td>` +
      `<td class="where">${where}</td><td class="prog">${progress(r, st)}</td><td class="c-boot">${boot}</td>` +
      `<td class="muted c-updated" data-t="${esc(r ? r.updated_at : d.last_seen)}">${ago(r ? r.updated_at : d.last_seen)}</td>`;
  }

  function upsert(d, highlight) {
    let tr = document.getElementById("dev-" + d.mac);
    // While a search is shown, live updates refresh its rows but add none.
    if (!tr && filtered() && highlight) return;
    devices.set(d.mac, d);
    const empty = rows.querySelector("tr.empty");
    if (empty) empty.remove();
    if (!tr) {
      tr = document.createElement("tr");
      tr.id = "dev-" + d.mac;
      rows.prepend(tr);
    }
    tr.dataset.status = d.run ? d.run.status : "";
    tr.innerHTML = rowHTML(d);
    if (highlight) { tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash"); }
    document.getElementById("count").textContent = `(${devices.size})`;
  }

  // The filter of the device list (and of its export): text (serial or MAC, any part, any
  // case), status, product, station, time range; without one, the devices of the last 12 h.
  const val = (id) => document.getElementById(id).value.trim();
  const filtered = () => ["serial", "fstatus", "fproduct", "fstation", "fsince", "funtil"].some((id) => val(id) !== "");
  function filterQ() {
    const p = new URLSearchParams();
    if (val("serial")) p.set("q", val("serial"));
    if (val("fstatus")) p.set("status", val("fstatus"));
    if (val("fproduct")) p.set("product", val("fproduct"));
    if (val("fstation")) p.set("station", val("fstation"));
    const since = val("fsince") ? new Date(val("fsince")) : (showAll.checked || filtered() ? null : new Date(Date.now() - 12 * 3600e3));
    if (since) p.set("since", since.toISOString().replace(/\.\d+Z$/, "Z"));
    if (val("funtil")) p.set("until", new Date(val("funtil")).toISOString().replace(/\.\d+Z$/, "Z"));
    if (allLines.checked) p.set("line", "*");
    return p;
  }
  function exportLinks() {
    const p = filterQ();
    if (!val("fsince") && !showAll.checked && !filtered()) p.delete("since"); // the export's default window: 24 h
    p.set("format", "csv");
    document.getElementById("lcsv").href = "/dashboard/api/export?" + p;
    p.set("format", "json");
    document.getElementById("ljson").href = "/dashboard/api/export?" + p;
  }

  async function loadAll() {
    exportLinks();
    const res = await fetch("/dashboard/api/search?" + filterQ());
    if (!res.ok) return;
    const out = await res.json();
    const list = out.devices;
    devices.clear();
    rows.innerHTML = "";
    if (list.length === 0) rows.innerHTML = `<tr class="empty"><td colspan="9">${filtered() ? "No device matches." : "No device has asked for a job yet."}</td></tr>`;
    for (const d of list.reverse()) upsert(d, false);
    const note = document.getElementById("limitnote");
    note.hidden = !out.more;
    note.textContent = `Showing the ${out.limit} most recent devices only: more match. Narrow the search (serial, status, station, time range) or export them.`;
    document.getElementById("count").textContent = `(${devices.size}${out.more ? "+" : ""})`;
    return list;
  }

  function connect() {
    const es = new EventSource("/dashboard/events");
    es.addEventListener("hello", () => { live.textContent = "live"; live.classList.remove("off"); loadAll(); });
    es.addEventListener("reload", loadAll);
    es.addEventListener("device", (e) => { upsert(JSON.parse(e.data), true); overviewSoon(); });
    es.onerror = () => { live.textContent = "reconnecting"; live.classList.add("off"); };
  }

  // History of one serial: runs, steps with measurements, phase timings.
  async function showHistory(serial) {
    const sec = document.getElementById("history");
    document.getElementById("hserial").textContent = serial || "(no serial)";
    const q = "?serial=" + encodeURIComponent(serial);
    document.getElementById("csv").href = "/dashboard/api/export" + q + "&format=csv";
    document.getElementById("json").href = "/dashboard/api/export" + q + "&format=json";
    const res = await fetch("/dashboard/api/history" + q);
    const runs = res.ok ? await res.json() : [];
    const out = runs.map((r) => {
      const steps = (r.steps || []).map((s) => `<tr><td>${esc(s.name)}</td><td class="mono">${esc(s.check)}</td>` +
        `<td><span class="badge ${esc(s.status)}">${esc(s.status.toUpperCase())}</span></td><td>${s.duration_ms} ms</td>` +
        `<td>${(s.measurements || []).map((m) => `${esc(m.name)}=${esc(m.value ?? m.text)}${esc(m.unit ? " " + m.unit : "")}`).join(", ")}` +
        `${s.message ? `<div class="msg">${esc(s.message)}</div>` : ""}</td></tr>`).join("");
      const max = Math.max(1, ...(r.timings || []).map((t) => t.duration_ms));
      const timings = (r.timings || []).map((t) => `<span title="measured by the ${esc(t.source === "server" ? "line server" : "agent")}">${esc(t.phase)}</span><span class="tb ${esc(t.source)}" ` +
        `style="width:${(100 * t.duration_ms / max).toFixed(1)}%"></span><span>${(t.duration_ms / 1000).toFixed(2)} s</span>`).join("");
      const flash = r.flash ? `<div class="msg">flash: ${esc(r.flash.target)} ${bytes(r.flash.bytes)} ${esc(r.flash.format)} in ${(r.flash.duration_ms / 1000).toFixed(1)} s` +
        `${r.flash.resumes ? `, ${r.flash.resumes} resumes` : ""}</div>` : "";
      return `<div class="run"><h3><span class="badge ${esc(r.status)}">${esc(label[r.status] || r.status)}</span>` +
        `<span class="mono">${esc(r.run_id)}</span><span class="muted">${new Date(r.issued_at).toLocaleString()} · ${esc(r.scenario)} · ${esc(r.image)} · ${esc(r.mac)}${r.station ? " · station " + esc(r.station) : ""}</span></h3>` +
        (r.reason ? `<div class="msg">${esc(r.failed_step)}: ${esc(r.reason)}</div>` : "") + flash +
        (steps ? `<table><thead><tr><th>Step</th><th>Check</th><th>Result</th><th>Time</th><th>Measured</th></tr></thead><tbody>${steps}</tbody></table>` : "") +
        (timings ? `<div class="timings">${timings}</div>` : "") + `</div>`;
    }).join("");
    document.getElementById("runs").innerHTML = out || `<p class="muted">No runs recorded for this serial.</p>`;
    // A panel over the page, in view wherever the operator was looking.
    sec.hidden = false;
    sec.scrollTop = 0;
    history.replaceState(null, "", "#serial=" + encodeURIComponent(serial));
  }

  rows.addEventListener("click", async (e) => {
    const a = e.target.closest("a[data-serial]");
    if (a) { e.preventDefault(); showHistory(a.dataset.serial); return; }
    const b = e.target.closest("button.reset");
    if (b && confirm(`Provision ${b.dataset.mac} again at its next netboot?`)) {
      const res = await fetch(`/dashboard/api/devices/${encodeURIComponent(b.dataset.mac)}/reset`, { method: "POST" });
      if (res.ok) upsert(await res.json(), true);
    }
  });
  // Search: the list shows what matches; one match opens its history.
  document.getElementById("find").addEventListener("submit", async (e) => {
    e.preventDefault();
    const list = await loadAll();
    if (list && list.length === 1 && val("serial")) showHistory(list[0].serial);
  });
  document.getElementById("fclear").addEventListener("click", () => { document.getElementById("find").reset(); loadAll(); });
  for (const id of ["fstatus", "fstation"]) document.getElementById(id).addEventListener("change", loadAll);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") document.getElementById("hclose").click(); });
  document.getElementById("stations").addEventListener("click", (e) => {
    const a = e.target.closest("a[data-serial]");
    if (a) { e.preventDefault(); showHistory(a.dataset.serial); }
  });
  document.getElementById("hclose").addEventListener("click", () => {
    document.getElementById("history").hidden = true;
    history.replaceState(null, "", location.pathname);
  });
  showAll.addEventListener("change", loadAll);
  allLines.addEventListener("change", () => { loadAll(); loadStatus(); loadOverview(); });

  // The line's name, its (or the plant's) figures of the last 24 h, and the queue of results
  // waiting for the plant database while it is unreachable.
  async function loadStatus() {
    const res = await fetch("/dashboard/api/status");
    if (!res.ok) return;
    const st = await res.json();
    const b = st.backlog;
    document.getElementById("alllines-l").hidden = b.driver !== "postgres";
    document.getElementById("linename").textContent = allLines.checked ? "all lines" : (st.line ? "line " + st.line : "");
    const el = document.getElementById("backlog");
    el.hidden = !(b.pending > 0 || b.failed > 0 || !b.reachable);
    el.classList.toggle("ok", b.reachable && b.failed === 0);
    el.textContent = (b.reachable ? "plant database: " : "plant database unreachable: ") +
      `${b.pending} changes queued (${b.results} results)` + (b.oldest ? `, oldest ${ago(b.oldest)}` : "") +
      (b.failed ? `, ${b.failed} refused` : "");
    el.title = b.last_error || "";
    const q = lineQ();
    exportLinks();
    const fr = await fetch("/dashboard/api/figures" + (q ? "?" + q : ""));
    if (!fr.ok) return;
    const f = (await fr.json()).total;
    document.getElementById("figures").textContent = f.finished
      ? `24 h: ${f.finished} runs, yield ${(100 * f.yield).toFixed(1)}%, ${f.devices_per_hour.toFixed(1)} devices/h`
      : "24 h: no finished runs";
  }
  setInterval(loadStatus, 5000);
  loadStatus();
  setInterval(() => document.querySelectorAll("td[data-t]").forEach((td) => { td.textContent = ago(td.dataset.t); }), 5000);
  // Rows turn SILENT by the clock, not by an event: re-render them now and then.
  setInterval(() => { for (const d of devices.values()) { const tr = document.getElementById("dev-" + d.mac); if (tr) tr.innerHTML = rowHTML(d); } }, 5000);

  // The line overview: each station with who is there, the step "n of m", the time it has
  // taken and the operator prompt; the line's figures for the last hour, the shift and today;
  // the steps that fail most, with what was measured against what they were checked against;
  // the devices no rule took.
  const clock = (ms) => { const s = Math.max(0, Math.floor(ms / 1000)); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; };
  const pct = (v) => (100 * v).toFixed(1) + "%";
  let stationNames = [];
  function stationCard(s) {
    const r = s.run;
    if (!r) return `<div class="station free" data-station="${esc(s.name)}"><div class="sname">${esc(s.name)}</div><div class="muted">free</div></div>`;
    const st = statusOf(r);
    const end = r.finished_at ? Date.parse(r.finished_at) : Date.now();
    const p = promptOf(r, st);
    return `<div class="station ${esc(st)}" data-station="${esc(s.name)}">` +
      `<div class="sname">${esc(s.name)} <span class="badge ${esc(st)}">${esc(label[st] || st)}</span></div>` +
      `<div class="who"><a href="#" class="mono" data-serial="${esc(r.serial)}">${esc(r.serial || "(no serial)")}</a> <span class="muted">${esc(r.product || "")}</span></div>` +
      `<div class="swhere">${stepOf(r, st)}</div>` +
      (r.phase === "flash" && st === "running" ? progress(r, st) : "") +
      (st === "fail" || st === "error" ? `<div class="msg">${esc(r.reason || "")}</div>` : "") +
      `<div class="elapsed" data-start="${esc(r.issued_at)}" data-end="${r.finished_at ? esc(r.finished_at) : ""}">${clock(end - Date.parse(r.issued_at))}</div>` +
      (p ? `<div class="prompt"><span class="pstation">${esc(s.name)}:</span> ${esc(p)}</div>` : "") + `</div>`;
  }
  function windowCard(w) {
    const s = w.stats;
    const takt = s.median_takt_s ? clock(s.median_takt_s * 1000) : "—";
    return `<div class="window" data-window="${esc(w.name)}"><h3>${esc(w.label)}</h3><dl>` +
      `<dt>started</dt><dd class="started">${s.started}</dd><dt>passed</dt><dd class="passed">${s.passed}</dd>` +
      `<dt>failed</dt><dd class="failed">${s.failed + s.errors}</dd>` +
      `<dt title="devices whose first run in this window passed">first-pass yield</dt><dd class="fpy">${s.first_tried ? pct(s.first_pass_yield) : "—"}</dd>` +
      `<dt>devices / h</dt><dd>${s.devices_per_hour.toFixed(1)}</dd><dt title="median time between two passed devices">median takt</dt><dd>${takt}</dd>` +
      `</dl></div>`;
  }
  function measured(m) {
    const v = m.min != null ? (m.min === m.max ? `${m.min}` : `${m.min} … ${m.max}`) : (m.last || "");
    return `${esc(m.name)} ${esc(v)}${m.unit ? " " + esc(m.unit) : ""} <span class="muted">(${m.count}×)</span>`;
  }
  async function loadOverview() {
    const res = await fetch("/dashboard/api/line" + (lineQ() ? "?" + lineQ() : ""));
    if (!res.ok) return;
    const ov = await res.json();
    const el = document.getElementById("stations");
    if (ov.stations.length) el.innerHTML = ov.stations.map(stationCard).join("");
    document.getElementById("nstations").textContent = ov.stations.length ? `(${ov.stations.filter((s) => s.run && ["running", "issued"].includes(statusOf(s.run))).length} busy of ${ov.stations.length})` : "";
    document.getElementById("windows").innerHTML = ov.windows.map(windowCard).join("");
    const names = ov.stations.map((s) => s.name);
    if (names.join("\n") !== stationNames.join("\n")) {
      stationNames = names;
      const sel = document.getElementById("fstation");
      const cur = sel.value;
      sel.innerHTML = `<option value="">any station</option>` + names.map((n) => `<option>${esc(n)}</option>`).join("");
      sel.value = cur;
    }
    // The Pareto of the widest window with failures (today, else the shift, else the hour).
    const w = [...ov.windows].reverse().find((x) => x.stats.pareto.length) || ov.windows[ov.windows.length - 1];
    const par = w ? w.stats.pareto : [];
    document.getElementById("pareto-s").hidden = par.length === 0;
    document.getElementById("pareto-w").textContent = w ? `(${w.label})` : "";
    document.getElementById("pareto").innerHTML = par.map((f) => `<tr><td><span class="step">${esc(f.step)}</span> <span class="muted mono">${esc(f.check || "")}</span>` +
      `${f.last_message ? `<div class="msg">${esc(f.last_message)}</div>` : ""}</td><td>${f.failures}</td>` +
      `<td><div class="share"><i style="width:${(100 * f.share).toFixed(0)}%"></i><span>${pct(f.share)}</span></div></td>` +
      `<td>${(f.measured || []).map(measured).join("<br>")}</td><td class="limits">${esc(f.limits || "")}</td></tr>`).join("");
    const um = ov.unmatched;
    document.getElementById("unmatched-s").hidden = um.length === 0;
    document.getElementById("nunmatched").textContent = `(${um.length})`;
    document.getElementById("unmatched").innerHTML = um.map((u) => `<tr><td class="mono serial">${esc(u.serial || "(no serial)")}<div class="msg">${esc(u.mac)}${u.station ? " · " + esc(u.station) : ""}</div></td>` +
      `<td>${esc(u.reported.product || "")}<div class="msg">${esc([u.reported.vendor, (u.reported.modules || []).join(" "), (u.reported.disks || []).join(", "), u.reported.agent_version].filter(Boolean).join(" · "))}</div></td>` +
      `<td class="why">${esc(u.reason)}</td><td class="muted">${ago(u.last_seen)}<div class="msg">${u.hellos} hellos</div></td></tr>`).join("");
  }
  let overviewTimer = null;
  // Live changes reach the overview within a moment, batched.
  const overviewSoon = () => { if (!overviewTimer) overviewTimer = setTimeout(() => { overviewTimer = null; loadOverview(); }, 300); };
  setInterval(loadOverview, 5000);
  setInterval(() => document.querySelectorAll(".elapsed[data-start]").forEach((e) => {
    e.textContent = clock((e.dataset.end ? Date.parse(e.dataset.end) : Date.now()) - Date.parse(e.dataset.start));
  }), 1000);
  loadOverview();

  // The swarm: what the server's seed and its HTTP downloads sent per image, against the
  // image's size (with the swarm working, well under one copy per device).
  const mib = (b) => (b / 1048576).toFixed(1);
  async function loadSwarm() {
    const res = await fetch("/dashboard/api/swarm");
    if (!res.ok) return;
    const sw = await res.json();
    document.getElementById("swarm-s").hidden = !sw.enabled;
    if (!sw.enabled) return;
    const ims = sw.images || [];
    const peers = ims.reduce((n, i) => n + i.peers, 0);
    document.getElementById("swarm-sum").textContent = `(${ims.length} images, ${peers} peers)`;
    document.getElementById("swarm").innerHTML = ims.map((i) => `<tr><td class="mono">${esc(i.file)}</td><td>${i.peers}</td>` +
      `<td>${i.seeders} / ${i.leechers}</td><td>${mib(i.seed_bytes)}</td><td>${mib(i.http_bytes)}</td>` +
      `<td>${i.length ? ((i.seed_bytes + i.http_bytes) / i.length).toFixed(2) : ""}</td></tr>`).join("");
  }
  setInterval(loadSwarm, 5000);
  loadSwarm();

  loadAll();
  connect();
  // #serial=SN opens that device's history (links can be shared on the line).
  const m = location.hash.match(/^#serial=(.*)$/);
  if (m) showHistory(decodeURIComponent(m[1]));
})();
