// Charts as inline SVG, drawn from data (no library).
import { h, s, usdShort } from './dom.js';

/**
 * A line chart of `series` ([{name, values: [y per label]}]) over `labels` (the x axis, e.g.
 * dates), with a legend. `title` labels the figure for screen readers.
 */
export function lineChart(title, labels, series, { format = usdShort } = {}) {
  const W = 720, H = 260, L = 64, R = 12, T = 12, B = 34;
  const max = Math.max(0, ...series.flatMap((x) => x.values)) || 1;
  const x = (i) => L + (labels.length <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (labels.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  const every = Math.max(1, Math.ceil(labels.length / 8));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title },
    s('title', {}, title),
    s('g', { class: 'grid' }, ticks.map((t) => s('line', { x1: L, x2: W - R, y1: y(t), y2: y(t) }))),
    ticks.map((t) => s('text', { x: L - 6, y: y(t) + 4, 'text-anchor': 'end' }, format(t))),
    labels.map((lab, i) => (i % every === 0 || i === labels.length - 1)
      ? s('text', { x: x(i), y: H - 10, 'text-anchor': i === labels.length - 1 && labels.length > 1 ? 'end' : 'middle' }, lab.slice(5)) : null),
    s('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }),
    series.map((se, k) => {
      const d = se.values.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
      return s('g', { class: `s${(k % 6) + 1}` },
        s('path', { class: 'line', d }),
        se.values.map((v, i) => s('circle', { cx: x(i), cy: y(v), r: 3, class: `s${(k % 6) + 1}` },
          s('title', {}, `${se.name} · ${labels[i]}: ${format(v)}`))));
    }));
  const legend = h('ul', { class: 'legend' }, series.map((se, k) =>
    h('li', {}, h('span', { class: `sw s${(k % 6) + 1}`, 'aria-hidden': 'true' }), se.name)));
  return h('figure', { class: 'card' }, h('figcaption', {}, h('strong', {}, title)), svg, legend);
}

/** The days from `start` to `end` (YYYY-MM-DD, inclusive). */
export function days(start, end) {
  const out = [];
  for (let d = new Date(`${start}T00:00:00Z`); d <= new Date(`${end}T00:00:00Z`) && out.length < 400; d.setUTCDate(d.getUTCDate() + 1)) {
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

/**
 * Series from LiteLLM's daily activity (`results[].breakdown[group][name].metrics.spend`): the
 * `top` largest names, the rest summed as "other".
 */
export function seriesFrom(results, group, labels, top = 5, nameOf = (n) => n) {
  const byName = new Map();
  for (const day of results || []) {
    const i = labels.indexOf(day.date);
    if (i < 0) continue;
    for (const [name, v] of Object.entries((day.breakdown || {})[group] || {})) {
      if (!byName.has(name)) byName.set(name, new Array(labels.length).fill(0));
      byName.get(name)[i] += (v.metrics && v.metrics.spend) || 0;
    }
  }
  const all = [...byName.entries()].map(([name, values]) => ({ name: nameOf(name), values, total: values.reduce((a, b) => a + b, 0) }))
    .sort((a, b) => b.total - a.total);
  const head = all.slice(0, top);
  const rest = all.slice(top);
  if (rest.length) {
    head.push({ name: `other (${rest.length})`, values: labels.map((_, i) => rest.reduce((a, r) => a + r.values[i], 0)) });
  }
  return head;
}
