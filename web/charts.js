// charts.js: the velocity sparkline and spend bars, SVG and CSS drawn by hand.
import { h, s, usd, bar } from './util.js';

// Throughput: counts per bucket, from the live event stream (and the recent log at load).
export class Throughput {
  constructor(bucketMs = 10000, buckets = 60) {
    this.bucketMs = bucketMs;
    this.n = buckets;
    this.done = new Map(); // bucket index -> count
    this.failed = new Map();
  }

  add(kind, time) {
    const b = Math.floor(time / this.bucketMs);
    const m = kind === 'done' ? this.done : this.failed;
    m.set(b, (m.get(b) || 0) + 1);
    if (m.size > this.n * 3) {
      const min = b - this.n * 2;
      for (const k of m.keys()) if (k < min) m.delete(k);
    }
  }

  series(now) {
    const last = Math.floor(now / this.bucketMs);
    const d = [], f = [];
    for (let b = last - this.n + 1; b <= last; b++) {
      d.push(this.done.get(b) || 0);
      f.push(this.failed.get(b) || 0);
    }
    return { done: d, failed: f };
  }
}

export function sparkline(tp, now) {
  const { done, failed } = tp.series(now);
  const W = 600, H = 90, pad = 16;
  const max = Math.max(1, ...done, ...failed);
  const x = (i) => pad + (i * (W - pad * 2)) / (done.length - 1);
  const y = (v) => H - pad - (v / max) * (H - pad * 2);
  const pts = done.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const fpts = failed.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const total = done.reduce((a, b) => a + b, 0), fails = failed.reduce((a, b) => a + b, 0);
  const secs = tp.bucketMs / 1000;
  const nowRate = (done[done.length - 1] + done[done.length - 2]) / (2 * secs);
  const peak = Math.max(...done) / secs;
  const minutes = (done.length * secs) / 60;
  const words = `${total} task${total === 1 ? '' : 's'} done and ${fails} failed or expired in the last ${minutes} minutes; ` +
    `now ${nowRate.toFixed(1)}/s, peak ${peak.toFixed(1)}/s`;
  return [
    s('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': words },
      s('line', { class: 'axis', x1: pad, y1: H - pad, x2: W - pad, y2: H - pad }),
      s('polygon', { class: 'area', points: `${x(0)},${H - pad} ${pts} ${x(done.length - 1)},${H - pad}` }),
      s('polyline', { class: 'line', points: pts }),
      fails ? s('polyline', { class: 'line2', points: fpts }) : null,
      s('text', { x: pad, y: 11 }, `${(max / secs).toFixed(1)}/s`),
      s('text', { x: pad, y: H - 3 }, `−${minutes} min`),
      s('text', { x: W - pad, y: H - 3, 'text-anchor': 'end' }, 'now')),
    h('p', { class: 'muted' }, words, fails ? ' (dashed line: failed or expired)' : ''),
  ];
}

// rows: [{label, value, of, note}] -> a grid of labelled bars
export function hbars(rows, emptyText) {
  if (!rows.length) return h('p', { class: 'empty' }, emptyText);
  const max = Math.max(...rows.map((r) => r.of || r.value), 1e-9);
  return h('div', { class: 'hbars' }, rows.map((r) => [
    h('span', null, r.label),
    h('div', { class: 'bar', role: 'img', 'aria-label': `${r.label}: ${usd(r.value)}${r.of ? ' of ' + usd(r.of) : ''}` },
      h('span', { class: 'used', style: { width: (100 * r.value) / (r.of || max) + '%' } })),
    h('span', { class: 'num' }, usd(r.value), r.of ? h('span', { class: 'muted' }, ' / ' + usd(r.of)) : null, r.note ? ' ' + r.note : ''),
  ]));
}

export { bar };
