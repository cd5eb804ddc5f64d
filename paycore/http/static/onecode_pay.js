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

  // ---- the app's own bridge ----------------------------------------------------
  // Each app hands the order to its cashier and says how it went: "paid" (the app
  // says so: the result page still waits for paycore's word), "unknown" (go and
  // look), "cancel" (the customer closed the cashier) or "fail" (the app refused).
  function whenReady(name, event, run, missing) {
    if (window[name]) { run(window[name]); return; }
    var timer = setTimeout(function () { missing(); }, 4000);
    document.addEventListener(event, function () {
      clearTimeout(timer);
      if (window[name]) { run(window[name]); } else { missing(); }
    }, {once: true});
  }

  // 云闪付's upsdk.config is asked once per page; every payment waits for its verdict
  var upsdkState = "", upsdkWaiting = null;
  function upsdkConfigured(b, then) {
    if (upsdkState === "ok" || upsdkState === "refused") { then(upsdkState === "ok"); return; }
    upsdkWaiting = then;
    if (upsdkState === "asked") { return; }
    upsdkState = "asked";
    var settle = function (state) {
      upsdkState = state;
      var f = upsdkWaiting;
      upsdkWaiting = null;
      if (f) { f(state === "ok"); }
    };
    if (!cfg.sdk || !b.config) { settle("refused"); return; }
    b.ready(function () { settle("ok"); });
    b.error(function () { settle("refused"); });
    b.config(cfg.sdk);
  }

  var BRIDGES = {
    // WeChat: WeixinJSBridge.invoke("getBrandWCPayRequest", signed params, cb(err_msg))
    wechat: function (p, done) {
      whenReady("WeixinJSBridge", "WeixinJSBridgeReady", function (b) {
        b.invoke("getBrandWCPayRequest", {appId: p.appId, timeStamp: p.timeStamp, nonceStr: p.nonceStr,
          "package": p["package"], signType: p.signType, paySign: p.paySign}, function (res) {
          var m = (res && res.err_msg) || "";
          done(m === "get_brand_wcpay_request:ok" ? "paid" : m === "get_brand_wcpay_request:cancel" ? "cancel" : "fail");
        });
      }, function () { done("nobridge"); });
    },
    // Alipay: AlipayJSBridge.call("tradePay", {tradeNO}, cb(resultCode)): 9000 paid,
    // 8000 processing / 6004 unknown, 6001 cancelled, 4000 / 6002 and the rest failed
    alipay: function (p, done) {
      whenReady("AlipayJSBridge", "AlipayJSBridgeReady", function (b) {
        b.call("tradePay", {tradeNO: p.trade_no}, function (res) {
          var c = String((res && res.resultCode) || "");
          done(c === "9000" ? "paid" : (c === "8000" || c === "6004") ? "unknown" : c === "6001" ? "cancel" : "fail");
        });
      }, function () { done("nobridge"); });
    },
    // 云闪付: upsdk (upsdk.js) pays only once it has accepted the page's configuration,
    // which paycore signed over the open platform's frontToken and this page's address:
    // upsdk.config(cfg.sdk), then ready (accepted) or error (refused: no payment at all);
    // then upsdk.pay({tn}): success(), or fail({msg}) — a cancel included
    unionpay: function (p, done) {
      whenReady("upsdk", "upsdkReady", function (b) {
        upsdkConfigured(b, function (accepted) {
          if (!accepted) { done("fail"); return; }
          b.pay({tn: p.tn, success: function () { done("paid"); }, fail: function (err) {
            done(/cancel|取消/i.test((err && (err.code || err.msg)) || "") ? "cancel" : "fail");
          }});
        });
      }, function () { done("nobridge"); });
    },
    // QQ: mqq.tenpay.pay({tokenId, pubAcc, pubAccHint}, cb(result)): resultCode 0 paid, -1 cancelled
    qq: function (p, done) {
      whenReady("mqq", "mqqReady", function (b) {
        b.tenpay.pay({tokenId: p.tokenId, pubAcc: p.pubAcc || "", pubAccHint: p.pubAccHint || ""}, function (res) {
          var c = String(res && res.resultCode);
          done(c === "0" ? "paid" : c === "-1" ? "cancel" : "fail");
        });
      }, function () { done("nobridge"); });
    },
    // Douyin: Douyin Pay's JSAPI parameters (WeChat-shaped) to the web view's bridge.
    // ASSUMED, not public (docs/onecode.md, "Douyin: what is assumed"): the web view's
    // ToutiaoJSBridge.call("pay", params, cb({code})), answering with the codes ByteDance
    // documents for tt.pay: 0 paid, 4 cancelled, 9 look it up, 1/2/3 (timeout, failed,
    // closed) failed. Everything assumed is in this one entry.
    douyin: function (p, done) {
      whenReady("ToutiaoJSBridge", "ToutiaoJSBridgeReady", function (b) {
        b.call("pay", {appId: p.appId, timeStamp: p.timeStamp, nonceStr: p.nonceStr, "package": p["package"],
          signType: p.signType, paySign: p.paySign}, function (res) {
          var c = String(res && res.code);
          done(c === "0" ? "paid" : c === "9" ? "unknown" : c === "4" ? "cancel" : "fail");
        });
      }, function () { done("nobridge"); });
    },
    // JD: its H5 cashier is a page; when the customer comes back here, the result page
    redirect: function (p, done, resultUrl) {
      try { sessionStorage.setItem(PENDING, resultUrl); } catch (e) { /* private mode: no way back */ }
      window.location.href = p.pay_url;
    }
  };

  var PENDING = "pc_pending_" + cfg.code;
  function backFromCashier() {
    var url = null;
    try { url = sessionStorage.getItem(PENDING); sessionStorage.removeItem(PENDING); } catch (e) { url = null; }
    if (url) { window.location.replace(url); }
  }
  window.addEventListener("pageshow", backFromCashier);

  function afterApp(outcome, body) {
    if (outcome === "paid" || outcome === "unknown") {
      window.location.href = body.result;   // paycore's word decides what the customer sees
      return;
    }
    busy = false;
    render();
    if (outcome === "cancel") {
      say("已取消付款，可重新付款", "You cancelled the payment; you can pay again");
    } else if (outcome === "nobridge") {
      say("请在支付应用中打开此页面", "Please open this page inside the payment app");
    } else {
      say("支付未完成，请重试或更换付款方式", "The app could not complete the payment; try again");
    }
    errBox.setAttribute("data-outcome", outcome);
  }

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
      if (req.status < 300 && body.result) {
        if (body.form) { cfg.form = body.form; }   // a cancelled attempt may be followed by another
        if (!body.bridge) { window.location.href = body.result; return; }
        say("请在应用中完成支付…", "Finish paying in the app…");
        BRIDGES[body.bridge](body.pay_params || {}, function (outcome) { afterApp(outcome, body); }, body.result);
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
