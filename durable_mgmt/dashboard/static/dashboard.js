// The dashboard's only script of its own: no inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";

  function flash(message, isError) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;            // text, never HTML: server messages may quote stored values
    box.className = isError ? "error" : "ok";
  }

  // Guard refusals (read-only, anti-forgery, allow-list) and server errors are shown as they are.
  document.addEventListener("htmx:responseError", function (e) {
    flash(e.detail.xhr.status + ": " + e.detail.xhr.responseText, true);
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The dashboard did not answer: is the server still running?", true);
  });

  // Event data is checked before anything is sent: a typo must not reach an orchestration.
  document.addEventListener("htmx:confirm", function (e) {
    var form = e.target.closest && e.target.closest("form");
    var data = form && form.querySelector("textarea[name=event_data]");
    if (data && data.value.trim()) {
      try { JSON.parse(data.value); }
      catch (err) {
        e.preventDefault();
        flash("The event data is not JSON (" + err.message + "); nothing was sent.", true);
      }
    }
  });

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (t.id === "select-all") {
      document.querySelectorAll("input.pick").forEach(function (box) { box.checked = t.checked; });
    }
    if (t.id === "job-stop") {
      // The job stays in storage, Interrupted after the step in flight: resume it from its page or the CLI.
      var run = document.getElementById("job-run");
      if (run) stopped[run.dataset.job] = true;
      var next = document.getElementById("job-next");
      if (next) next.remove();
      markStopped();
    }
  });

  var stopped = {};
  function markStopped() {
    var running = document.getElementById("job-running");
    if (running) running.textContent = "stopped by you (resume it from the job's page)";
    var stop = document.getElementById("job-stop");
    if (stop) stop.remove();
  }
  // A step already in flight when Stop was pressed brings the next step's form back: it is not sent.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail.elt;
    if (elt && elt.id === "job-next") {
      var id = elt.querySelector("input[name=id]");
      if (id && stopped[id.value]) { e.preventDefault(); elt.remove(); markStopped(); }
    }
  });

  // The overview's histogram: data fetched after the counts are on screen.
  function drawHistogram() {
    var canvas = document.getElementById("histogram");
    if (!canvas || !window.Chart) return;
    var note = document.getElementById("histogram-note");
    fetch(canvas.dataset.src, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(r.status + ": " + t); });
      return r.json();
    }).then(function (data) {
      var colors = {Pending: "#9e9e9e", Running: "#1e88e5", Completed: "#43a047", ContinuedAsNew: "#00897b",
                    Failed: "#e53935", Canceled: "#6d4c41", Terminated: "#fb8c00", Suspended: "#8e24aa"};
      var datasets = Object.keys(data.series).map(function (name) {
        return {label: name, data: data.series[name], backgroundColor: colors[name] || "#777"};
      });
      if (canvas._chart) canvas._chart.destroy();
      canvas._chart = new window.Chart(canvas, {
        type: "bar",
        data: {labels: data.labels, datasets: datasets},
        options: {animation: false, responsive: true, maintainAspectRatio: false,
                  scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}}
      });
      var total = datasets.reduce(function (n, d) { return n + d.data.reduce(function (a, b) { return a + b; }, 0); }, 0);
      note.textContent = total + " instances in " + data.labels.length + " buckets (UTC).";
      note.dataset.total = String(total);
    }).catch(function (err) { note.textContent = "The histogram could not be loaded: " + err.message; note.className = "error"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawHistogram();
    var canvas = document.getElementById("histogram");
    var every = canvas ? parseInt(canvas.dataset.refresh || "0", 10) : 0;
    if (every > 0) setInterval(function () { window.location.reload(); }, every * 1000);
  });
})();
