// The summary editor's live count: every character except whitespace, as the notice counts.
// Mirrors exchange.summaries.count_characters (Python's str.isspace); the server counts again.
(function () {
  "use strict";
  var WHITESPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
  function countCharacters(text) {
    var count = 0;
    for (var character of text) {  // by code point, as Python counts
      if (!WHITESPACE.test(character)) count += 1;
    }
    return count;
  }
  window.countCharacters = countCharacters;
  var area = document.getElementById("s-text");
  var shown = document.getElementById("s-count-value");
  if (!area || !shown) return;
  var limit = parseInt(area.getAttribute("data-limit"), 10);
  var counter = shown.parentNode;
  function update() {
    var count = countCharacters(area.value);
    shown.textContent = count.toLocaleString("en-US");
    counter.classList.toggle("over", count > limit);
  }
  area.addEventListener("input", update);
  update();
})();
