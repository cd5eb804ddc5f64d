(function () {
  "use strict";
  // The amount typed on the keypad is only a convenience: the server parses
  // and checks the posted yuan string again (never a float, never trusted).
  var cfg = JSON.parse(document.getElementById("cfg").textContent);
  var field = document.getElementById("amount");
  var shown = document.getElementById("amount-value");
  var payBtn = document.getElementById("pay");
  var errBox = document.getElementById("error");
  var value = cfg.fixed || "";
  var busy = false;
  var SHAPE = /^(0|[1-9][0-9]{0,8})(\.[0-9]{0,2})?$/;

  function toFen(v) {
    if (!v) { return 0; }
    var parts = v.split(".");
    var frac = ((parts[1] || "") + "00").slice(0, 2);
    return parseInt(parts[0] || "0", 10) * 100 + parseInt(frac, 10);
  }
  function clean(v) { return v.replace(/\.$/, ""); }
  function say(zh, en) { errBox.textContent = zh ? zh + " " + en : ""; }

  function render() {
    var fen = toFen(value);
    shown.textContent = value || "0.00";
    shown.className = "val" + (value ? "" : " empty");
    field.value = clean(value);
    if (fen > cfg.max) {
      say("超出单笔限额", "Above the limit for one payment");
    } else if (!busy) {
      say("", "");
    }
    payBtn.disabled = busy || fen <= 0 || fen > cfg.max;
  }

  function press(key) {
    if (cfg.fixed || busy) { return; }
    var v = value;
    if (key === "del") {
      v = v.slice(0, -1);
    } else if (key === ".") {
      if (v.indexOf(".") >= 0) { return; }
      v = (v || "0") + ".";
    } else {
      v = (v === "0" ? "" : v) + key;
    }
    if (v && !SHAPE.test(v)) { return; }
    value = v;
    render();
  }

  var pad = document.getElementById("pad");
  if (pad) {
    pad.addEventListener("click", function (ev) {
      var b = ev.target.closest("button[data-key]");
      if (b) { press(b.getAttribute("data-key")); }
    });
  }
  document.addEventListener("keydown", function (ev) {
    if (/^[0-9.]$/.test(ev.key)) { press(ev.key); ev.preventDefault(); }
    else if (ev.key === "Backspace") { press("del"); ev.preventDefault(); }
    else if (ev.key === "Enter" && !payBtn.disabled) { payBtn.click(); ev.preventDefault(); }
  });

  var MESSAGES = {
    RATE_LIMITED: ["操作太频繁，请稍后再试", "Too many attempts, please wait a moment"],
    AMOUNT_LIMIT_EXCEEDED: ["超出单笔限额", "Above the limit for one payment"],
    IDEMPOTENCY_CONFLICT: ["此页面已用于另一笔支付，请刷新", "This page was used for another payment; please reload"],
    FORBIDDEN: ["页面已过期，请刷新后重试", "This page has expired; please reload"],
    CODE_DISABLED: ["此收款码已停用", "This code has been disabled"],
    CHANNEL_UNAVAILABLE: ["支付渠道暂时不可用，请稍后再试", "The payment service is unavailable; try again soon"],
    UNAVAILABLE: ["系统繁忙，请稍后再试", "The service is busy; try again soon"]
  };

  payBtn.addEventListener("click", function () {
    if (payBtn.disabled) { return; }
    var amount = field.value;   // what the form holds is what is sent: the server decides
    busy = true;
    render();
    say("正在发起支付…", "Starting the payment…");
    var req = new XMLHttpRequest();
    req.open("POST", cfg.payUrl);
    req.setRequestHeader("Content-Type", "application/json");
    req.setRequestHeader("X-CSRF-Token", cfg.csrf);
    req.onload = function () {
      var body = {};
      try { body = JSON.parse(req.responseText); } catch (e) { body = {}; }
      if (req.status < 300 && body.next) {
        window.location.href = body.next;
        return;
      }
      var err = body.error || {};
      var m = err.field === "amount" && err.code === "INVALID_REQUEST" ?
        ["金额无效，请重新输入", "Invalid amount, please enter it again"] :
        MESSAGES[err.code] || ["支付未能发起", "The payment could not start (" + (err.message || req.status) + ")"];
      busy = false;
      render();
      say(m[0], m[1]);
    };
    req.onerror = function () {
      busy = false;
      render();
      say("网络错误，请重试", "Network error, please try again");
    };
    req.send(JSON.stringify({amount: amount, form: cfg.form}));
  });

  render();
})();
