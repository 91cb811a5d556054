/* Models page: promotion and rollback as JSON POSTs carrying the admin token in a header (a
   cross-site form cannot set that header, so these are not CSRF-able), then wait until the
   server answers with the new version. */
"use strict";

(() => {
  const tokenInput = document.getElementById("admin-token");
  const errorBox = document.getElementById("admin-error");
  const status = document.getElementById("admin-status");
  // The token stays in this page's memory only (the input): never in sessionStorage or
  // localStorage, where any script of the origin could read it later.

  async function servingVersion() {
    const resp = await fetch("/ui/api/serving", { cache: "no-store" });
    const body = await mlcycle.readJson(resp);
    return body ? body.model_version : null;
  }

  async function waitFor(version, seconds) {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      const now = await servingVersion();
      if (now !== null && String(now) === String(version)) return true;
      await new Promise((r) => setTimeout(r, 500));
    }
    return false;
  }

  async function act(path, payload) {
    mlcycle.hide(errorBox);
    mlcycle.hide(status);
    const token = tokenInput.value.trim();
    if (!token) {
      mlcycle.show(errorBox, "enter the admin token first");
      return;
    }
    payload.reason = document.getElementById("admin-reason").value;
    payload.by = document.getElementById("admin-by").value;
    let resp;
    try {
      resp = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Admin-Token": token },
        body: JSON.stringify(payload),
      });
    } catch (e) {
      mlcycle.show(errorBox, `the server cannot be reached: ${e}`);
      return;
    }
    const body = await mlcycle.readJson(resp);
    if (!resp.ok) {
      mlcycle.show(errorBox, mlcycle.errorText(resp.status, body));
      return;
    }
    const version = body.version;
    mlcycle.show(status, `v${version} promoted to ${body.to}; waiting for the server to switch…`);
    if (await waitFor(version, 30)) {
      mlcycle.setServingVersion(version);
      mlcycle.show(status, `serving v${version} now`);
      setTimeout(() => window.location.reload(), 300);
    } else {
      mlcycle.show(errorBox, `v${version} is promoted in the registry but the server still serves another version; see /health`);
    }
  }

  for (const button of document.querySelectorAll("button.promote")) {
    button.addEventListener("click", () => act("/ui/api/promote", { version: button.dataset.version, to: "production" }));
  }
  document.getElementById("rollback").addEventListener("click", () => act("/ui/api/rollback", {}));
})();
