// The turnaround clock ticks in the browser between page loads; nothing else needs script.
"use strict";
(function () {
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".clock[data-due]").forEach(function (el) {
      var left = Math.floor((Date.parse(el.dataset.due) - now) / 60000);
      el.textContent = left < 0 ? el.dataset.overdue + " " + -left + " min" : left + " min";
      el.classList.toggle("overdue", left < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 30000);
  });
})();
