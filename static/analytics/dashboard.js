// The KPI dashboard's charts, drawn by Chart.js from the figures the page carries
// (analytics.admin._charts); no request of their own.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("kpi-charts").textContent);
  const t = data.titles;
  const percent = { y: { min: 0, max: 1, ticks: { callback: (v) => Math.round(v * 100) + " %" } } };
  const options = (title, scales) => ({
    responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { title: { display: true, text: title } }, scales: scales || {},
  });
  const specs = {
    sales: () => ({
      type: "line",
      data: { labels: data.sales.labels,
        datasets: Object.entries(data.sales.series).map(([channel, values]) => ({ label: channel, data: values })) },
      options: options(t.sales),
    }),
    funnel: () => ({
      type: "bar",
      data: { labels: data.funnel.labels, datasets: [{ label: t.funnel, data: data.funnel.values }] },
      options: options(t.funnel),
    }),
    on_time: () => ({
      type: "bar",
      data: { labels: data.on_time.labels, datasets: [{ label: t.on_time, data: data.on_time.values }] },
      options: options(t.on_time, percent),
    }),
    stock_outs: () => ({
      type: "bar",
      data: { labels: data.stock_outs.labels, datasets: [{ label: t.stock_outs, data: data.stock_outs.values }] },
      options: options(t.stock_outs, percent),
    }),
    unified: () => ({
      type: "line",
      data: { labels: data.unified.labels, datasets: [
        { label: t.warehouse, data: data.unified.warehouse },
        { label: t.anywhere, data: data.unified.anywhere },
      ] },
      options: options(t.unified, percent),
    }),
    o2o: () => ({
      type: "bar",
      data: { labels: data.o2o.labels, datasets: [{ label: t.o2o, data: data.o2o.values }] },
      options: options(t.o2o, percent),
    }),
  };
  document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    new Chart(canvas, specs[canvas.dataset.chart]());
  });
})();
