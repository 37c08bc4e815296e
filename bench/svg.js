// Line charts as plain SVG text, for bench/BENCHMARKS.md (no plotting
// dependency). One function:
//
//   lineChart({ title, xLabel, yLabel, xLog, yLog, xTicks, series: [{ name, points: [[x, y], ...] }] })
//     -> a standalone SVG document (string)
//
// xTicks: optional [[x, label], ...] (e.g. percentiles on a "nines" axis);
// otherwise ticks come from the data's range (powers of ten on a log axis).
// Points whose x or y is not a finite number (or not > 0 on a log axis) are
// left out; a series with no points is listed in the legend only.
'use strict';

const W = 720;
const H = 420;
const PAD = { left: 80, right: 190, top: 40, bottom: 56 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmtTick(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

function axis(values, log) {
  const ok = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let lo = ok.length ? Math.min(...ok) : 1;
  let hi = ok.length ? Math.max(...ok) : 10;
  if (log) {
    lo = Math.pow(10, Math.floor(Math.log10(lo)));
    hi = Math.pow(10, Math.ceil(Math.log10(hi)));
    if (hi <= lo) hi = lo * 10;
    const ticks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
    return { lo, hi, ticks, f: (v) => (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) };
  }
  lo = Math.min(0, lo);
  if (hi <= lo) hi = lo + 1;
  const step = niceStep((hi - lo) / 5);
  hi = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(t);
  return { lo, hi, ticks, f: (v) => (v - lo) / (hi - lo) };
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

function lineChart({ title, xLabel, yLabel, xLog = false, yLog = false, xTicks, series }) {
  const usable = (x, y) => Number.isFinite(x) && Number.isFinite(y) && (!xLog || x > 0) && (!yLog || y > 0);
  const pts = series.map((s) => s.points.filter(([x, y]) => usable(x, y)));
  const xs = pts.flat().map((p) => p[0]).concat(xTicks ? xTicks.map((t) => t[0]) : []);
  const ys = pts.flat().map((p) => p[1]);
  const ax = axis(xs, xLog);
  const ay = axis(ys, yLog);
  const pw = W - PAD.left - PAD.right;
  const ph = H - PAD.top - PAD.bottom;
  const X = (v) => (PAD.left + ax.f(v) * pw).toFixed(1);
  const Y = (v) => (PAD.top + ph - ay.f(v) * ph).toFixed(1);
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  o.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>`);
  // Grid and ticks.
  for (const t of ay.ticks) {
    o.push(`<line x1="${PAD.left}" y1="${Y(t)}" x2="${PAD.left + pw}" y2="${Y(t)}" stroke="#e0e0e0"/>`);
    o.push(`<text x="${PAD.left - 6}" y="${Y(t)}" text-anchor="end" dominant-baseline="middle">${esc(fmtTick(t))}</text>`);
  }
  for (const [t, label] of xTicks || ax.ticks.map((t) => [t, fmtTick(t)])) {
    if (!usable(t, ay.ticks[0] || 1) && xLog) continue;
    o.push(`<line x1="${X(t)}" y1="${PAD.top}" x2="${X(t)}" y2="${PAD.top + ph}" stroke="#e0e0e0"/>`);
    o.push(`<text x="${X(t)}" y="${PAD.top + ph + 16}" text-anchor="middle">${esc(label)}</text>`);
  }
  o.push(`<rect x="${PAD.left}" y="${PAD.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  o.push(`<text x="${PAD.left + pw / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`);
  o.push(`<text transform="translate(18 ${PAD.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  // Series and legend.
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = pts[i];
    if (p.length > 1) o.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.map(([x, y]) => `${X(x)},${Y(y)}`).join(' ')}"/>`);
    for (const [x, y] of p) o.push(`<circle cx="${X(x)}" cy="${Y(y)}" r="3" fill="${c}"/>`);
    const ly = PAD.top + 10 + i * 20;
    o.push(`<line x1="${PAD.left + pw + 12}" y1="${ly}" x2="${PAD.left + pw + 34}" y2="${ly}" stroke="${c}" stroke-width="2"/>`);
    o.push(`<text x="${PAD.left + pw + 40}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}

module.exports = { lineChart };
