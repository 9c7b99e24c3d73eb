// Progressive enhancements for page forms; every form works without this file.
(function () {
  "use strict";
  // A form marked data-once disables its buttons after the first submit, so a double tap
  // sends one request. (The server is the real guard: the form's idempotency key.)
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
  // A button with data-confirm asks first (an inline onclick would break the CSP).
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
  // The drop-off form: say "kilograms" or "number of items" for the chosen category.
  var quantity = document.getElementById("f-quantity");
  var unit = document.querySelector("label[for=f-quantity] .unit");
  function showUnit() {
    var chosen = document.querySelector("input[name=category]:checked");
    if (!chosen || !unit) return;
    var weighed = chosen.getAttribute("data-weighed") === "yes";
    unit.textContent = weighed ? unit.getAttribute("data-weighed-text") : unit.getAttribute("data-counted-text");
    quantity.setAttribute("inputmode", weighed ? "decimal" : "numeric");
  }
  document.querySelectorAll("input[name=category]").forEach(function (r) { r.addEventListener("change", showUnit); });
  showUnit();
})();
