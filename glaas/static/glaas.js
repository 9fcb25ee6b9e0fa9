// GLaaS pages: copy buttons, and the full hash when a shortened one is copied.
"use strict";
(function () {
  function copy(text, button) {
    var done = function () {
      button.classList.add("done");
      button.textContent = "copied";
      setTimeout(function () { button.classList.remove("done"); button.textContent = "copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () { copy(b.getAttribute("data-copy"), b); });
  });
  // selecting a shortened hash and copying it copies the full value
  document.addEventListener("copy", function (event) {
    var sel = document.getSelection();
    if (!sel || sel.rangeCount === 0) return;
    var node = sel.getRangeAt(0).commonAncestorContainer;
    var el = node.nodeType === 1 ? node : node.parentElement;
    var hash = el && el.closest("[data-full]");
    if (hash && event.clipboardData) {
      event.clipboardData.setData("text/plain", hash.getAttribute("data-full"));
      event.preventDefault();
    }
  });
})();
