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

  function rowHTML(d) {
    const r = d.run;
    let st = r ? r.status : "";
    // A job past its expiry with no result: the device went silent (powered off, unplugged).
    if (r && (st === "issued" || st === "running") && Date.parse(r.expires_at) < Date.now()) st = "expired";
    let where = "";
    if (r) {
      const step = st === "fail" && r.failed_step ? r.failed_step : r.step;
      where = [r.phase ? esc(r.phase) : "", step ? `<span class="step">${esc(step)}</span>` : ""].filter(Boolean).join(" · ") +
        (r.reason || r.message ? `<div class="msg">${esc(r.reason || r.message)}</div>` : "");
    }
    const serial = d.serial || "(no serial)";
    const boot = d.boot_mode === "localboot"
      ? `local disk <button class="reset" data-mac="${esc(d.mac)}" title="netboot and provision it again">reset</button>`
      : "provision";
    return `<td class="mono"><a href="#" data-serial="${esc(d.serial)}">${esc(serial)}</a></td>` +
      `<td class="mono">${esc(d.mac)}</td><td>${esc(d.product)}</td>` +
      `<td><span class="badge ${esc(st)}">${esc(label[st] || "—")}</span></td>` +
      `<td>${where}</td><td class="prog">${progress(r, st)}</td><td>${boot}</td>` +
      `<td class="muted" data-t="${esc(r ? r.updated_at : d.last_seen)}">${ago(r ? r.updated_at : d.last_seen)}</td>`;
  }

  function upsert(d, highlight) {
    devices.set(d.mac, d);
    let tr = document.getElementById("dev-" + d.mac);
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

  async function loadAll() {
    const q = [showAll.checked ? "all=1" : "", lineQ()].filter(Boolean).join("&");
    const res = await fetch("/dashboard/api/devices" + (q ? "?" + q : ""));
    if (!res.ok) return;
    const list = await res.json();
    devices.clear();
    rows.innerHTML = "";
    if (list.length === 0) rows.innerHTML = `<tr class="empty"><td colspan="8">No device has asked for a job yet.</td></tr>`;
    for (const d of list.reverse()) upsert(d, false);
  }

  function connect() {
    const es = new EventSource("/dashboard/events");
    es.addEventListener("hello", () => { live.textContent = "live"; live.classList.remove("off"); loadAll(); });
    es.addEventListener("reload", loadAll);
    es.addEventListener("device", (e) => upsert(JSON.parse(e.data), true));
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
        `<span class="mono">${esc(r.run_id)}</span><span class="muted">${new Date(r.issued_at).toLocaleString()} · ${esc(r.scenario)} · ${esc(r.image)} · ${esc(r.mac)}</span></h3>` +
        (r.reason ? `<div class="msg">${esc(r.failed_step)}: ${esc(r.reason)}</div>` : "") + flash +
        (steps ? `<table><thead><tr><th>Step</th><th>Check</th><th>Result</th><th>Time</th><th>Measured</th></tr></thead><tbody>${steps}</tbody></table>` : "") +
        (timings ? `<div class="timings">${timings}</div>` : "") + `</div>`;
    }).join("");
    document.getElementById("runs").innerHTML = out || `<p class="muted">No runs recorded for this serial.</p>`;
    sec.hidden = false;
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
  document.getElementById("find").addEventListener("submit", (e) => { e.preventDefault(); showHistory(document.getElementById("serial").value.trim()); });
  document.getElementById("hclose").addEventListener("click", () => {
    document.getElementById("history").hidden = true;
    history.replaceState(null, "", location.pathname);
  });
  showAll.addEventListener("change", loadAll);
  allLines.addEventListener("change", () => { loadAll(); loadStatus(); });

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
    document.getElementById("lcsv").href = "/dashboard/api/export?format=csv" + (q ? "&" + q : "");
    document.getElementById("ljson").href = "/dashboard/api/export?format=json" + (q ? "&" + q : "");
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

  loadAll();
  connect();
  // #serial=SN opens that device's history (links can be shared on the line).
  const m = location.hash.match(/^#serial=(.*)$/);
  if (m) showHistory(decodeURIComponent(m[1]));
})();
