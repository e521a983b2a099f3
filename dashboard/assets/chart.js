// chart.js: a small SVG line chart for the dashboard's trends: time axis,
// value axis with units, gaps where a bucket has no value, and a crosshair
// with the values under the pointer (mouse, or arrow keys when focused).

const NS = 'http://www.w3.org/2000/svg';
const HEIGHT = 150;
const M = { left: 56, right: 12, top: 8, bottom: 24 };

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// niceStep returns a round step (1, 2, 2.5 or 5 × 10^n) near span/count.
function niceStep(span, count) {
  const raw = span / count;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

// timeTicks returns tick times and a label function for the window.
function timeTicks(from, to) {
  const span = to - from;
  const H = 3600e3, D = 24 * H;
  const steps = [5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, H, 2 * H, 3 * H, 6 * H, 12 * H, D, 2 * D, 5 * D, 7 * D];
  const step = steps.find((s) => span / s <= 7) || 7 * D;
  // Align to local midnight for days, else to the step in local time.
  const off = new Date(from).getTimezoneOffset() * 60e3;
  let t = Math.ceil((from - off) / step) * step + off;
  const ticks = [];
  for (; t <= to; t += step) ticks.push(t);
  const pad = (n) => String(n).padStart(2, '0');
  const label = step >= D
    ? (t) => { const d = new Date(t); return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }); }
    : span > D
      ? (t) => { const d = new Date(t); return `${d.toLocaleDateString(undefined, { weekday: 'short' })} ${pad(d.getHours())}:${pad(d.getMinutes())}`; }
      : (t) => { const d = new Date(t); return `${pad(d.getHours())}:${pad(d.getMinutes())}`; };
  return { ticks, label };
}

function fullTime(t, bucketMs) {
  const d = new Date(t);
  const opts = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
  const e = new Date(t + bucketMs);
  return `${d.toLocaleString(undefined, opts)} – ${e.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })}`;
}

// lineChart draws series into container.
// opts: {from, to, bucketMs, series: [{name, color, points: [{t, v}]}],
//        format: v => string (values with unit), yMax (optional cap), label}
export function lineChart(container, opts) {
  const draw = () => render(container, opts);
  draw();
  if (!container._observer && window.ResizeObserver) {
    let w = container.clientWidth;
    container._observer = new ResizeObserver(() => {
      if (container.clientWidth !== w) { w = container.clientWidth; container._redraw(); }
    });
    container._observer.observe(container);
  }
  container._redraw = draw;
}

function render(container, opts) {
  const { from, to, bucketMs, series, format } = opts;
  const width = Math.max(container.clientWidth || 400, 200);
  container.replaceChildren();
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const s of series) {
    const item = document.createElement('span');
    const sw = document.createElement('span');
    sw.className = 'sw';
    sw.style.background = s.color;
    item.append(sw, s.name);
    legend.append(item);
  }
  container.append(legend);

  const svg = el('svg', { viewBox: `0 0 ${width} ${HEIGHT}`, height: HEIGHT, role: 'img', tabindex: '0' });
  container.append(svg);
  const iw = width - M.left - M.right, ih = HEIGHT - M.top - M.bottom;
  const x = (t) => M.left + ((t - from) / (to - from)) * iw;

  let max = 0;
  let any = false;
  for (const s of series) for (const p of s.points) { any = true; if (p.v > max) max = p.v; }
  if (opts.yMax !== undefined) max = Math.min(Math.max(max, opts.yMax * 0.1), opts.yMax);
  if (max <= 0) max = opts.yMax || 1;
  const step = niceStep(max, 4);
  const top = Math.ceil(max / step) * step;
  const y = (v) => M.top + ih - (v / top) * ih;

  const axis = el('g', { class: 'axis' }, svg);
  for (let v = 0; v <= top + step / 2; v += step) {
    el('line', { class: 'gridline', x1: M.left, x2: M.left + iw, y1: y(v), y2: y(v) }, axis);
    const t = el('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, axis);
    t.textContent = format(v, true);
  }
  const { ticks, label } = timeTicks(from, to);
  for (const t of ticks) {
    el('line', { class: 'axisline', x1: x(t), x2: x(t), y1: M.top + ih, y2: M.top + ih + 4 }, axis);
    const tx = el('text', { x: x(t), y: HEIGHT - 6, 'text-anchor': 'middle' }, axis);
    tx.textContent = label(t);
  }
  el('line', { class: 'axisline', x1: M.left, x2: M.left + iw, y1: M.top + ih, y2: M.top + ih }, axis);

  const summary = [];
  const partial = (p) => p.t + bucketMs > to; // the bucket still filling
  for (const s of series) {
    // A gap longer than one bucket breaks the line: no value is not zero.
    // The segment into the bucket still filling is dashed: its value is
    // so far, not final.
    let d = '';
    let dashed = '';
    let prev = null;
    const singles = [];
    s.points.forEach((p, i) => {
      const joined = prev !== null && p.t - prev.t <= bucketMs;
      const pt = `${x(Math.max(p.t, from)).toFixed(1)},${y(p.v).toFixed(1)}`;
      if (joined && partial(p)) {
        dashed = `M${x(Math.max(prev.t, from)).toFixed(1)},${y(prev.v).toFixed(1)}L${pt}`;
      } else {
        d += `${joined ? 'L' : 'M'}${pt}`;
      }
      const next = s.points[i + 1];
      if (!joined && !(next && next.t - p.t <= bucketMs)) singles.push(p);
      prev = p;
    });
    if (d) el('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round' }, svg);
    if (dashed) el('path', { d: dashed, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-dasharray': '3 3' }, svg);
    for (const p of singles) el('circle', { cx: x(Math.max(p.t, from)), cy: y(p.v), r: 2.5, fill: s.color }, svg);
    const last = s.points[s.points.length - 1];
    summary.push(`${s.name}: ${last ? format(last.v) : 'no data'}`);
  }
  svg.setAttribute('aria-label', `${opts.label || 'Trend'}, latest bucket: ${summary.join(', ')}`);
  if (!any) {
    const t = el('text', { class: 'nodata', x: M.left + iw / 2, y: M.top + ih / 2, 'text-anchor': 'middle' }, svg);
    t.textContent = 'No data in this range';
    return;
  }

  // Crosshair and tooltip.
  const cross = el('line', { class: 'crosshair', y1: M.top, y2: M.top + ih, visibility: 'hidden' }, svg);
  const dots = series.map((s) => el('circle', { r: 3.5, fill: s.color, stroke: '#fff', 'stroke-width': 1.5, visibility: 'hidden' }, svg));
  const tip = document.getElementById('tooltip');
  const first = Math.floor(from / bucketMs) * bucketMs;
  let cur = null;
  const show = (t, clientX, clientY) => {
    cur = t;
    const cx = x(Math.max(t, from) + Math.min(bucketMs, to - Math.max(t, from)) / 2);
    cross.setAttribute('x1', cx);
    cross.setAttribute('x2', cx);
    cross.setAttribute('visibility', 'visible');
    tip.replaceChildren();
    const head = document.createElement('div');
    head.textContent = fullTime(t, bucketMs) + (t + bucketMs > to ? ' (so far)' : '');
    tip.append(head);
    series.forEach((s, i) => {
      const p = s.points.find((q) => q.t === t);
      const row = document.createElement('div');
      const sw = document.createElement('span');
      sw.className = 'sw';
      sw.style.background = s.color;
      row.append(sw, `${s.name}: ${p ? format(p.v) : '—'}`);
      tip.append(row);
      if (p) {
        dots[i].setAttribute('cx', x(Math.max(p.t, from)));
        dots[i].setAttribute('cy', y(p.v));
        dots[i].setAttribute('visibility', 'visible');
      } else dots[i].setAttribute('visibility', 'hidden');
    });
    tip.hidden = false;
    const r = tip.getBoundingClientRect();
    tip.style.left = `${Math.min(clientX + 12, window.innerWidth - r.width - 8)}px`;
    tip.style.top = `${Math.max(clientY - r.height - 10, 4)}px`;
  };
  const hide = () => {
    cur = null;
    cross.setAttribute('visibility', 'hidden');
    dots.forEach((d) => d.setAttribute('visibility', 'hidden'));
    tip.hidden = true;
  };
  const bucketAt = (px) => {
    const t = from + ((px - M.left) / iw) * (to - from);
    return first + Math.floor((Math.min(Math.max(t, from), to - 1) - first) / bucketMs) * bucketMs;
  };
  const hit = el('rect', { x: M.left, y: M.top, width: iw, height: ih, fill: 'transparent' }, svg);
  hit.addEventListener('mousemove', (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * width;
    show(bucketAt(px), ev.clientX, ev.clientY);
  });
  hit.addEventListener('mouseleave', hide);
  svg.addEventListener('blur', hide);
  svg.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
    ev.preventDefault();
    const last = first + Math.floor((to - 1 - first) / bucketMs) * bucketMs;
    let t = cur === null ? last : cur + (ev.key === 'ArrowRight' ? bucketMs : -bucketMs);
    t = Math.min(Math.max(t, first), last);
    const box = svg.getBoundingClientRect();
    show(t, box.left + (x(Math.max(t, from)) / width) * box.width, box.top + 20);
  });
}
