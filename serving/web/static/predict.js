/* Predict page: the form posts one JSON row to /predict and shows the probability with the
   fields the server flagged as outside the training range; the CSV form posts text/csv to
   /invocations and offers the input with probability/decision columns appended. */
"use strict";

(() => {
  const form = document.getElementById("predict-form");
  if (!form) return;
  const errorBox = document.getElementById("predict-error");
  const result = document.getElementById("predict-result");
  const threshold = Number(document.getElementById("predict-config").dataset.threshold || 0.5);

  function row() {
    const out = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      el.removeAttribute("aria-invalid");
      el.classList.remove("out-of-range");
      const value = el.value.trim();
      if (el.dataset.kind === "number") out[el.name] = value === "" ? null : Number(value);
      else out[el.name] = value === "" ? null : value;
    }
    return out;
  }

  /* The fields outside the training range (the server's `out_of_range`), each with its range. */
  function showRange(columns) {
    const box = document.getElementById("r-range");
    box.classList.toggle("flag", columns.length > 0);
    if (!columns.length) {
      box.textContent = "every input inside the training range";
      return;
    }
    const parts = columns.map((name) => {
      const el = form.elements.namedItem(name);
      if (!el || !el.dataset) return name;
      el.classList.add("out-of-range");
      const { min, max } = el.dataset;
      return min !== undefined && max !== undefined ? `${name} (training range ${min} – ${max})` : name;
    });
    box.textContent = `outside: ${parts.join(", ")}`;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    mlcycle.hide(errorBox);
    const started = performance.now();
    let resp;
    try {
      const explain = document.getElementById("explain").checked;
      resp = await fetch(explain ? "/predict?explain=true" : "/predict", {
        method: "POST",
        headers: mlcycle.apiHeaders("application/json"),
        body: JSON.stringify(row()),
      });
    } catch (e) {
      mlcycle.show(errorBox, `the server cannot be reached: ${e}`);
      return;
    }
    const ms = performance.now() - started;
    const body = await mlcycle.readJson(resp);
    if (!resp.ok || !body || typeof body.probability !== "number") {
      result.hidden = true;
      mlcycle.show(errorBox, mlcycle.errorText(resp.status, body));
      const bad = body && body.field ? form.elements.namedItem(body.field) : null;
      if (bad && bad.setAttribute) bad.setAttribute("aria-invalid", "true");
      return;
    }
    const p = document.getElementById("r-probability");
    p.textContent = body.probability.toFixed(4);
    p.dataset.value = String(body.probability);
    showRange(Array.isArray(body.out_of_range) ? body.out_of_range : []);
    document.getElementById("r-decision").textContent =
      body.decision === 1 ? `1 (default: probability ≥ ${body.threshold})` : `0 (no default: probability < ${body.threshold})`;
    document.getElementById("r-version").textContent = `${body.model_name} v${body.model_version}`;
    const server = resp.headers.get("Server-Timing");
    document.getElementById("r-latency").textContent =
      `${ms.toFixed(1)} ms round trip` + (server ? ` (${server})` : "");
    mlcycle.setServingVersion(body.model_version);
    showExplanation(body.explanation);
    result.hidden = false;
  });

  /* The attributions as horizontal bars, largest first: right (red) raises the prediction,
     left (blue) lowers it; widths relative to the largest. */
  function showExplanation(explanation) {
    const figure = document.getElementById("explanation");
    const bars = document.getElementById("explain-bars");
    bars.replaceChildren();
    if (!explanation || !explanation.attributions) {
      figure.hidden = true;
      return;
    }
    const entries = Object.entries(explanation.attributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
    const largest = Math.max(...entries.map(([, v]) => Math.abs(v)), 1e-12);
    for (const [name, value] of entries) {
      const item = document.createElement("div");
      item.className = "bar-row";
      item.setAttribute("role", "listitem");
      item.dataset.column = name;
      item.dataset.value = String(value);
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = name;
      const track = document.createElement("span");
      track.className = "bar-track";
      const bar = document.createElement("span");
      bar.className = value >= 0 ? "bar up" : "bar down";
      bar.style.width = `${(50 * Math.abs(value)) / largest}%`;
      track.appendChild(bar);
      const text = document.createElement("span");
      text.className = "bar-value";
      text.textContent = (value >= 0 ? "+" : "") + value.toFixed(4);
      item.append(label, track, text);
      bars.appendChild(item);
    }
    document.getElementById("explain-base").textContent = explanation.base_value.toFixed(4);
    document.getElementById("explain-space").textContent =
      explanation.space === "log_odds" ? "log-odds" : "probability";
    figure.hidden = false;
  }

  /* CSV records (quote-aware: a newline inside quotes does not end a record), blank ones dropped,
     the same rows Python's csv module gives the server. */
  function records(text) {
    const out = [];
    let start = 0;
    let quoted = false;
    for (let i = 0; i <= text.length; i++) {
      const c = text[i];
      if (c === '"') quoted = !quoted;
      else if ((c === "\n" || i === text.length) && !quoted) {
        const rec = text.slice(start, i).replace(/\r$/, "");
        if (rec !== "") out.push(rec);
        start = i + 1;
      }
    }
    return out;
  }

  function cells(rec) {
    const out = [];
    let cur = "";
    let quoted = false;
    for (let i = 0; i < rec.length; i++) {
      const c = rec[i];
      if (quoted) {
        if (c === '"' && rec[i + 1] === '"') { cur += '"'; i++; }
        else if (c === '"') quoted = false;
        else cur += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { out.push(cur); cur = ""; }
      else cur += c;
    }
    out.push(cur);
    return out;
  }

  function preview(table, header, rows) {
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const h of header) {
      const th = document.createElement("th");
      th.textContent = h;
      head.appendChild(th);
    }
    const tbody = table.createTBody();
    for (const r of rows) {
      const tr = tbody.insertRow();
      for (const v of r) tr.insertCell().textContent = v;
    }
  }

  const csvForm = document.getElementById("csv-form");
  const csvError = document.getElementById("csv-error");
  const csvResult = document.getElementById("csv-result");
  let lastUrl = null;

  csvForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    mlcycle.hide(csvError);
    csvResult.hidden = true;
    const file = document.getElementById("csv-file").files[0];
    if (!file) {
      mlcycle.show(csvError, "choose a CSV file first");
      return;
    }
    const text = (await file.text()).replace(/^\uFEFF/, "");
    const recs = records(text);
    if (recs.length < 2) {
      mlcycle.show(csvError, "the CSV needs a header row and at least one data row");
      return;
    }
    const started = performance.now();
    let resp;
    try {
      resp = await fetch("/invocations", {
        method: "POST",
        headers: mlcycle.apiHeaders("text/csv"),
        body: text,
      });
    } catch (e) {
      mlcycle.show(csvError, `the server cannot be reached: ${e}`);
      return;
    }
    const ms = performance.now() - started;
    const body = await mlcycle.readJson(resp);
    const preds = body && Array.isArray(body.predictions) ? body.predictions : null;
    if (!resp.ok || !preds || preds.length !== recs.length - 1) {
      mlcycle.show(csvError, resp.ok ? "the server returned an unexpected number of predictions"
        : mlcycle.errorText(resp.status, body));
      return;
    }
    const lines = [`${recs[0]},probability,decision`];
    const shown = [];
    preds.forEach((p, i) => {
      const decision = p >= threshold ? 1 : 0;
      lines.push(`${recs[i + 1]},${p},${decision}`);
      if (i < 10) shown.push([...cells(recs[i + 1]), p.toFixed(4), String(decision)]);
    });
    if (lastUrl) URL.revokeObjectURL(lastUrl);
    lastUrl = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
    document.getElementById("csv-download").href = lastUrl;
    const version = resp.headers.get("X-Model-Version");
    document.getElementById("csv-summary").textContent =
      `${preds.length} rows scored by v${version} in ${ms.toFixed(0)} ms` +
      (preds.length > 10 ? " (first 10 shown)." : ".");
    preview(document.getElementById("csv-preview"), [...cells(recs[0]), "probability", "decision"], shown);
    csvResult.hidden = false;
  });
})();
