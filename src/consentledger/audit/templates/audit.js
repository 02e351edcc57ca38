"use strict";
(function () {
  var table = document.getElementById("accesses");
  if (!table) { return; }
  // Only accesses filter; a row that marks a jump in a record's seq stays.
  var rows = Array.prototype.slice.call(table.tBodies[0].rows).filter(function (row) { return row.dataset.record; });
  var edges = Array.prototype.slice.call(document.querySelectorAll("svg.flow .edge"));
  var requester = document.getElementById("filter-requester");
  var purpose = document.getElementById("filter-purpose");
  var record = document.getElementById("filter-record");
  var shown = document.getElementById("shown");
  var refusedTable = document.getElementById("refused");
  var refused = refusedTable ? Array.prototype.slice.call(refusedTable.tBodies[0].rows) : [];
  var shownRefused = document.getElementById("shown-refused");

  function matches(data, who, why) {
    return (!who || data.searchRequester.indexOf(who) !== -1) && (!why || data.purpose === why);
  }

  function apply() {
    var who = requester.value.trim().toLowerCase();
    var why = purpose.value;
    var what = record.value.trim().toLowerCase();
    function filter(list) {
      var kept = 0;
      list.forEach(function (row) {
        var keep = matches(row.dataset, who, why) && (!what || row.dataset.searchRecord.indexOf(what) !== -1);
        row.hidden = !keep;
        if (keep) { kept += 1; }
      });
      return kept;
    }
    var visible = filter(rows);
    var visibleRefused = filter(refused);
    edges.forEach(function (edge) {
      edge.classList.toggle("dim", !matches(edge.dataset, who, why));
    });
    shown.textContent = visible + " of " + rows.length + " accesses shown";
    if (shownRefused) {
      shownRefused.textContent = visibleRefused + " of " + refused.length + " refused attempts shown";
    }
  }

  [requester, record].forEach(function (input) { input.addEventListener("input", apply); });
  purpose.addEventListener("change", apply);
  apply();
})();
