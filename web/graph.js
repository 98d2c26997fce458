// graph.js: the blocker graph, drawn as SVG by hand: blocked tasks on the left (who is
// blocked, on what, since when), the agents helping them on the right, an edge per help
// task (solid: working on it, dashed: offered and not taken yet, ✓: finished). A table
// beside it says the same in words, for screen readers and for copying.
import { h, s, age } from './util.js';

const MAX_DRAWN = 24;
const GAP = 14, LINE = 15;

function cut(str, n) {
  str = String(str ?? '');
  return str.length > n ? str.slice(0, n - 1) + '…' : str;
}

function order(blockers, relationOf) {
  const rank = (b) => (relationOf(b.swarm) === 'critical' ? 0 : 2) + (b.escalated ? 0 : 1);
  return [...blockers].sort((a, b) => rank(a) - rank(b) || a.created_at - b.created_at);
}

// blockers: /v1/blockers; relationOf(swarm) -> relation; now: server time (ms)
export function blockerGraph(blockers, relationOf, now, onSelect, width) {
  // drawn at the size it is shown, so that its text stays as large as the page's
  const W = Math.max(440, Math.round(width || 640));
  const LEFT_W = Math.round(W * 0.52) - 12, RIGHT_W = Math.round(W * 0.34);
  const lc = Math.floor(LEFT_W / 7), rc = Math.floor(RIGHT_W / 7);
  if (!blockers.length) {
    return h('p', { class: 'empty' }, 'No task is reported blocked. ',
      h('span', { class: 'muted' }, 'An agent reports one with s2 block; helpers from matching swarms then appear here.'));
  }
  const sorted = order(blockers, relationOf);
  const drawn = sorted.slice(0, MAX_DRAWN);

  // left: one node per blocked task
  const left = [];
  let y = 8;
  for (const b of drawn) {
    const lines = [
      { t: `⊘ ${cut(b.task, lc - 2)}`, cls: '' },
      { t: cut(`${b.swarm} · ${relationOf(b.swarm) || '?'}${b.agent ? ' · agent ' + b.agent : ''}`, lc + 4), cls: 'small' },
      { t: cut(`needs ${b.needs.join(', ')}`, lc + 4), cls: 'small' },
      b.escalated
        ? { t: '⚠ escalated: a human must help', cls: 'warn' }
        : { t: `escalates in ${age(b.escalate_at - now)} · blocked ${age(now - b.created_at)}`, cls: 'small' },
    ];
    const hgt = lines.length * LINE + 12;
    left.push({ b, y, hgt, lines });
    y += hgt + GAP;
  }
  const leftH = y;

  // right: one node per helping agent (or per open help task no agent holds yet)
  const right = new Map();
  const edges = [];
  let ry = 8;
  for (const n of left) {
    for (const hp of n.b.helpers) {
      const key = hp.agent ? 'a:' + hp.agent : 't:' + hp.task;
      let r = right.get(key);
      if (!r) {
        const lines = hp.agent
          ? [{ t: `⇄ ${cut(hp.agent, rc - 2)}`, cls: '' }, { t: cut('swarm ' + (hp.swarm || ''), rc + 4), cls: 'small' }]
          : [{ t: '◌ open help task', cls: '' }, { t: cut(hp.task, rc + 4), cls: 'small' }];
        r = { key, y: ry, hgt: lines.length * LINE + 12, lines, swarm: hp.swarm };
        ry += r.hgt + GAP;
        right.set(key, r);
      }
      edges.push({ from: r, to: n, state: hp.state, task: hp.task });
    }
  }
  const H = Math.max(leftH, ry) + 4;
  const rx = W - RIGHT_W - 8;

  const desc = `${blockers.length} blocked task${blockers.length === 1 ? '' : 's'}, ` +
    `${edges.length} help task${edges.length === 1 ? '' : 's'}` +
    (blockers.length > drawn.length ? `; the first ${drawn.length} are drawn` : '');
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'graph-title graph-desc' },
    s('title', { id: 'graph-title' }, 'Blocker graph: who is blocked and who is helping'),
    s('desc', { id: 'graph-desc' }, desc),
    s('defs', null,
      s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'currentColor' }))));

  for (const e of edges) {
    const x1 = rx, y1 = e.from.y + e.from.hgt / 2;
    const x2 = 8 + LEFT_W, y2 = e.to.y + e.to.hgt / 2;
    const mx = (x1 + x2) / 2;
    const cls = e.state === 'claimed' ? 'edge' : e.state === 'done' ? 'edge done' : 'edge offered';
    const word = e.state === 'claimed' ? 'helping' : e.state === 'done' ? '✓ helped' : e.state === 'ready' ? 'offered' : e.state;
    svg.append(s('g', { class: 'edgegrp' },
      s('path', { class: cls, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)', style: 'color: var(--help)' },
        s('title', null, `${e.task}: ${e.state}`)),
      s('text', { x: x1 - 6, y: y1 - 5, 'text-anchor': 'end', class: 'small' }, word)));
  }
  const node = (x, w, n, cls, title, swarm) => {
    const g = s('g', { class: `node ${cls}`, transform: `translate(${x},${n.y})` },
      s('title', null, title),
      s('rect', { width: w, height: n.hgt, rx: 7 }),
      n.lines.map((l, i) => s('text', { x: 10, y: 18 + i * LINE, class: l.cls || null }, l.t)));
    if (swarm && onSelect) {
      g.style.cursor = 'pointer';
      g.addEventListener('click', () => onSelect(swarm));
    }
    return g;
  };
  for (const n of left) {
    const crit = relationOf(n.b.swarm) === 'critical' ? ' critical' : '';
    svg.append(node(8, LEFT_W, n, 'blocked' + crit,
      `${n.b.task} (${n.b.swarm}) blocked: ${n.b.reason}; needs ${n.b.needs.join(', ')}`, n.b.swarm));
  }
  for (const r of right.values()) svg.append(node(rx, RIGHT_W, r, 'helper', r.lines.map((l) => l.t).join(' — '), r.swarm));

  const rows = sorted.slice(0, 200).map((b) => h('tr', null,
    h('td', null, h('button', { type: 'button', class: 'link', onclick: () => onSelect(b.swarm) }, b.task)),
    h('td', null, b.swarm, h('span', { class: 'sub' }, relationOf(b.swarm) || '')),
    h('td', null, b.reason, h('span', { class: 'sub' }, 'needs ' + b.needs.join(', '))),
    h('td', null, b.escalated ? '⚠ escalated' : 'open'),
    h('td', null, b.helpers.length
      ? b.helpers.map((hp) => `${hp.agent || 'nobody yet'}${hp.swarm ? ' (' + hp.swarm + ')' : ''}: ${hp.state}`).join('; ')
      : 'no helper yet')));
  return [
    svg,
    h('p', { class: 'legend' }, 'Left: blocked tasks (thick border: a critical swarm). Right: helping agents. ',
      'Solid edge: working on it; dashed: offered, not taken yet; ✓: done.'),
    h('details', null,
      h('summary', null, `The same as a table (${blockers.length} blocker${blockers.length === 1 ? '' : 's'}` +
        (blockers.length > 200 ? ', first 200' : '') + ')'),
      h('table', { class: 'plain' },
        h('thead', null, h('tr', null, ['Task', 'Swarm', 'Reason', 'State', 'Helpers'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, rows))),
  ];
}
