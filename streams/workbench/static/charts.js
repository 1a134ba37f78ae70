// The workbench's charts, drawn by Apache ECharts (vendored in static/echarts/). Every element with a
// data-chart attribute holds its chart's kind and data as JSON, written by the server; this file only draws.
// Kinds: "score" (an institution's score and grade over time), "alerts" (a case's alerts by day and rule),
// "trace" (a device's temperature around an excursion, the limits drawn), "queue" (open cases by family and
// grade). Times arrive already in the region's zone.
(function () {
  "use strict";
  var GRADE_COLOURS = {red: "#d32f2f", orange: "#f57c00", yellow: "#fbc02d", blue: "#1976d2", "": "#9e9e9e"};
  var PALETTE = ["#243b55", "#c0392b", "#2e7d32", "#f57c00", "#6a1b9a", "#00838f", "#8d6e63", "#546e7a"];

  function score(d) {
    return {
      tooltip: {trigger: "axis", formatter: function (p) {
        var x = p[0]; return x.axisValue + "<br>" + d.labels.score + " " + x.data.value[1].toFixed(2) +
          " · " + d.labels.grade + " " + x.data.grade; }},
      grid: {left: 48, right: 16, top: 24, bottom: 56},
      xAxis: {type: "category", name: d.labels.day, nameLocation: "middle", nameGap: 32,
              data: d.points.map(function (p) { return p[0]; })},
      yAxis: {type: "value", name: d.labels.score, min: 0},
      dataZoom: d.points.length > 60 ? [{type: "inside"}, {type: "slider", height: 14, bottom: 4}] : [],
      series: [{type: "line", name: d.labels.score, showSymbol: true, symbolSize: 7,
                data: d.points.map(function (p) {
                  return {value: [p[0], p[1]], grade: p[2], itemStyle: {color: GRADE_COLOURS[p[2]] || "#9e9e9e"}};
                }),
                lineStyle: {color: "#243b55"}}]
    };
  }

  function alerts(d) {
    return {
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
      legend: {type: "scroll", top: 0},
      grid: {left: 48, right: 16, top: 32, bottom: 40},
      xAxis: {type: "category", data: d.days, name: d.labels.day, nameLocation: "middle", nameGap: 26},
      yAxis: {type: "value", name: d.labels.alerts, minInterval: 1},
      color: PALETTE,
      series: d.series.map(function (s) { return {type: "bar", stack: "alerts", name: s.name, data: s.counts}; })
    };
  }

  function trace(d) {
    var band = d.limits ? [[{yAxis: d.limits[0]}, {yAxis: d.limits[1]}]] : [];
    return {
      tooltip: {trigger: "axis"},
      legend: {top: 0},
      grid: {left: 44, right: 56, top: 28, bottom: 36},
      xAxis: {type: "category", data: d.times, name: d.labels.time, nameLocation: "middle", nameGap: 24},
      yAxis: {type: "value", name: "°C", scale: true},
      series: [
        {type: "line", name: d.labels.read, data: d.read, showSymbol: false, connectNulls: false,
         lineStyle: {color: "#c0392b", width: 2}, itemStyle: {color: "#c0392b"},
         markArea: {silent: true, itemStyle: {color: "rgba(46,125,50,0.08)"}, data: band},
         markLine: {silent: true, symbol: "none", lineStyle: {color: "#2e7d32", type: "dashed"},
                    label: {formatter: "{c} °C"},
                    data: (d.limits || []).map(function (v) { return {yAxis: v}; })}},
        d.normal ? {type: "line", name: d.labels.normal, data: d.normal, showSymbol: false,
                    lineStyle: {color: "#6b8fc2", type: "dashed"}, itemStyle: {color: "#6b8fc2"}} : null
      ].filter(Boolean)
    };
  }

  function queue(d) {
    return {
      tooltip: {trigger: "axis", axisPointer: {type: "shadow"}},
      legend: {top: 0},
      grid: {left: 160, right: 16, top: 28, bottom: 24},
      yAxis: {type: "category", data: d.families, inverse: true},
      xAxis: {type: "value", name: d.labels.cases, minInterval: 1},
      series: d.grades.map(function (g, i) {
        return {type: "bar", stack: "cases", name: d.grade_names[i], data: d.counts[i],
                itemStyle: {color: GRADE_COLOURS[g] || "#9e9e9e"}};
      })
    };
  }

  var KINDS = {score: score, alerts: alerts, trace: trace, queue: queue};

  function draw() {
    var nodes = document.querySelectorAll("[data-chart]");
    for (var i = 0; i < nodes.length; i++) {
      var el = nodes[i], spec = JSON.parse(el.getAttribute("data-chart"));
      var chart = echarts.init(el, null, {renderer: "canvas"});
      chart.setOption(KINDS[spec.kind](spec));
      el.setAttribute("data-drawn", spec.kind);
      window.addEventListener("resize", chart.resize);
    }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
