// sstore web console: the live parts. Every page works without this script; with it, the
// current job's state and one progress bar per destination (bytes, rate, ETA) follow the
// job's event stream (server-sent events, the session cookie authenticates) without reloading.
(function () {
  "use strict";

  var FINISHED = ["succeeded", "partially succeeded", "failed", "cancelled", "interrupted"];

  function bytes(n) {
    if (!(n >= 0)) { return "?"; }
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + units[i];
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) { return seconds + " s"; }
    var m = Math.floor(seconds / 60);
    if (m < 60) { return m + " min " + (seconds % 60) + " s"; }
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function setText(element, text) {
    if (element) { element.textContent = text; }
  }

  function stateClass(element, state) {
    if (!element) { return; }
    element.className = "state state-" + String(state).replace(/ /g, "-");
  }

  // An RFC 3339 time as the server renders it: "2026-12-01 10:22:03 UTC".
  function when(t) {
    if (!t) { return ""; }
    var text = String(t).replace("T", " ");
    return text.charAt(text.length - 1) === "Z" ? text.slice(0, -1) + " UTC" : text;
  }

  function follow(section) {
    var id = section.getAttribute("data-job-id");
    if (!id || !window.EventSource || section.getAttribute("data-finished") === "true") {
      return;
    }
    var live = section.querySelector("[data-live-status]");
    var body = section.querySelector("[data-destinations]");
    var samples = {};
    var source = new EventSource("/api/v1/jobs/" + encodeURIComponent(id) + "/events");
    setText(live, "Live: following the job as it runs.");

    function row(target) {
      var rows = section.querySelectorAll("[data-destination]");
      for (var i = 0; i < rows.length; i += 1) {
        if (rows[i].getAttribute("data-destination") === target) { return rows[i]; }
      }
      if (!body) { return null; }
      var tr = document.createElement("tr");
      tr.setAttribute("data-destination", target);
      var name = document.createElement("td");
      name.textContent = target;
      var state = document.createElement("td");
      var stateText = document.createElement("span");
      stateText.setAttribute("data-target-state", "");
      stateText.textContent = "pending";
      state.appendChild(stateText);
      var progress = document.createElement("td");
      var bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      bar.setAttribute("aria-label", "Progress of " + target);
      var text = document.createElement("div");
      text.className = "progress-text";
      text.setAttribute("data-progress-text", "");
      progress.appendChild(bar);
      progress.appendChild(text);
      var failure = document.createElement("td");
      failure.className = "failure";
      failure.setAttribute("data-target-message", "");
      tr.appendChild(name);
      tr.appendChild(state);
      tr.appendChild(progress);
      tr.appendChild(failure);
      body.appendChild(tr);
      var empty = section.querySelector("[data-no-destinations]");
      if (empty) { empty.remove(); }
      return tr;
    }

    function progress(target, sent, total) {
      var tr = row(target);
      if (!tr) { return; }
      var bar = tr.querySelector("progress");
      if (bar) {
        bar.max = total > 0 ? total : 1;
        bar.value = Math.min(sent, bar.max);
      }
      var now = Date.now() / 1000;
      var sample = samples[target];
      if (!sample || sent < sample.bytes) {
        sample = samples[target] = { time: now, bytes: sent };
      }
      var text = bytes(sent) + " of " + bytes(total);
      var rate = now > sample.time + 0.2 ? (sent - sample.bytes) / (now - sample.time) : 0;
      if (rate > 0) {
        text += ", " + bytes(rate) + "/s";
        if (total > sent) { text += ", about " + duration((total - sent) / rate) + " left"; }
      }
      setText(tr.querySelector("[data-progress-text]"), text);
    }

    function targetState(target, state, message) {
      var tr = row(target);
      if (!tr) { return; }
      var cell = tr.querySelector("[data-target-state]");
      setText(cell, state);
      stateClass(cell, state);
      if (message !== undefined) { setText(tr.querySelector("[data-target-message]"), message || ""); }
    }

    source.addEventListener("job", function (event) {
      var job = JSON.parse(event.data);
      var state = section.querySelector("[data-job-state]");
      setText(state, job.state);
      stateClass(state, job.state);
      setText(section.querySelector("[data-queued-reason]"), job.queued_reason || "");
      setText(section.querySelector("[data-job-failure]"), job.failure_message || "");
      setText(section.querySelector("[data-job-summary]"), job.summary || "");
      setText(section.querySelector("[data-job-started]"), when(job.started));
      setText(section.querySelector("[data-job-finished]"), when(job.finished));
      setText(section.querySelector("[data-job-counts]"), (job.warnings || 0) + ", " + (job.errors || 0));
      (job.destinations || []).forEach(function (d) {
        progress(d.name, d.bytes_sent, d.bytes_total);
        targetState(d.name, d.state, d.message);
      });
      if (FINISHED.indexOf(job.state) >= 0) {
        source.close();
        section.setAttribute("data-finished", "true");
        setText(live, "The job has ended; Refresh shows it among the earlier jobs.");
      }
    });
    source.addEventListener("progress", function (event) {
      var p = JSON.parse(event.data);
      progress(p.target, p.bytes, p.total);
    });
    source.addEventListener("target-state", function (event) {
      var p = JSON.parse(event.data);
      targetState(p.target, p.state);
    });
    source.addEventListener("target-done", function (event) {
      var p = JSON.parse(event.data);
      targetState(p.target, p.ok ? "succeeded" : "failed", p.message || "");
    });
    source.onerror = function () {
      if (section.getAttribute("data-finished") !== "true") {
        setText(live, "Live updates paused; the page refreshes itself.");
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var sections = document.querySelectorAll("[data-live-job]");
    for (var i = 0; i < sections.length; i += 1) { follow(sections[i]); }
  });
})();
