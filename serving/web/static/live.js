/* Live page: polls /ui/api/live and draws the figures with DOM APIs only. */
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const fmtMs = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(v < 10 ? 2 : 0)} ms`);

  function bars(scores) {
    const box = $("l-scores");
    box.replaceChildren();
    const peak = Math.max(1, ...scores.map((s) => s.count));
    for (const s of scores) {
      const row = document.createElement("div");
      row.className = "bar-row";
      const label = document.createElement("span");
      label.textContent = `${s.lo.toFixed(2)}–${s.hi.toFixed(2)}`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(100 * s.count) / peak}%`;
      const count = document.createElement("span");
      count.textContent = String(Math.round(s.count));
      row.append(label, bar, count);
      box.appendChild(row);
    }
  }

  function series(points) {
    const svg = $("l-series");
    svg.replaceChildren();
    if (points.length < 2) {
      const note = document.createElementNS(SVG, "text");
      note.setAttribute("x", "2");
      note.setAttribute("y", "40");
      note.setAttribute("font-size", "12");
      note.textContent = "collecting samples…";
      svg.appendChild(note);
      return;
    }
    const t0 = points[0].t;
    const span = Math.max(points[points.length - 1].t - t0, 1);
    const peak = Math.max(1e-9, ...points.map((p) => p.rps));
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.map((p) => `${(600 * (p.t - t0)) / span},${78 - (74 * p.rps) / peak}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#2463eb");
    svg.appendChild(line);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", "2");
    label.setAttribute("y", "10");
    label.setAttribute("font-size", "10");
    label.textContent = `peak ${peak.toFixed(1)}/s`;
    svg.appendChild(label);
  }

  async function refresh() {
    let body = null;
    try {
      const resp = await fetch("/ui/api/live", { cache: "no-store" });
      body = await mlcycle.readJson(resp);
      if (!resp.ok || !body || body.error) throw new Error(mlcycle.errorText(resp.status, body));
    } catch (e) {
      mlcycle.show($("live-error"), `live metrics unavailable: ${e.message || e}`);
      return;
    }
    mlcycle.hide($("live-error"));
    $("live-window").textContent = `(${body.window})`;
    $("l-rate").textContent = body.request_rate.toFixed(2);
    $("l-requests").textContent = `${Math.round(body.requests)} requests`;
    $("l-errors").textContent = `${(100 * body.error_rate).toFixed(2)} %`;
    $("l-server-errors").textContent = `5xx: ${(100 * body.server_error_rate).toFixed(2)} %`;
    $("l-p50").textContent = fmtMs(body.p50_ms);
    $("l-p99").textContent = fmtMs(body.p99_ms);
    bars(body.scores || []);
    series(body.series || []);
  }

  refresh();
  setInterval(refresh, 5000);
})();
