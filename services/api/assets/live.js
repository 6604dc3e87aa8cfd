// 实时预警: new alerts from the server's event stream, prepended without a reload.
(function () {
  var table = document.getElementById("live-alerts");
  if (!table || !window.EventSource) { return; }
  var division = table.getAttribute("data-division") || "";
  var source = new EventSource("/api/v1/alerts/stream?division=" + encodeURIComponent(division));
  var status = document.getElementById("live-status");
  source.onopen = function () { if (status) { status.textContent = "已连接"; } };
  source.onerror = function () { if (status) { status.textContent = "重新连接中…"; } };
  source.addEventListener("alert", function (e) {
    var a = JSON.parse(e.data);
    var row = document.createElement("tr");
    row.className = "new alert-row";
    row.setAttribute("data-id", a.id);
    [a.raised_at, a.kind, a.division_code, a.household_id || "", a.summary].forEach(function (text) {
      var cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    var body = table.tBodies[0];
    body.insertBefore(row, body.firstChild);
  });
})();
