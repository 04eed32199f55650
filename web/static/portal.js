// Slipway portal: makes pages live. Everything works without this file; with it, a
// run's log and stages stream over server-sent events, and pages that show status
// refresh themselves while visible.
"use strict";

// ANSI SGR colours as classes, matching the server's rendering (web/src/ansi.rs).
function ansiToFragment(text) {
  const fragment = document.createDocumentFragment();
  let fg = null, bold = false;
  const parts = text.split(/\x1b\[([0-9;]*)([@-~])/);
  for (let i = 0; i < parts.length; i += 3) {
    if (parts[i]) {
      const clean = parts[i].replace(/\x1b./g, "").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
      if (fg === null && !bold) {
        fragment.append(clean);
      } else {
        const span = document.createElement("span");
        span.className = [fg === null ? "" : "fg-" + fg, bold ? "b" : ""].join(" ").trim();
        span.textContent = clean;
        fragment.append(span);
      }
    }
    if (i + 2 < parts.length && parts[i + 2] === "m") {
      for (const code of parts[i + 1].split(";").map((c) => parseInt(c || "0", 10))) {
        if (code === 0) { fg = null; bold = false; }
        else if (code === 1) bold = true;
        else if (code === 22) bold = false;
        else if (code >= 30 && code <= 37) fg = code - 30;
        else if (code === 39) fg = null;
        else if (code >= 90 && code <= 97) fg = code - 90 + 8;
      }
    }
  }
  return fragment;
}

function statusClass(status) {
  if (status === "succeeded") return "ok";
  if (status === "failed") return "bad";
  if (["running", "preparing", "queued", "pending"].includes(status)) return "busy";
  return "idle";
}

function setStatus(element, status) {
  element.textContent = status;
  element.className = "status " + statusClass(status);
}

function followRun(log) {
  const runId = log.dataset.run;
  let lastSeq = parseInt(log.dataset.lastSeq || "0", 10);
  const follow = document.getElementById("follow");
  const source = new EventSource("/api/v1/runs/" + runId + "/events");
  source.addEventListener("log", (event) => {
    const data = JSON.parse(event.data);
    if (data.seq <= lastSeq) return; // already rendered by the server
    lastSeq = data.seq;
    const line = document.createElement("span");
    line.className = "line";
    line.id = "L" + data.seq;
    const anchor = document.createElement("a");
    anchor.className = "ln";
    anchor.href = "#L" + data.seq;
    anchor.setAttribute("aria-label", "line " + data.seq);
    anchor.textContent = data.seq;
    const stage = document.createElement("span");
    stage.className = "stage";
    stage.textContent = data.stage;
    line.append(anchor, stage, ansiToFragment(data.line), "\n");
    log.append(line);
    if (follow && follow.checked) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("stage", (event) => {
    const data = JSON.parse(event.data);
    const item = document.querySelector('#stages li[data-stage="' + CSS.escape(data.name) + '"]');
    if (!item) return;
    item.className = statusClass(data.status);
    setStatus(item.querySelector(".status"), data.status);
    if (data.duration_ms !== null && data.duration_ms !== undefined) {
      item.querySelector(".duration").textContent = data.duration_ms < 1000
        ? data.duration_ms + " ms" : (data.duration_ms / 1000).toFixed(1) + " s";
    }
  });
  source.addEventListener("finished", (event) => {
    const data = JSON.parse(event.data);
    source.close();
    log.dataset.finished = "true";
    setStatus(document.getElementById("run-status"), data.status);
    const reason = document.getElementById("run-reason");
    if (data.reason) { reason.textContent = data.reason; reason.hidden = false; }
    const cancel = document.getElementById("cancel-form");
    if (cancel) cancel.remove();
    // Durations and final stage states come from the server.
    refresh();
  });
  source.onerror = () => {
    if (log.dataset.finished === "true") source.close();
  };
  // Reading back up stops following; scrolling to the end resumes it.
  log.addEventListener("scroll", () => {
    if (follow) follow.checked = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  });
  if (follow && follow.checked && !location.hash) log.scrollTop = log.scrollHeight;
}

// Swaps in a fresh copy of <main> when it changed, unless the user is typing in it.
async function refresh() {
  const main = document.getElementById("main");
  const typing = main.contains(document.activeElement) && document.activeElement.matches("input, select, textarea");
  // Not while the user is typing, or has opened a form the refresh would fold away.
  if (document.hidden || typing || main.querySelector("details[open]")) return;
  try {
    const response = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok || response.redirected) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("main");
    if (fresh && fresh.innerHTML !== main.innerHTML) {
      const log = document.getElementById("log");
      if (log && log.dataset.finished !== "true") return; // the stream owns a live log
      main.innerHTML = fresh.innerHTML;
    }
  } catch (_) {
    // Offline for a moment: the next tick tries again.
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const log = document.getElementById("log");
  if (log && log.dataset.finished !== "true") followRun(log);
  const main = document.getElementById("main");
  const every = parseInt(main && main.dataset.refresh || "0", 10);
  if (every > 0) setInterval(refresh, every * 1000);
});
