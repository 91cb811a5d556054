/* Shared helpers for the mlcycle pages. Untrusted text only ever goes through textContent. */
"use strict";

const mlcycle = {
  show(el, text) {
    el.textContent = text;
    el.hidden = false;
  },
  hide(el) {
    el.hidden = true;
    el.textContent = "";
  },
  /* The error message of an API response body ({message, field}) or a fallback. */
  errorText(status, body) {
    if (body && typeof body === "object" && body.message) {
      return body.field ? `${body.message} (field: ${body.field})` : String(body.message);
    }
    return `request failed with HTTP ${status}`;
  },
  async readJson(resp) {
    try {
      return await resp.json();
    } catch (e) {
      return null;
    }
  },
  apiHeaders(contentType) {
    const headers = { "Content-Type": contentType };
    const keyInput = document.getElementById("api-key");
    const key = keyInput ? keyInput.value.trim() : "";
    if (key) headers["X-API-Key"] = key;
    return headers;
  },
  setServingVersion(version) {
    const el = document.getElementById("serving-version");
    if (el) el.textContent = version ? `v${version}` : "no model yet";
  },
};
