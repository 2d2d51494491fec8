// memprof report page (src/view/report.rs): switches the sample type, and
// drives the search and zoom of inferno's flame graphs, each in an
// <iframe srcdoc> of its own (same origin as this page).
"use strict";
(function () {
  var select = document.getElementById("type");
  var search = document.getElementById("search");
  var matched = document.getElementById("matched");
  var unzoom = document.getElementById("unzoom");

  // Grow each frame to its SVG's height once loaded.
  function fit(f) {
    try {
      var svg = f.contentDocument && f.contentDocument.querySelector("svg");
      if (svg) f.style.height = Math.ceil(svg.getBoundingClientRect().height) + 2 + "px";
    } catch (e) { /* not scriptable: keep the CSS height */ }
  }
  var frames = document.querySelectorAll("iframe.flame");
  for (var i = 0; i < frames.length; i++) {
    (function (f) {
      f.addEventListener("load", function () { fit(f); });
      if (f.contentDocument && f.contentDocument.readyState === "complete") fit(f);
    })(frames[i]);
  }

  function current() {
    return select ? select.value : null;
  }
  function flameWindow() {
    var f = document.getElementById("flame-" + current());
    return f && f.tagName === "IFRAME" ? f.contentWindow : null;
  }
  function escapeRe(s) {
    return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  // Highlights the matching frames (inferno's `search`) and table rows.
  function runSearch() {
    var term = search ? search.value : "";
    var w = flameWindow();
    if (matched) matched.textContent = "";
    if (w && typeof w.search === "function") {
      if (w.searching) w.search_prompt(); // with a search on, this resets it
      if (term) {
        w.search(escapeRe(term));
        var m = w.document.getElementById("matched");
        if (matched && m && m.textContent) matched.textContent = m.textContent;
      }
    }
    var rows = document.querySelectorAll("table.top tbody tr");
    for (var i = 0; i < rows.length; i++) {
      var fn = rows[i].querySelector("td.fn");
      var hit = term && fn && fn.textContent.indexOf(term) >= 0;
      rows[i].classList.toggle("match", !!hit);
    }
  }

  function show() {
    var t = current();
    var els = document.querySelectorAll("#flame .flame, #top div.top");
    for (var i = 0; i < els.length; i++) {
      els[i].classList.toggle("off", els[i].getAttribute("data-type") !== t);
    }
    var f = document.getElementById("flame-" + t);
    if (f && f.tagName === "IFRAME") {
      fit(f);
      // inferno lays out its text for the frame's width on resize.
      try { f.contentWindow.dispatchEvent(new Event("resize")); } catch (e) { }
    }
    runSearch();
  }

  if (select) select.addEventListener("change", show);
  if (search) {
    search.addEventListener("input", runSearch);
    search.addEventListener("search", runSearch);
  }
  if (unzoom) unzoom.addEventListener("click", function () {
    var w = flameWindow();
    if (w && typeof w.unzoom === "function") w.unzoom();
  });
})();
