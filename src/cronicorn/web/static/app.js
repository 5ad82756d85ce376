/* Cronicorn pages: progressive enhancement only (every form works without this file).
   - CSRF: htmx requests carry the session's token in X-CSRF-Token (from <meta name=csrf-token>).
   - Times: <time datetime> shown in the browser's zone; the UTC text stays in the title.
   - Live: one EventSource on /events; an "endpoint" event re-fetches the fragments marked
     data-live="all" or whose data-live-endpoints lists that id (htmx trigger "live").
     The header's #live-status says Live / Connection lost.
   - Confirm: forms with data-confirm ask first.
   - Charts: elements with data-chart="<id of a JSON script>" draw with uPlot when loaded.
   No eval, no inline script, no inline style (the CSP forbids all three). */
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrf();
    if (token) event.detail.headers["X-CSRF-Token"] = token;
  });

  var formatter = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit"
  });

  function localTimes(root) {
    var nodes = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.dataset.local) continue;
      var at = new Date(node.getAttribute("datetime"));
      if (isNaN(at.getTime())) continue;
      node.textContent = formatter.format(at);
      node.dataset.local = "1";
    }
  }

  function confirmForms(root) {
    var forms = (root || document).querySelectorAll("form[data-confirm]");
    for (var i = 0; i < forms.length; i++) {
      var form = forms[i];
      if (form.dataset.confirmBound) continue;
      form.dataset.confirmBound = "1";
      form.addEventListener("submit", function (event) {
        if (!window.confirm(this.getAttribute("data-confirm"))) event.preventDefault();
      });
    }
  }

  function charts(root) {
    if (!window.uPlot) return;
    var nodes = (root || document).querySelectorAll("[data-chart]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      if (node.dataset.drawn) continue;
      var source = document.getElementById(node.getAttribute("data-chart"));
      if (!source) continue;
      var spec = JSON.parse(source.textContent);
      node.dataset.drawn = "1";
      var css = getComputedStyle(document.documentElement);
      var series = [{}].concat(spec.series.map(function (s) {
        return { label: s.label, stroke: css.getPropertyValue(s.color || "--spark-ok").trim(),
                 width: 2, fill: s.fill ? css.getPropertyValue(s.fill).trim() : undefined };
      }));
      var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
      new window.uPlot({ width: Math.max(node.clientWidth, 280), height: spec.height || 220,
                         series: series, axes: [{ stroke: css.getPropertyValue("--muted").trim() },
                                                { stroke: css.getPropertyValue("--muted").trim() }] },
                       data, node);
    }
  }

  function enhance(root) { localTimes(root); confirmForms(root); charts(root); }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); startLive(); });
  document.addEventListener("htmx:load", function (event) { enhance(event.detail.elt); });

  // A live refresh must not drop what the user ticked: checkboxes marked data-keep keep
  // their state across a swap (matched by id).
  var kept = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var boxes = event.detail.target.querySelectorAll("input[type=checkbox][data-keep]");
    kept = {};
    for (var i = 0; i < boxes.length; i++) kept[boxes[i].id] = boxes[i].checked;
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!kept) return;
    for (var id in kept) {
      var box = document.getElementById(id);
      if (box) box.checked = kept[id];
    }
    kept = null;
  });

  // Events are coalesced: whatever arrives within a second refreshes each fragment once
  // (a busy account sends many; a page never re-fetches more than once a second).
  var dirty = {}, everything = false, flushTimer = null;

  function refresh(endpointId) {
    if (endpointId === null) everything = true; else dirty[endpointId] = true;
    if (!flushTimer) flushTimer = setTimeout(flush, 1000);
  }

  function flush() {
    flushTimer = null;
    if (!window.htmx) return;
    var nodes = document.querySelectorAll("[data-live]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var ids = (node.getAttribute("data-live-endpoints") || "").split(" ");
      var hit = everything || node.getAttribute("data-live") === "all";
      for (var j = 0; !hit && j < ids.length; j++) hit = dirty[ids[j]] === true;
      if (hit) window.htmx.trigger(node, "live");
    }
    dirty = {};
    everything = false;
  }

  function startLive() {
    var url = document.body.getAttribute("data-live-url");
    var status = document.getElementById("live-status");
    if (!url || !status || !window.EventSource) return;
    var lostTimer = null, wasLost = false, source = null;
    function show(state, text) { status.dataset.state = state; status.textContent = text; }
    function connect() {
      source = new EventSource(url);
      source.addEventListener("hello", function () {
        if (lostTimer) { clearTimeout(lostTimer); lostTimer = null; }
        show("live", "Live");
        if (wasLost) { wasLost = false; refresh(null); }  // catch up on what was missed
      });
      source.addEventListener("endpoint", function (event) { refresh(event.data); });
      source.addEventListener("resync", function () { refresh(null); });
      source.addEventListener("error", function () {
        // Streams end every few seconds by design and reopen at once; only a gap that
        // lasts is a lost connection. A stream the browser gave up on is reopened by hand.
        if (lostTimer) return;
        lostTimer = setTimeout(function () {
          lostTimer = null;
          if (source.readyState === EventSource.OPEN) return;
          wasLost = true;
          show("lost", "Connection lost: retrying");
          if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
        }, 3000);
      });
    }
    connect();
  }
})();
