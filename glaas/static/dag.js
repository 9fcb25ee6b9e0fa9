// GLaaS graphs: pan (drag), zoom (wheel, pinch, buttons, keys) and highlight on hover. The
// layout comes from the server; this only moves the <svg> as one composited layer (a CSS
// transform, never a repaint of its nodes while panning), so a big graph never blocks the tab.
// Without this script the graph is a scrollable picture whose nodes are links.
"use strict";
(function () {
  var MIN = 0.05, MAX = 4;

  function init(box) {
    var svg = box.querySelector("svg.dag-svg");
    if (!svg) return;
    var W = +svg.getAttribute("data-width"), H = +svg.getAttribute("data-height");
    box.classList.add("live");
    box.tabIndex = 0;
    var t = { x: 0, y: 0, k: 1 };

    var sharpen = 0;
    function apply() {
      svg.style.transform = "translate(" + t.x.toFixed(1) + "px," + t.y.toFixed(1) + "px) scale(" + t.k.toFixed(4) + ")";
      box.setAttribute("data-zoom", t.k.toFixed(3));
      box.setAttribute("data-view", t.x.toFixed(1) + "," + t.y.toFixed(1) + "," + t.k.toFixed(3));
      // a composited layer keeps the scale it was drawn at: draw it again once zooming stops
      clearTimeout(sharpen);
      sharpen = setTimeout(function () {
        svg.style.willChange = "auto";
        requestAnimationFrame(function () { svg.style.willChange = "transform"; });
      }, 200);
    }
    function zoomAt(px, py, factor) {
      var k = Math.min(MAX, Math.max(MIN, t.k * factor));
      t.x = px - (px - t.x) * (k / t.k);
      t.y = py - (py - t.y) * (k / t.k);
      t.k = k;
      apply();
    }
    function fit() {
      var bw = box.clientWidth, bh = box.clientHeight;
      t.k = Math.min(1, Math.max(MIN, Math.min(bw / W, bh / H)));
      t.x = (bw - W * t.k) / 2;
      t.y = Math.max(0, (bh - H * t.k) / 2);
      apply();
    }
    function centreOn(el, k) {
      var m = /translate\(([-\d.]+),([-\d.]+)\)/.exec(el.getAttribute("transform") || "");
      if (!m) return fit();
      var r = el.querySelector("rect");
      var cx = +m[1] + (+r.getAttribute("width")) / 2, cy = +m[2] + (+r.getAttribute("height")) / 2;
      t.k = k;
      t.x = box.clientWidth / 2 - cx * k;
      t.y = box.clientHeight / 2 - cy * k;
      apply();
    }
    function local(e) {
      var r = box.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    }

    // the first view: the whole graph, if it is readable at 70% or more; else the focused
    // record at full size; else the graph's start (left) at 70%. A short graph gets a shorter box.
    var READABLE = 0.7;
    var focus = svg.querySelector(".n.focus");
    var k0 = Math.min(1, box.clientWidth / W, box.clientHeight / H);
    var used = H * Math.max(READABLE, k0) + 32;
    if (used < box.clientHeight) box.style.height = Math.max(224, used) + "px";
    fit();
    if (t.k < READABLE) {
      if (focus) {
        centreOn(focus, 1);
      } else {
        t.k = READABLE;
        t.x = 8;
        t.y = Math.max(8, (box.clientHeight - H * t.k) / 2);
        apply();
      }
    }

    box.addEventListener("wheel", function (e) {
      e.preventDefault();
      var p = local(e);
      zoomAt(p[0], p[1], Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)));
    }, { passive: false });

    var pointers = new Map(), moved = false, last = null, pinch = null;
    box.addEventListener("pointerdown", function (e) {
      if (e.button !== 0 && e.pointerType === "mouse") return;
      pointers.set(e.pointerId, local(e));
      moved = false;
      last = local(e);
      if (pointers.size === 2) {
        var ps = Array.from(pointers.values());
        pinch = { d: Math.hypot(ps[0][0] - ps[1][0], ps[0][1] - ps[1][1]) };
      }
    });
    box.addEventListener("pointermove", function (e) {
      if (!pointers.has(e.pointerId)) return;
      var p = local(e);
      pointers.set(e.pointerId, p);
      if (pointers.size === 2 && pinch) {
        var ps = Array.from(pointers.values());
        var d = Math.hypot(ps[0][0] - ps[1][0], ps[0][1] - ps[1][1]);
        if (pinch.d > 0) zoomAt((ps[0][0] + ps[1][0]) / 2, (ps[0][1] + ps[1][1]) / 2, d / pinch.d);
        pinch.d = d;
        moved = true;
        return;
      }
      var dx = p[0] - last[0], dy = p[1] - last[1];
      if (!moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!moved) { box.setPointerCapture(e.pointerId); box.classList.add("panning"); }
      moved = true;
      t.x += dx; t.y += dy; last = p;
      apply();
    });
    function up(e) {
      pointers.delete(e.pointerId);
      if (pointers.size < 2) pinch = null;
      if (pointers.size === 1) last = Array.from(pointers.values())[0];
      box.classList.remove("panning");
    }
    box.addEventListener("pointerup", up);
    box.addEventListener("pointercancel", up);
    // a drag that ends on a node is a pan, not a click on the node
    box.addEventListener("click", function (e) {
      if (moved) { e.preventDefault(); e.stopPropagation(); moved = false; }
    }, true);

    box.addEventListener("keydown", function (e) {
      var c = [box.clientWidth / 2, box.clientHeight / 2], step = 60;
      if (e.key === "+" || e.key === "=") zoomAt(c[0], c[1], 1.25);
      else if (e.key === "-") zoomAt(c[0], c[1], 0.8);
      else if (e.key === "0") fit();
      else if (e.key === "ArrowLeft") { t.x += step; apply(); }
      else if (e.key === "ArrowRight") { t.x -= step; apply(); }
      else if (e.key === "ArrowUp") { t.y += step; apply(); }
      else if (e.key === "ArrowDown") { t.y -= step; apply(); }
      else return;
      e.preventDefault();
    });

    var tools = box.querySelector(".dag-tools");
    if (tools) {
      tools.hidden = false;
      tools.addEventListener("pointerdown", function (e) { e.stopPropagation(); });
      tools.addEventListener("click", function (e) {
        var b = e.target.closest("button");
        if (!b) return;
        var c = [box.clientWidth / 2, box.clientHeight / 2];
        if (b.value === "in") zoomAt(c[0], c[1], 1.25);
        else if (b.value === "out") zoomAt(c[0], c[1], 0.8);
        else fit();
      });
    }

    // hover: the node's edges stand out
    var byNode = new Map();
    svg.querySelectorAll(".edges path").forEach(function (p) {
      [p.getAttribute("data-f"), p.getAttribute("data-t")].forEach(function (k) {
        if (!byNode.has(k)) byNode.set(k, []);
        byNode.get(k).push(p);
      });
    });
    function hot(a, on) {
      a.classList.toggle("hot", on);
      (byNode.get(a.getAttribute("data-i")) || []).forEach(function (p) { p.classList.toggle("hot", on); });
    }
    svg.addEventListener("pointerover", function (e) {
      var a = e.target.closest && e.target.closest("a.n");
      if (a) hot(a, true);
    });
    svg.addEventListener("pointerout", function (e) {
      var a = e.target.closest && e.target.closest("a.n");
      if (a) hot(a, false);
    });
    box.setAttribute("data-ready", "1");
  }

  document.querySelectorAll(".dag").forEach(init);
  document.documentElement.setAttribute("data-dag-ready", String(Math.round(performance.now())));
})();
