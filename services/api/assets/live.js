// 实时预警: new alerts from the server's event stream, prepended without a reload.
(function () {
  var table = document.getElementById("live-alerts");
  if (!table || !window.EventSource) { return; }
  var division = table.getAttribute("data-division") || "";
  var source = new EventSource("/api/v1/alerts/stream?division=" + encodeURIComponent(division));
  var status = document.getElementById("live-status");
  source.onopen = function () { if (status) { status.textContent = "已连接"; } };
  source.onerror = function () { if (status) { status.textContent = "重新连接中…"; } };
  var kinds = {
    zero_employment_new: "新增零就业", zero_employment_resolved: "零就业消除",
    household_at_risk: "返零风险", placement_overdue: "援助超期", visit_overdue: "走访超期",
    layoff_early_warning: "裁员预警", layoff_unreported: "裁员未报告", job_match: "岗位匹配",
    data_conflict: "数据冲突"
  };
  function local(iso) {
    // China Standard Time, as the server renders the older rows.
    var t = new Date(new Date(iso).getTime() + 8 * 3600 * 1000).toISOString();
    return t.slice(0, 10) + " " + t.slice(11, 19);
  }
  source.addEventListener("alert", function (e) {
    var a = JSON.parse(e.data);
    var row = document.createElement("tr");
    row.className = "new alert-row";
    row.setAttribute("data-id", a.id);
    row.setAttribute("data-kind", a.kind);
    [local(a.raised_at), kinds[a.kind] || a.kind, a.division_code, a.household_id || "", a.summary].forEach(function (text) {
      var cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    });
    var body = table.tBodies[0];
    body.insertBefore(row, body.firstChild);
  });
})();
