// qron's dashboard: local times, live overview, confirmations, the playground. No framework.
"use strict";
(function () {
  var base = document.body.getAttribute("data-base") || "";

  // Times arrive in UTC; show them in the viewer's zone, keeping UTC on hover.
  function localTimes(root) {
    var format = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
    });
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = format.format(d); }
    });
  }
  localTimes(document);

  // The overview's rows, replaced at each refresh of the shared counts when they changed; a
  // keyboard user's focus stays on the same executor's button, or field, and what was typed
  // in a row's fields stays there.
  var rows = document.getElementById("overview-rows");
  if (rows && window.EventSource) {
    var source = new EventSource(base + "/events");
    var shown = null;
    var selector = function (executor, name) {
      return "tr[data-executor=\"" + CSS.escape(executor) + "\"] " +
        (name ? "input[name=\"" + CSS.escape(name) + "\"]" : "button");
    };
    source.addEventListener("overview", function (e) {
      if (e.data === shown) { return; }
      shown = e.data;
      var active = document.activeElement;
      var row = active && rows.contains(active) ? active.closest("tr[data-executor]") : null;
      var executor = row ? row.getAttribute("data-executor") : null;
      var field = row && active.tagName === "INPUT" ? active.name : null;
      var typed = [];
      rows.querySelectorAll("tr[data-executor] input:not([type=hidden])").forEach(function (input) {
        if (input.value !== input.defaultValue) {
          typed.push([input.closest("tr").getAttribute("data-executor"), input.name, input.value]);
        }
      });
      rows.innerHTML = e.data;
      typed.forEach(function (t) {
        var input = rows.querySelector(selector(t[0], t[1]));
        if (input) { input.value = t[2]; }
      });
      if (executor !== null) {
        var again = rows.querySelector(selector(executor, field));
        if (again) { again.focus(); }
      }
      localTimes(rows);
      var live = document.getElementById("live");
      if (live) { live.textContent = "Live: updated at each count."; }
    });
  }

  // Destructive actions ask first.
  document.addEventListener("submit", function (e) {
    var message = e.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { e.preventDefault(); }
  });

  // Select every job of the page at once.
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = all.checked; });
    });
  }

  // The playground checks as you type.
  var expr = document.getElementById("expr");
  var tz = document.getElementById("tz");
  var result = document.getElementById("result");
  if (expr && result) {
    var timer = null, asked = 0;
    var check = function () {
      var n = ++asked;
      var url = base + "/playground/check?expr=" + encodeURIComponent(expr.value) +
        "&tz=" + encodeURIComponent(tz ? tz.value : "UTC");
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) { if (n === asked) { result.innerHTML = html; } });
    };
    var soon = function () { clearTimeout(timer); timer = setTimeout(check, 120); };
    expr.addEventListener("input", soon);
    if (tz) { tz.addEventListener("input", soon); }
    var form = document.getElementById("playground");
    if (form) { form.addEventListener("submit", function (e) { e.preventDefault(); check(); }); }
  }
})();
