// paycore console and portal: the only script. Forms that change money or access ask first.
document.addEventListener("submit", function (ev) {
  var q = ev.target.getAttribute("data-confirm");
  if (q && !window.confirm(q)) { ev.preventDefault(); }
});
