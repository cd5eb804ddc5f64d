(function () {
  "use strict";
  // Long-polls the payment's status; once it is final the page is reloaded
  // so that the server renders the final message (no templating here).
  var cfg = JSON.parse(document.getElementById("cfg").textContent);
  var started = Date.now();
  function later(ms) { window.setTimeout(poll, ms); }
  function poll() {
    if (Date.now() - started > 15 * 60 * 1000) {
      document.getElementById("hint").textContent = "请稍后刷新此页 Please reload this page later";
      return;
    }
    var req = new XMLHttpRequest();
    req.open("GET", cfg.statusUrl + "&wait=10");
    req.onload = function () {
      var body = {};
      try { body = JSON.parse(req.responseText); } catch (e) { body = {}; }
      if (req.status === 200 && body.final) { window.location.reload(); return; }
      later(req.status === 200 ? 200 : 3000);
    };
    req.onerror = function () { later(3000); };
    req.send();
  }
  later(200);
})();
