
// The page reads in full without this script. It filters the list as one
// types (the same match as the server's ?q=), opens the capability a link
// points at, and adds copy buttons to the curl examples.
(function () {
  "use strict";
  var input = document.getElementById("q");
  var shown = document.getElementById("shown");
  var caps = Array.prototype.slice.call(document.querySelectorAll("details.cap"));
  var links = {};
  Array.prototype.forEach.call(document.querySelectorAll("nav li[data-cap]"), function (li) {
    links[li.getAttribute("data-cap")] = li;
  });

  function filter() {
    var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    var count = 0;
    caps.forEach(function (cap) {
      var text = cap.getAttribute("data-search");
      var match = terms.every(function (t) { return text.indexOf(t) >= 0; });
      cap.hidden = !match;
      if (links[cap.id]) { links[cap.id].hidden = !match; }
      if (match) { count++; }
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-domain]"), function (el) {
      el.hidden = !el.querySelector("details.cap:not([hidden]), li[data-cap]:not([hidden])");
    });
    shown.textContent = String(count);
  }
  input.addEventListener("input", filter);

  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    // The element and every details around it, for browsers that do not
    // open them on their own.
    for (var el = id && document.getElementById(id); el; el = el.parentElement) {
      if (el.tagName === "DETAILS") { el.open = true; }
    }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();

  Array.prototype.forEach.call(document.querySelectorAll(".example, .example-rest"), function (box) {
    var code = box.querySelector("code");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      var text = code.textContent;
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
        return;
      }
      var range = document.createRange();
      range.selectNodeContents(code);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    });
    box.appendChild(button);
  });
})();
