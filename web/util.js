// util.js: DOM building and formatting shared by the dashboard's modules. No state here.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, kids) {
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

// h('td', {class: 'num'}, 'text', child...): an HTML element.
export function h(tag, attrs, ...kids) {
  return build(document.createElement(tag), attrs, kids);
}

// s('rect', {...}): an SVG element.
export function s(tag, attrs, ...kids) {
  return build(document.createElementNS(SVG_NS, tag), attrs, kids);
}

export function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
  return el;
}

// fill() for panels the user may be in: the focused control (found again by its
// data-fkey) keeps the focus, and a half-typed input keeps its text.
export function fillKeep(el, ...kids) {
  const a = document.activeElement;
  const key = a && a !== document.body && el.contains(a) && a.dataset ? a.dataset.fkey : undefined;
  const typed = key && a.tagName === 'INPUT' ? a.value : null;
  fill(el, ...kids);
  if (!key) return el;
  const again = el.querySelector(`[data-fkey="${CSS.escape(key)}"]`);
  if (again) {
    if (typed !== null) again.value = typed;
    again.focus({ preventScroll: true });
  }
  return el;
}

export function usd(v) {
  if (v === null || v === undefined) return '—';
  const a = Math.abs(v);
  if (a >= 1000) return '$' + v.toFixed(0);
  if (a >= 1) return '$' + v.toFixed(2);
  if (a === 0) return '$0';
  return '$' + v.toFixed(a >= 0.01 ? 2 : 4);
}

export function num(n) {
  return (n ?? 0).toLocaleString('en-US');
}

// A duration in milliseconds as a short age: "4 s", "12 min", "3 h", "2 d".
export function age(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h';
  return Math.floor(s / 86400) + ' d';
}

export function clock(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function datetime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${clock(ms)}`;
}

export function pct(part, whole) {
  return whole > 0 ? Math.max(0, Math.min(100, (part / whole) * 100)) : 0;
}

export function hexToBytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function b64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// The seed's STATUS vocabulary, each with an icon so that colour is never the only cue.
export const STATUS_ICON = {
  working: '▶', waiting: '◷', blocked: '⊘', helping: '⇄', paused: '‖', tripped: '⚡',
  completed: '✓',
};
export const HEALTH_ICON = { healthy: '♥', warning: '!', frozen: '✕', 'never seen': '—' };
export const BREAKER_ICON = { closed: '●', open: '○', half_open: '◐' };

export function badge(kind, word, icon, title) {
  return h('span', { class: `badge ${kind}`, title },
    icon ? h('span', { 'aria-hidden': 'true' }, icon) : null, word);
}

// A bar of used (and optionally reserved) out of a whole, with its words beside it.
export function bar(used, reserved, whole, label, cls = '') {
  const u = pct(used, whole), r = Math.min(100 - u, pct(reserved, whole));
  const level = whole > 0 && used >= whole ? ' over' : whole > 0 && used + reserved >= 0.8 * whole ? ' warn' : '';
  return h('div', { class: 'barcell' },
    h('div', { class: `bar${level} ${cls}`, role: 'img', 'aria-label': label },
      h('span', { class: 'used', style: { width: u + '%' } }),
      r > 0 ? h('span', { class: 'res', style: { left: u + '%', width: r + '%' } }) : null),
    h('span', { class: 'lbl', title: label }, label));
}
