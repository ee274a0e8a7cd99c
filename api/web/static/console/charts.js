// Draws the page's charts with ECharts from the JSON the server put in the page (amounts in fen).
(function () {
  var dataTag = document.getElementById("chart-data");
  if (!dataTag || !window.echarts) return;
  var data = JSON.parse(dataTag.textContent);
  var label = JSON.parse(document.getElementById("chart-labels").textContent);
  var yuan = function (fen) { return (fen / 100).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 }); };
  var english = document.documentElement.lang === "en";
  var wan = function (fen) { return english ? (fen / 100000).toLocaleString("en") + "k" : (fen / 1000000).toLocaleString("zh-CN") + "万"; };
  var base = { animation: false, grid: { left: 64, right: 16, top: 36, bottom: 40 }, textStyle: { fontFamily: "WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif" },
    tooltip: { trigger: "axis", valueFormatter: function (v) { return "¥ " + yuan(v); } }, yAxis: { type: "value", axisLabel: { formatter: wan } } };
  var charts = [];
  var held = document.getElementById("held-chart");
  if (held) {
    var chart = echarts.init(held, null, { renderer: "svg" });
    chart.setOption(Object.assign({}, base, { xAxis: { type: "category", data: data.days },
      series: [{ name: label.held, type: "line", data: data.held, showSymbol: false, areaStyle: { opacity: 0.15 }, color: "#1d4e89" }] }));
    charts.push(chart);
  }
  var flows = document.getElementById("flows-chart");
  if (flows) {
    var bars = echarts.init(flows, null, { renderer: "svg" });
    bars.setOption(Object.assign({}, base, { legend: { top: 0 }, xAxis: { type: "category", data: data.weeks },
      series: [{ name: label.collected, type: "bar", data: data.collected, color: "#00703c" },
               { name: label.released, type: "bar", data: data.released, color: "#1d4e89" },
               { name: label.refunded, type: "bar", data: data.refunded, color: "#b10e1e" }] }));
    charts.push(bars);
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
