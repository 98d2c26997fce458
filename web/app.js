// app.js: the s2 dashboard. A live view over the event stream: snapshots are read in pages
// at start, then every event marks what it touched as stale; what is on screen is re-read
// from the server at most about once a second, what is off screen later, in the background.
// Rendering happens at most four times a second, whatever the event rate.
import { Api, ApiError, EventStream } from './net.js';
import { VTable } from './vlist.js';
import { blockerGraph } from './graph.js';
import { Throughput, sparkline, hbars } from './charts.js';
import {
  h, fill, fillKeep, usd, num, age, clock, datetime, pct, badge, bar, hexToBytes, b64ToBytes,
  STATUS_ICON, HEALTH_ICON, BREAKER_ICON,
} from './util.js';

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const TOKEN_KEY = 's2.token';
const PAGE = 1000;
const RENDER_EVERY_MS = 250;
const TAIL_KEEP = 400, TAIL_SHOW = 40;
const LIST_CAP = 50;
const HEALTH_WARN_MS = 10 * 60 * 1000, HEALTH_FROZEN_MS = 15 * 60 * 1000;
const RESUME_MAX_GAP = 5000; // events; a longer outage reloads the snapshots instead
let graphWidth = 600;

const st = {
  api: null, stream: null, who: null, version: '', conn: 'idle', connInfo: {},
  epoch: 0,
  swarms: [], swarmIx: new Map(), swarmsLoaded: false, totals: null, swarmCount: 0,
  agents: [], agentIx: new Map(), agentsLoaded: false,
  tiers: new Map(), // tier -> [model names]
  current: new Map(), // agent -> [task ids it holds]
  blockers: [], blockedSwarms: new Map(), helpingSwarms: new Set(), blockerTasks: new Set(),
  escalations: [], approvals: [], approvalsMore: false,
  checkpoint: null, cpCheck: { state: 'pending', msg: 'not checked yet' }, publicKey: null,
  budget: null,
  tail: [], lastSeq: 0, seenSeq: 0,
  gen: 0, dirtySwarms: new Map(), dirtyAgents: new Map(),
  selected: null, detail: null, detailSlo: null, detailErr: null,
  tp: new Throughput(10000, 60),
  firstScreen: false,
};

/* ---------------------------------------------------------------- rendering schedule */

const dirtyPanels = new Set();
let renderTimer = null, lastRender = 0;
// Panels that are rebuilt whole are rebuilt less often than the rest.
const PANEL_MIN_MS = { cost: 1000, graph: 1000, attention: 500, detail: 500 };
const panelLast = {};

// When drawing gets expensive (a slow machine, a flood of events), draw less often: a
// frame's script, style, layout and paint may take at most about a fifth of the time.
let renderEvery = RENDER_EVERY_MS;

function invalidate(...panels) {
  for (const p of panels) dirtyPanels.add(p);
  schedule(renderEvery);
}

function schedule(every) {
  if (renderTimer) return;
  const wait = Math.max(0, every - (performance.now() - lastRender));
  renderTimer = setTimeout(() => requestAnimationFrame(renderNow), wait);
}

// A redraw between a button's mousedown and its mouseup swaps the button under the
// pointer, and the browser then fires no click at all: while a pointer is pressed, the
// page is not redrawn (for at most PRESS_HOLD_MS). The release lets the click through
// first, then draws.
const PRESS_HOLD_MS = 10000;
let pressed = false, pressedAt = 0;
addEventListener('pointerdown', () => { pressed = true; pressedAt = performance.now(); }, true);
const released = () => {
  if (!pressed) return;
  setTimeout(() => {
    pressed = false;
    if (dirtyPanels.size) schedule(0);
  }, 0);
};
for (const ev of ['pointerup', 'pointercancel', 'blur']) addEventListener(ev, released, true);

function renderNow() {
  renderTimer = null;
  if (pressed && performance.now() - pressedAt < PRESS_HOLD_MS) return;
  const now = performance.now();
  lastRender = now;
  let later = false;
  for (const p of [...dirtyPanels]) {
    if (now - (panelLast[p] || 0) < (PANEL_MIN_MS[p] || 0)) {
      later = true;
      continue;
    }
    dirtyPanels.delete(p);
    panelLast[p] = now;
    try {
      RENDER[p]();
    } catch (e) {
      console.error('render', p, e);
    }
  }
  const scripted = performance.now() - now;
  // the next frame starts once style, layout and paint of this one are done
  requestAnimationFrame(() => {
    const cost = performance.now() - now - 16;
    const want = Math.min(2000, Math.max(RENDER_EVERY_MS, 5 * Math.max(scripted, cost)));
    renderEvery = 0.7 * renderEvery + 0.3 * want;
    document.documentElement.dataset.renderEvery = String(Math.round(renderEvery));
  });
  if (later) schedule(renderEvery);
}

/* ---------------------------------------------------------------- background jobs */

// A job re-reads one thing from the server when wanted, no more often than minMs, never
// twice at once; a failure leaves it wanted, to be tried again.
class Job {
  constructor(name, minMs, fn) {
    this.name = name;
    this.minMs = minMs;
    this.fn = fn;
    this.wanted = false;
    this.busy = false;
    this.last = 0;
  }
  want() {
    this.wanted = true;
  }
  async tick(now) {
    if (!this.wanted || this.busy || now - this.last < this.minMs) return;
    this.wanted = false;
    this.busy = true;
    this.last = now;
    try {
      await this.fn();
    } catch (e) {
      if (!(e instanceof ApiError && e.status >= 400 && e.status < 500)) this.wanted = true;
      if (e.name !== 'AbortError') console.warn('job', this.name, e.message);
    } finally {
      this.busy = false;
    }
  }
}

const jobs = {
  totals: new Job('totals', 1500, refreshTotals),
  visibleSwarms: new Job('visible swarms', 700, refreshVisibleSwarms),
  staleSwarms: new Job('stale swarms', 1500, refreshStaleSwarms),
  newAgents: new Job('new agents', 1500, refreshNewAgents),
  visibleAgents: new Job('visible agents', 900, refreshVisibleAgents),
  staleAgents: new Job('stale agents', 2000, refreshStaleAgents),
  blockers: new Job('blockers', 1000, refreshBlockers),
  escalations: new Job('escalations', 1000, refreshEscalations),
  approvals: new Job('approvals', 1500, refreshApprovals),
  checkpoint: new Job('checkpoint', 2000, refreshCheckpoint),
  budget: new Job('budget', 4000, refreshBudget),
  detail: new Job('detail', 800, refreshDetail),
};

let pumpTimer = null;
function pump() {
  if (st.conn !== 'live') return;
  const now = performance.now();
  if (st.dirtySwarms.size) {
    jobs.visibleSwarms.want();
    if (st.swarmsLoaded) jobs.staleSwarms.want();
  }
  if (st.dirtyAgents.size) {
    jobs.visibleAgents.want();
    if (st.agentsLoaded) jobs.staleAgents.want();
  }
  for (const j of Object.values(jobs)) j.tick(now);
}

/* ---------------------------------------------------------------- model updates */

function upsertSwarm(o) {
  const i = st.swarmIx.get(o.id);
  if (i === undefined) {
    st.swarmIx.set(o.id, st.swarms.length);
    st.swarms.push(o);
  } else {
    st.swarms[i] = o;
  }
}

function upsertAgent(o) {
  const i = st.agentIx.get(o.id);
  if (i === undefined) {
    st.agentIx.set(o.id, st.agents.length);
    st.agents.push(o);
  } else {
    st.agents[i] = o;
  }
}

function markSwarm(id) {
  st.dirtySwarms.set(id, ++st.gen);
}

function markAgent(id) {
  st.dirtyAgents.set(id, ++st.gen);
}

// Fresh data read after generation g clears the marks made up to g (not later ones).
function cleanSwarm(id, g) {
  const d = st.dirtySwarms.get(id);
  if (d !== undefined && d <= g) st.dirtySwarms.delete(id);
}

function cleanAgent(id, g) {
  const d = st.dirtyAgents.get(id);
  if (d !== undefined && d <= g) st.dirtyAgents.delete(id);
}

function holdTask(agent, task) {
  const l = st.current.get(agent) || [];
  if (!l.includes(task)) l.push(task);
  st.current.set(agent, l);
}

function dropTask(agent, task) {
  const l = st.current.get(agent);
  if (!l) return;
  const k = l.indexOf(task);
  if (k >= 0) l.splice(k, 1);
  if (!l.length) st.current.delete(agent);
}

const TASK_ENDS = new Set(['task.done', 'task.fail', 'task.expire', 'task.release', 'task.cancel']);
const APPROVAL_OPS = new Set(['task.create', 'task.approve', 'task.gate', 'task.cancel', 'task.ready']);

function onEvent(ev) {
  if (ev.seq <= st.seenSeq) return; // replayed after a reconnect: already applied
  st.seenSeq = ev.seq;
  st.lastSeq = ev.seq;
  st.tail.push(ev);
  if (st.tail.length > TAIL_KEEP * 2) st.tail.splice(0, st.tail.length - TAIL_KEEP);
  const op = ev.op || '';
  if (op === 'task.done') st.tp.add('done', ev.time);
  else if (op === 'task.expire' || (op === 'task.fail')) st.tp.add('failed', ev.time);

  if (ev.swarm) {
    if (st.swarmIx.has(ev.swarm)) markSwarm(ev.swarm);
    else jobs.totals.want(); // a new swarm: the totals read picks it up
    if (ev.swarm === st.selected) jobs.detail.want();
  }
  if (ev.agent) {
    if (st.agentIx.has(ev.agent)) markAgent(ev.agent);
    else jobs.newAgents.want();
  }
  if (ev.task && ev.agent) {
    if (op === 'task.claim') holdTask(ev.agent, ev.task);
    else if (TASK_ENDS.has(op)) dropTask(ev.agent, ev.task);
  }
  if (op.startsWith('task.')) jobs.totals.want();
  if (op === 'task.block' || op.startsWith('blocker.') || op.startsWith('thread.') ||
      (ev.task && (st.blockerTasks.has(ev.task) || /\.help-\d+$/.test(ev.task)))) {
    jobs.blockers.want();
  }
  if (op === 'escalation' || op.startsWith('escalation.') || op.startsWith('breaker.')) {
    jobs.escalations.want();
    jobs.blockers.want();
  }
  if (APPROVAL_OPS.has(op)) jobs.approvals.want();
  if (op.startsWith('budget.') || op === 'task.done' || op === 'task.fail' || op === 'task.heartbeat') jobs.budget.want();
  jobs.checkpoint.want();
  invalidate('witness', 'header', 'cost');
}

/* ---------------------------------------------------------------- reads */

async function loadSwarms(epoch) {
  let after = null;
  do {
    const g = st.gen;
    const r = await st.api.get('/v1/status' + (after ? '?after=' + enc(after) : ''));
    if (epoch !== st.epoch) return;
    for (const o of r.swarms) {
      upsertSwarm(o);
      cleanSwarm(o.id, g);
    }
    st.totals = r.totals;
    after = r.next;
    swarmViewStale = true;
    invalidate('swarms', 'header', 'attention', 'cost');
    if (!st.firstScreen) {
      // the first page is enough for the first screen: draw it now, not in 250 ms
      renderNow();
      markFirstScreen();
    }
  } while (after);
  st.swarmsLoaded = true;
  document.documentElement.dataset.swarmsLoaded = String(st.swarms.length);
  invalidate('swarms');
}

function markFirstScreen() {
  st.firstScreen = true;
  const t = Math.round(performance.now());
  performance.mark('s2-first-screen');
  document.documentElement.dataset.firstScreen = String(t);
}

async function refreshTotals() {
  if (!st.swarmsLoaded) {
    jobs.totals.want(); // after the pages: a swarm made meanwhile may be past the last one
    return;
  }
  let after = st.swarms.length ? st.swarms[st.swarms.length - 1].id : null;
  for (;;) {
    const r = await st.api.get('/v1/status' + (after ? '?after=' + enc(after) : ''));
    st.totals = r.totals;
    for (const o of r.swarms) upsertSwarm(o);
    if (r.swarms.length) swarmViewStale = true;
    if (!r.next) break;
    after = r.next;
  }
  invalidate('header', 'swarms');
}

// Re-read what is on screen and stale: by id when few, as one window when many.
async function refreshWindow(kind, ids, order, ix, path, one, upsert, clean) {
  const g = st.gen;
  if (ids.length <= 6) {
    const got = await Promise.all(ids.map((id) => st.api.get(one(id)).then((r) => r[kind]).catch((e) => {
      if (e.status === 404) return null;
      throw e;
    })));
    got.forEach((o, k) => {
      if (o) {
        upsert(o);
        clean(ids[k], g);
      }
    });
    return got.filter(Boolean);
  }
  const idx = ids.map((id) => ix.get(id)).filter((i) => i !== undefined).sort((a, b) => a - b);
  const lo = idx[0], span = Math.min(500, idx[idx.length - 1] - lo + 1);
  const q = `${path}?limit=${span}` + (lo > 0 ? '&after=' + enc(order[lo - 1].id) : '');
  const r = await st.api.get(q);
  const list = r.swarms || r.agents || [];
  for (const o of list) {
    upsert(o);
    clean(o.id, g);
  }
  return list;
}

async function refreshVisibleSwarms() {
  const ids = swarmTable.visible().map((o) => o.id).filter((id) => st.dirtySwarms.has(id));
  if (!ids.length) return;
  await refreshWindow('swarm', ids, st.swarms, st.swarmIx, '/v1/swarms',
    (id) => '/v1/swarms/' + enc(id), upsertSwarm, cleanSwarm);
  swarmViewStale = true;
  invalidate('swarms', 'attention', 'cost');
}

// Off screen: the lowest stale swarm and the 500 after it, so every mark is cleared in
// time and the summary counts stay true.
async function refreshStaleSwarms() {
  let lo = Infinity;
  for (const id of st.dirtySwarms.keys()) {
    const i = st.swarmIx.get(id);
    if (i !== undefined && i < lo) lo = i;
  }
  if (lo === Infinity) return;
  const g = st.gen;
  const r = await st.api.get('/v1/swarms?limit=500' + (lo > 0 ? '&after=' + enc(st.swarms[lo - 1].id) : ''));
  for (const o of r.swarms) {
    upsertSwarm(o);
    cleanSwarm(o.id, g);
  }
  swarmViewStale = true;
  invalidate('swarms', 'attention', 'cost');
}

async function loadAgents(epoch) {
  let after = null;
  do {
    const g = st.gen;
    const r = await st.api.get(`/v1/agents?limit=${PAGE}` + (after ? '&after=' + enc(after) : ''));
    if (epoch !== st.epoch) return;
    for (const o of r.agents) {
      upsertAgent(o);
      cleanAgent(o.id, g);
    }
    after = r.next;
    agentViewStale = true;
    invalidate('agents', 'attention', 'cost');
  } while (after);
  st.agentsLoaded = true;
}

async function refreshNewAgents() {
  if (!st.agentsLoaded) {
    jobs.newAgents.want();
    return;
  }
  let after = st.agents.length ? st.agents[st.agents.length - 1].id : null;
  for (;;) {
    const r = await st.api.get(`/v1/agents?limit=${PAGE}` + (after ? '&after=' + enc(after) : ''));
    for (const o of r.agents) upsertAgent(o);
    agentViewStale = true;
    if (!r.next) break;
    after = r.next;
  }
  invalidate('agents', 'cost');
}

async function refreshVisibleAgents() {
  const ids = agentTable.visible().map((o) => o.id).filter((id) => st.dirtyAgents.has(id));
  if (!ids.length) return;
  const got = await refreshWindow('agent', ids, st.agents, st.agentIx, '/v1/agents',
    (id) => '/v1/agents/' + enc(id), upsertAgent, cleanAgent);
  for (const a of got) {
    // one agent's read names the leases it holds: the truth about its current tasks
    if (Array.isArray(a.leases)) {
      if (a.leases.length) st.current.set(a.id, a.leases.map((l) => l.task));
      else st.current.delete(a.id);
    }
  }
  agentViewStale = true;
  invalidate('agents', 'attention', 'cost');
}

async function refreshStaleAgents() {
  let lo = Infinity;
  for (const id of st.dirtyAgents.keys()) {
    const i = st.agentIx.get(id);
    if (i !== undefined && i < lo) lo = i;
  }
  if (lo === Infinity) return;
  const g = st.gen;
  const r = await st.api.get('/v1/agents?limit=500' + (lo > 0 ? '&after=' + enc(st.agents[lo - 1].id) : ''));
  for (const o of r.agents) {
    upsertAgent(o);
    cleanAgent(o.id, g);
  }
  agentViewStale = true;
  invalidate('agents', 'attention', 'cost');
}

// Who holds what: claimed tasks are as many as live leases, so this stays small.
async function loadClaimed(epoch) {
  const cur = new Map();
  let after = null;
  for (let page = 0; page < 50; page++) {
    const r = await st.api.get('/v1/tasks?state=claimed&limit=1000' + (after ? '&after=' + after : ''));
    if (epoch !== st.epoch) return;
    for (const t of r.tasks) {
      if (!t.owner) continue;
      const l = cur.get(t.owner) || [];
      l.push(t.id);
      cur.set(t.owner, l);
    }
    if (!r.next) break;
    after = r.next;
  }
  st.current = cur;
  agentViewStale = true;
  invalidate('agents');
}

async function refreshBlockers() {
  const r = await st.api.get('/v1/blockers');
  st.blockers = r.blockers;
  const blocked = new Map(), helping = new Set(), tasks = new Set();
  for (const b of r.blockers) {
    if (!blocked.has(b.swarm)) blocked.set(b.swarm, []);
    blocked.get(b.swarm).push(b);
    tasks.add(b.task);
    for (const hp of b.helpers) {
      tasks.add(hp.task);
      if (hp.swarm && hp.state === 'claimed' && hp.swarm !== b.swarm) helping.add(hp.swarm);
    }
  }
  st.blockedSwarms = blocked;
  st.helpingSwarms = helping;
  st.blockerTasks = tasks;
  swarmViewStale = true;
  invalidate('graph', 'swarms', 'attention');
}

async function refreshEscalations() {
  const r = await st.api.get('/v1/escalations');
  st.escalations = r.escalations;
  invalidate('attention');
}

async function refreshApprovals() {
  const r = await st.api.get('/v1/tasks?approval=waiting&limit=200');
  st.approvals = r.tasks;
  st.approvalsMore = !!r.next;
  invalidate('attention');
}

async function refreshCheckpoint() {
  const r = await st.api.get('/v1/witness/checkpoints?order=desc&limit=1');
  const cp = r.checkpoints && r.checkpoints[0];
  st.publicKey = r.public_key || st.publicKey;
  if (!cp) {
    st.checkpoint = null;
    invalidate('witness');
    return;
  }
  if (!st.checkpoint || st.checkpoint.tree_size !== cp.tree_size || st.checkpoint.root_hash !== cp.root_hash) {
    st.checkpoint = cp;
    st.cpCheck = await verifyCheckpoint(cp, st.publicKey);
  }
  invalidate('witness');
}

// The signed message of docs/WITNESS.md, checked here with WebCrypto's Ed25519: the page
// does not take the server's word for it.
async function verifyCheckpoint(cp, pubB64) {
  if (!pubB64) return { state: 'unsupported', msg: 'the server sent no public key' };
  if (!globalThis.crypto || !crypto.subtle) {
    return { state: 'unsupported', msg: 'not checked: this page is not a secure context (serve it over https or from localhost)' };
  }
  try {
    const key = await crypto.subtle.importKey('raw', b64ToBytes(pubB64), { name: 'Ed25519' }, false, ['verify']);
    const msg = new TextEncoder().encode(`s2-witness-checkpoint-v1\n${cp.tree_size}\n${cp.root_hash}\n${cp.time}\n`);
    const ok = await crypto.subtle.verify({ name: 'Ed25519' }, key, hexToBytes(cp.signature), msg);
    return ok
      ? { state: 'ok', msg: 'signature verified in this browser (Ed25519)' }
      : { state: 'bad', msg: 'the signature does NOT verify under the public key' };
  } catch (e) {
    return { state: 'unsupported', msg: 'not checked: this browser has no Ed25519 in WebCrypto (' + e.message + ')' };
  }
}

async function refreshBudget() {
  // the global ledger comes with any swarm's; asking for one swarm keeps the reply small
  const first = st.swarms[0];
  const r = await st.api.get('/v1/budgets' + (first ? '?swarm=' + enc(first.id) : ''));
  st.budget = { global: r.global, maxPerTask: r.max_cost_per_task };
  invalidate('cost');
}

async function refreshDetail() {
  const id = st.selected;
  if (!id) return;
  const [d, slo] = await Promise.all([
    st.api.get('/v1/swarms/' + enc(id) + '/status').catch((e) => ({ error: e })),
    st.api.get('/v1/swarms/' + enc(id) + '/slo').catch(() => null),
  ]);
  if (id !== st.selected) return;
  if (d.error) {
    st.detailErr = d.error.message;
  } else {
    st.detail = d;
    st.detailErr = null;
    const sw = Object.assign({}, d);
    for (const k of ['reason', 'phases', 'progress', 'working', 'blocked_on', 'agent_list']) delete sw[k];
    upsertSwarm(sw);
    swarmViewStale = true;
  }
  st.detailSlo = slo;
  invalidate('detail', 'swarms');
}

async function loadTail(epoch, upTo) {
  const r = await st.api.get('/v1/witness?order=desc&limit=1000');
  if (epoch !== st.epoch) return;
  const older = r.entries.filter((e) => e.seq <= upTo).reverse();
  const cutoff = st.api.now() - st.tp.n * st.tp.bucketMs;
  for (const e of older) {
    if (e.time < cutoff) continue;
    if (e.op === 'task.done') st.tp.add('done', e.time);
    else if (e.op === 'task.fail' || e.op === 'task.expire') st.tp.add('failed', e.time);
  }
  const newer = st.tail.filter((e) => e.seq > upTo);
  st.tail = older.slice(-TAIL_KEEP).concat(newer);
  for (const tr of tailRows.values()) tr.remove();
  tailRows.clear();
  invalidate('witness', 'cost');
}

async function loadModels() {
  const r = await st.api.get('/v1/models');
  const tiers = new Map();
  for (const m of r.models) {
    if (!tiers.has(m.tier)) tiers.set(m.tier, []);
    tiers.get(m.tier).push(m.name);
  }
  st.tiers = tiers;
  invalidate('cost');
}

// Everything from the start; the stream keeps running (events mark what they touch).
async function reloadAll(upTo) {
  const epoch = ++st.epoch;
  st.swarmsLoaded = false;
  st.agentsLoaded = false;
  const tasks = [
    loadSwarms(epoch), loadAgents(epoch), loadClaimed(epoch), loadModels(), loadTail(epoch, upTo),
  ];
  for (const j of ['blockers', 'escalations', 'approvals', 'checkpoint', 'budget']) jobs[j].want();
  if (st.selected) jobs.detail.want();
  const results = await Promise.allSettled(tasks);
  const bad = results.find((r) => r.status === 'rejected');
  if (bad) {
    toast('could not read everything: ' + bad.reason.message + ' (retrying)', true);
    if (epoch === st.epoch) setTimeout(() => reloadAll(st.lastSeq), 3000);
  }
}

/* ---------------------------------------------------------------- connection */

function setConn(state, info) {
  st.conn = state;
  st.connInfo = info || {};
  document.documentElement.dataset.conn = state;
  invalidate('header');
}

async function beforeReconnect(lastSeq) {
  const hz = await st.api.get('/healthz');
  st.version = hz.version;
  if (hz.event_seq < lastSeq || hz.event_seq - lastSeq > RESUME_MAX_GAP) {
    // a restored database, or too much missed to replay: read it all again instead
    st.seenSeq = hz.event_seq;
    st.lastSeq = hz.event_seq;
    reloadAll(hz.event_seq);
    return hz.event_seq;
  }
  // resume: the server replays what we missed; the small lists are cheap to re-read
  for (const j of ['blockers', 'escalations', 'approvals', 'checkpoint', 'budget', 'totals']) jobs[j].want();
  for (const o of swarmTable.visible()) markSwarm(o.id);
  for (const o of agentTable.visible()) markAgent(o.id);
  if (st.selected) jobs.detail.want();
  return lastSeq;
}

async function start(token) {
  const api = new Api(token);
  api.onUnauthorized = (msg) => signOut('the server refused the token: ' + msg);
  const who = await api.get('/v1/whoami');
  sessionStorage.setItem(TOKEN_KEY, token); // the server knows it: keep it for this tab
  st.api = api;
  st.who = who;
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  $('who-text').hidden = false;
  const hz = await api.get('/healthz');
  st.version = hz.version;
  st.lastSeq = st.seenSeq = hz.event_seq;
  st.stream = new EventStream(api, {
    onEvent,
    onGap: (g) => {
      toast(`the server no longer holds events ${g.from}–${g.to}: reading everything again`, true);
      reloadAll(g.to);
    },
    onState: setConn,
    beforeConnect: beforeReconnect,
  });
  st.stream.start(hz.event_seq);
  if (!pumpTimer) pumpTimer = setInterval(pump, 250);
  invalidate('header', 'attention', 'graph', 'witness', 'cost', 'detail');
  reloadAll(hz.event_seq);
}

function signOut(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (st.stream) st.stream.stop();
  st.stream = null;
  st.api = null;
  st.epoch++;
  $('main').hidden = true;
  $('logout').hidden = true;
  $('who-text').hidden = true;
  $('login').hidden = false;
  $('login-err').textContent = msg || '';
  $('token').value = '';
  $('token').focus();
  setConn('idle', {});
}

/* ---------------------------------------------------------------- actions */

function toast(text, bad) {
  const p = h('p', { class: bad ? 'bad' : '' }, bad ? '✕ ' : '✓ ', text);
  $('toast').append(p);
  setTimeout(() => p.remove(), bad ? 9000 : 5000);
}

const isAdmin = () => st.who && st.who.kind === 'admin';
const canApprove = () => st.who && (st.who.kind === 'admin' || st.who.kind === 'approver');

const busy = new Set(); // actions under way, by fkey: a redraw must not re-enable them

function actionButton(label, fkey, allowed, why, run) {
  return h('button', {
    type: 'button',
    dataset: { fkey },
    disabled: !allowed || busy.has(fkey),
    title: allowed ? null : why,
    onclick: async (e) => {
      const b = e.currentTarget;
      if (busy.has(fkey)) return;
      busy.add(fkey);
      b.disabled = true;
      try {
        const msg = await run();
        toast(msg);
      } catch (err) {
        toast(`${label}: ${err.message}`, true);
      } finally {
        busy.delete(fkey);
        b.disabled = false;
        invalidate('attention', 'detail');
      }
    },
  }, label);
}

const NEED_ADMIN = 'needs the admin token';

function approveButton(t) {
  return actionButton('Approve', 'approve:' + t.id, canApprove(), 'needs the admin or an approver token', async () => {
    const r = await st.api.post('/v1/tasks/' + enc(t.id) + '/approve');
    jobs.approvals.want();
    markSwarm(t.swarm);
    const task = r.task || {};
    return `approved ${t.id}` + (task.state ? `: it is ${task.state}` : '') +
      (task.approvals !== undefined && t.approval.startsWith('quorum') ? ` (${task.approvals} approvals)` : '');
  });
}

function ackButton(e) {
  return actionButton('Acknowledge', 'ack:' + e.id, isAdmin(), NEED_ADMIN, async () => {
    await st.api.post('/v1/escalations/' + e.id + '/ack');
    jobs.escalations.want();
    return `escalation #${e.id} acknowledged`;
  });
}

function resetButton(id, what) {
  return actionButton('Reset breaker', 'reset:' + id, isAdmin(), NEED_ADMIN, async () => {
    await st.api.post('/v1/breakers/' + enc(id) + '/reset');
    if (st.agentIx.has(id)) markAgent(id);
    if (st.swarmIx.has(id)) markSwarm(id);
    jobs.escalations.want();
    return `breaker of ${what} ${id} reset`;
  });
}

function resumeButton(id) {
  return actionButton('Resume', 'resume:' + id, isAdmin(), NEED_ADMIN, async () => {
    await st.api.post('/v1/swarms/' + enc(id) + '/resume');
    markSwarm(id);
    return `swarm ${id} resumed`;
  });
}

function pauseButton(id) {
  return actionButton('Pause', 'pause:' + id, isAdmin(), NEED_ADMIN, async () => {
    await st.api.post('/v1/swarms/' + enc(id) + '/pause');
    markSwarm(id);
    return `swarm ${id} paused`;
  });
}

function budgetForm(sw) {
  const id = 'budget-' + sw.id;
  const input = h('input', { id, type: 'number', min: '0', step: '0.01', value: String(Math.max(sw.budget, sw.spent) || ''), dataset: { fkey: 'budget-in:' + sw.id } });
  return h('form', {
    class: 'budget-form', method: 'dialog',
    onsubmit: async (e) => {
      e.preventDefault();
      const v = Number(input.value);
      if (!isFinite(v) || v < 0) {
        toast('the budget must be a number of US dollars', true);
        return;
      }
      try {
        await st.api.post('/v1/budgets', { swarm: sw.id, budget: v });
        markSwarm(sw.id);
        jobs.budget.want();
        toast(`budget of ${sw.id} set to ${usd(v)}`);
      } catch (err) {
        toast('set budget: ' + err.message, true);
      }
    },
  }, h('label', { for: id, class: 'sr-only' }, `New budget of ${sw.id} in US dollars`), '$', input,
  h('button', { type: 'submit', disabled: !isAdmin(), title: isAdmin() ? null : NEED_ADMIN, dataset: { fkey: 'budget:' + sw.id } }, 'Set budget'));
}

/* ---------------------------------------------------------------- derived views */

// The seed's vocabulary: the server's status, sharpened by what the blockers say.
function statusOf(sw) {
  if (sw.state === 'paused') return ['paused', 'paused by an operator'];
  if (sw.state === 'tripped') return ['tripped', 'circuit breaker tripped: the budget is spent'];
  const bl = st.blockedSwarms.get(sw.id);
  if (bl) return ['blocked', `${bl.length} task${bl.length === 1 ? '' : 's'} reported blocked: ${bl[0].reason}`];
  if (st.helpingSwarms.has(sw.id)) return ['helping', 'its agents work on another swarm\'s blocker'];
  const why = {
    working: 'agents hold leases', waiting: 'ready work, nobody holds it yet',
    blocked: sw.tasks && sw.tasks.dead ? 'a task exhausted its attempts' : 'waiting for dependencies, an earlier phase or approval',
    completed: 'every task is done or cancelled',
  };
  return [sw.status, why[sw.status] || sw.status];
}

const STATUS_RANK = { tripped: 0, blocked: 1, paused: 2, helping: 3, working: 4, waiting: 5, completed: 6 };

function taskTotal(c) {
  return c ? c.pending + c.ready + c.claimed + c.done + c.dead : 0;
}

let swarmViewStale = true, agentViewStale = true;
let swarmView = [], agentView = [], statusCounts = {};

function computeSwarmView() {
  const q = $('swarm-q').value.trim().toLowerCase();
  const fs = $('swarm-status').value, fr = $('swarm-relation').value, order = $('swarm-sort').value;
  const counts = {};
  const out = [];
  for (const sw of st.swarms) {
    const stt = statusOf(sw)[0];
    counts[stt] = (counts[stt] || 0) + 1;
    if (fs && stt !== fs) continue;
    if (fr && sw.relation !== fr) continue;
    if (q && !sw.id.toLowerCase().includes(q) && !(sw.role || '').toLowerCase().includes(q)) continue;
    out.push(sw);
  }
  if (order === 'id') out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  else if (order === 'spent') out.sort((a, b) => b.spent - a.spent);
  else if (order === 'attention') {
    const rel = { critical: 0, peer: 1, support: 2 };
    out.sort((a, b) => STATUS_RANK[statusOf(a)[0]] - STATUS_RANK[statusOf(b)[0]] ||
      (rel[a.relation] ?? 3) - (rel[b.relation] ?? 3));
  }
  statusCounts = counts;
  swarmView = out;
  swarmViewStale = false;
}

function healthOf(a, now) {
  if (!a.last_seen) return 'never seen';
  const d = now - a.last_seen;
  return d < HEALTH_WARN_MS ? 'healthy' : d < HEALTH_FROZEN_MS ? 'warning' : 'frozen';
}

function computeAgentView() {
  const q = $('agent-q').value.trim().toLowerCase();
  const show = $('agent-show').value;
  const now = st.api ? st.api.now() : Date.now();
  const out = [];
  for (const a of st.agents) {
    const cur = st.current.get(a.id);
    if (show === 'busy' && !cur) continue;
    if (show === 'breaker' && a.breaker === 'closed') continue;
    if (show === 'stale' && (healthOf(a, now) === 'healthy' || !a.last_seen)) continue;
    if (q && !a.id.toLowerCase().includes(q) && !a.swarm.toLowerCase().includes(q) &&
        !(cur && cur.some((t) => t.toLowerCase().includes(q)))) continue;
    out.push(a);
  }
  agentView = out;
  agentViewStale = false;
}

/* ---------------------------------------------------------------- panels */

function selectSwarm(id) {
  st.selected = id;
  st.detail = null;
  st.detailSlo = null;
  st.detailErr = null;
  $('detail').hidden = false;
  jobs.detail.want();
  jobs.detail.last = 0;
  pump();
  invalidate('detail', 'swarms');
  swarmTable.render();
  $('detail-h').focus({ preventScroll: false });
}

const swarmTable = new VTable($('swarm-table'), {
  label: 'Swarms',
  rowHeight: 40,
  key: (sw) => sw.id,
  selected: (sw) => sw.id === st.selected,
  sig: (sw) => {
    const c = sw.tasks || {};
    const [stt, why] = statusOf(sw);
    return `${stt}|${why}|${sw.relation}|${sw.current_phase}|${c.pending},${c.ready},${c.claimed},${c.done},${c.dead},${c.cancelled}|${sw.spent}|${sw.reserved}|${sw.budget}|${sw.agents}|${sw.role}`;
  },
  onView: () => jobs.visibleSwarms.want(),
  columns: [
    { label: 'Swarm', width: '18%', cell: (sw) => h('td', { class: 'two-line' },
      h('button', { type: 'button', class: 'link', dataset: { fkey: 'sw:' + sw.id }, onclick: () => selectSwarm(sw.id), 'aria-label': `${sw.id}: show details` }, sw.id),
      h('span', { class: 'sub' }, sw.role || '')) },
    { label: 'Relation', width: '11%', cell: (sw) => h('span', { class: 'rel-' + sw.relation }, sw.relation === 'critical' ? '★ critical' : sw.relation) },
    { label: 'Status', width: '13%', cell: (sw) => {
      const [stt, why] = statusOf(sw);
      return h('td', { title: why }, badge('s-' + stt, stt, STATUS_ICON[stt], why));
    } },
    { label: 'Phase progress', width: '21%', cell: (sw) => {
      const c = sw.tasks, total = taskTotal(c);
      const ph = sw.current_phase === null ? (total ? 'all phases done' : 'no tasks') : `phase ${sw.current_phase}`;
      return bar(c ? c.done : 0, 0, total, `${ph} · ${num(c ? c.done : 0)}/${num(total)} done (${Math.floor(pct(c ? c.done : 0, total))}%)`, 'done');
    } },
    { label: 'Budget', width: '19%', cell: (sw) => sw.budget > 0
      ? bar(sw.spent, sw.reserved, sw.budget, `${usd(sw.spent)} of ${usd(sw.budget)}` + (sw.reserved ? ` (+${usd(sw.reserved)} reserved)` : ''))
      : h('span', { class: 'muted' }, `${usd(sw.spent)} spent · no budget`) },
    { label: 'Agents', width: '7%', cls: 'num', cell: (sw) => num(sw.agents) },
    { label: 'Tasks', width: '11%', cls: 'two-line', cell: (sw) => {
      const c = sw.tasks || {};
      return h('td', { class: 'two-line', title: `${c.pending} pending, ${c.ready} ready, ${c.claimed} claimed, ${c.done} done, ${c.dead} dead, ${c.cancelled} cancelled` },
        `${num(c.ready)} ready`, h('span', { class: 'sub' }, `${num(c.claimed)} claimed` + (c.dead ? ` · ${c.dead} dead` : '')));
    } },
  ],
});

const agentTable = new VTable($('agent-table'), {
  label: 'Agents',
  rowHeight: 40,
  key: (a) => a.id,
  sig: (a) => {
    const now = st.api ? st.api.now() : Date.now();
    const seen = a.last_seen ? age(now - a.last_seen) : '';
    return `${a.swarm}|${a.model}|${a.tier}|${(st.current.get(a.id) || []).join(',')}|${seen}|${healthOf(a, now)}|${a.breaker}|${a.consecutive_failures}|${a.spent}|${a.leases_held}`;
  },
  onView: () => jobs.visibleAgents.want(),
  columns: [
    { label: 'Agent', width: '20%', cell: (a) => h('td', { class: 'two-line' }, a.id,
      h('span', { class: 'sub' }, h('button', { type: 'button', class: 'link', dataset: { fkey: 'asw:' + a.id }, onclick: () => selectSwarm(a.swarm) }, a.swarm))) },
    { label: 'Model', width: '14%', cell: (a) => h('td', { class: 'two-line' }, a.model || '—', h('span', { class: 'sub' }, 'tier ' + (a.tier || '?'))) },
    { label: 'Current task', width: '22%', cell: (a) => {
      const cur = st.current.get(a.id);
      return cur ? h('span', { class: 'mono', title: cur.join(', ') }, cur[0] + (cur.length > 1 ? ` +${cur.length - 1}` : '')) : h('span', { class: 'muted' }, 'idle');
    } },
    { label: 'Heartbeat', width: '16%', cell: (a) => {
      const now = st.api ? st.api.now() : Date.now();
      const hl = healthOf(a, now);
      return h('td', { class: 'two-line' }, badge('h-' + hl.split(' ')[0], hl, HEALTH_ICON[hl]),
        h('span', { class: 'sub' }, a.last_seen ? age(now - a.last_seen) + ' ago' : 'no heartbeat yet'));
    } },
    { label: 'Breaker', width: '18%', cell: (a) => {
      const word = a.breaker === 'half_open' ? 'half-open' : a.breaker;
      return h('td', null, badge('b-' + a.breaker, word, BREAKER_ICON[a.breaker], `${a.consecutive_failures} failures in a row`), ' ',
        a.breaker !== 'closed' ? resetButton(a.id, 'agent') : (a.consecutive_failures ? h('span', { class: 'muted' }, `${a.consecutive_failures} fail`) : null));
    } },
    { label: 'Spent', width: '10%', cls: 'num', cell: (a) => usd(a.spent) },
  ],
});

function renderSwarms() {
  if (swarmViewStale) computeSwarmView();
  swarmTable.setRows(swarmView);
  swarmTable.render();
  const n = st.swarms.length;
  $('swarms-count').textContent = st.swarmsLoaded ? `(${num(n)})` : `(${num(n)} loaded, reading more…)`;
  const order = ['working', 'helping', 'blocked', 'waiting', 'paused', 'tripped', 'completed'];
  $('swarm-summary').textContent = order.filter((k) => statusCounts[k]).map((k) => `${num(statusCounts[k])} ${k}`).join(' · ') +
    (swarmView.length !== n ? ` — showing ${num(swarmView.length)}` : '');
}

function renderAgents() {
  if (agentViewStale) computeAgentView();
  agentTable.setRows(agentView);
  agentTable.render();
  $('agents-count').textContent = `(${num(st.agents.length)})` + (agentView.length !== st.agents.length ? `, showing ${num(agentView.length)}` : '');
}

function group(title, count, rows, head, more, wide) {
  return h('div', { class: wide ? 'group wide' : 'group' },
    h('h3', null, `${title} (${count})`),
    h('table', { class: 'plain' },
      h('thead', null, h('tr', null, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, rows)),
    more > 0 ? h('p', { class: 'muted' }, `and ${num(more)} more`) : null);
}

function renderAttention() {
  const now = st.api ? st.api.now() : Date.now();
  const groups = [];
  let total = 0;
  const esc = st.escalations;
  if (esc.length) {
    total += esc.length;
    groups.push(group('Escalations', esc.length, esc.slice(0, LIST_CAP).map((e) => h('tr', { dataset: { escalation: e.id } },
      h('td', null, `#${e.id} `, h('span', { class: 'sub' }, e.kind.replace(/_/g, ' '))),
      h('td', null, e.swarm ? h('button', { type: 'button', class: 'link', onclick: () => selectSwarm(e.swarm) }, e.swarm) : '—',
        h('span', { class: 'sub mono' }, e.task || e.agent || '')),
      h('td', { class: 'msg' }, e.message, h('span', { class: 'sub' }, age(now - e.created_at) + ' ago')),
      h('td', null, ackButton(e)))),
    ['Escalation', 'Where', 'What', ''], esc.length - LIST_CAP, true));
  }
  const ap = st.approvals;
  if (ap.length) {
    total += ap.length;
    groups.push(group('Approvals', ap.length + (st.approvalsMore ? '+' : ''), ap.slice(0, LIST_CAP).map((t) => h('tr', { dataset: { approval: t.id } },
      h('td', null, h('span', { class: 'mono' }, t.id), h('span', { class: 'sub' }, t.title)),
      h('td', null, h('button', { type: 'button', class: 'link', onclick: () => selectSwarm(t.swarm) }, t.swarm),
        h('span', { class: 'sub' }, 'phase ' + t.phase)),
      h('td', null, t.approval === 'human' ? 'one human' : t.approval.replace('quorum:', 'quorum of '),
        h('span', { class: 'sub' }, `${t.approvals} given · ${t.state}` + (t.max_cost ? ` · up to ${usd(t.max_cost)}` : ''))),
      h('td', null, approveButton(t)))),
    ['Task', 'Swarm', 'Needs', ''], ap.length - LIST_CAP));
  }
  const brk = [];
  for (const a of st.agents) {
    if (a.breaker !== 'closed') brk.push(['agent', a.id, `${a.breaker === 'half_open' ? 'half-open' : 'open'} after ${a.consecutive_failures} failures in a row`, a.swarm, [resetButton(a.id, 'agent')]]);
  }
  for (const sw of st.swarms) {
    if (sw.state === 'tripped') brk.push(['swarm', sw.id, `tripped: ${usd(sw.spent)} of ${usd(sw.budget)} spent`, sw.id, [budgetForm(sw), ' ', resetButton(sw.id, 'swarm')]]);
    else if (sw.state === 'paused') brk.push(['swarm', sw.id, 'paused by an operator', sw.id, [resumeButton(sw.id)]]);
  }
  if (brk.length) {
    total += brk.length;
    groups.push(group('Breakers and paused swarms', brk.length, brk.slice(0, LIST_CAP).map(([kind, id, why, sw, acts]) => h('tr', { dataset: { hold: id } },
      h('td', null, h('span', { class: 'mono' }, id), h('span', { class: 'sub' }, kind)),
      h('td', null, why, kind === 'agent' ? h('span', { class: 'sub' }, 'swarm ' + sw) : null),
      h('td', null, acts))),
    ['Who', 'Why', ''], brk.length - LIST_CAP));
  }
  $('attention-count').textContent = total ? `(${num(total)})` : '';
  fillKeep($('attention-body'), groups.length ? h('div', { class: 'groups' }, groups)
    : h('p', { class: 'ok-all' }, '✓ Nothing waits for a human: no open escalation, no task awaiting approval, every breaker closed, no swarm paused.'));
}

function renderGraph() {
  const rel = (id) => {
    const i = st.swarmIx.get(id);
    return i === undefined ? '' : st.swarms[i].relation;
  };
  $('graph-count').textContent = st.blockers.length ? `(${st.blockers.length})` : '';
  fill($('graph-body'), blockerGraph(st.blockers, rel, st.api ? st.api.now() : Date.now(), selectSwarm, graphWidth));
}

function renderDetail() {
  const box = $('detail-body');
  if (!st.selected) {
    $('detail').hidden = true;
    return;
  }
  $('detail').hidden = false;
  const i = st.swarmIx.get(st.selected);
  const sw = i === undefined ? null : st.swarms[i];
  $('detail-h').textContent = 'Swarm ' + st.selected;
  const close = h('button', { type: 'button', onclick: () => { st.selected = null; invalidate('detail', 'swarms'); swarmTable.render(); } }, 'Close');
  if (st.detailErr) {
    fill(box, h('p', { class: 'error' }, st.detailErr), close);
    return;
  }
  const d = st.detail;
  if (!d || !sw) {
    fill(box, h('p', { class: 'muted' }, 'reading…'), close);
    return;
  }
  const [stt, why] = statusOf(sw);
  const now = st.api.now();
  const slo = st.detailSlo && st.detailSlo.slo;
  const kv = h('dl', { class: 'kv' },
    h('dt', null, 'Role'), h('dd', null, d.role || '—'),
    h('dt', null, 'Relation'), h('dd', null, d.relation),
    h('dt', null, 'Status'), h('dd', null, badge('s-' + stt, stt, STATUS_ICON[stt]), ' ', why),
    h('dt', null, 'Budget'), h('dd', null, d.budget > 0
      ? bar(d.spent, d.reserved, d.budget, `${usd(d.spent)} spent, ${usd(d.reserved)} reserved, of ${usd(d.budget)}`)
      : `${usd(d.spent)} spent; no budget set`),
    h('dt', null, 'Progress'), h('dd', null, `${num(d.progress.done)} done, ${num(d.progress.in_progress)} in progress, ${num(d.progress.remaining)} remaining (${d.progress.percent}%)`),
    d.capabilities.length ? [h('dt', null, 'Capabilities'), h('dd', null, d.capabilities.join(', '))] : null,
    d.branch ? [h('dt', null, 'Branch'), h('dd', { class: 'mono' }, d.branch)] : null,
    slo ? [h('dt', null, 'Service level'), h('dd', null,
      `reputation ${slo.reputation.toFixed(2)} · success ${(slo.success_rate * 100).toFixed(0)}% · p50 ${slo.p50_latency_ms} ms · p99 ${slo.p99_latency_ms} ms over ${slo.samples} lease${slo.samples === 1 ? '' : 's'}`)] : null);
  const phases = h('div', { class: 'phases' }, d.phases.map((p) => h('div', { class: 'ph' },
    h('span', null, `phase ${p.phase}`),
    h('div', { class: 'bar done', role: 'img', 'aria-label': `phase ${p.phase}: ${p.percent}% done` }, h('span', { style: { width: p.percent + '%' } })),
    h('span', { class: 'muted' }, `${p.done}/${p.tasks} done (${p.percent}%)`))));
  const working = d.working.length
    ? h('ul', null, d.working.slice(0, 30).map((w) => h('li', null, h('span', { class: 'mono' }, w.task), ' — ', w.agent || '?', h('span', { class: 'muted' }, ` · lease ends in ${age(w.expires_at - now)}`))))
    : h('p', { class: 'empty' }, 'No agent holds a task of this swarm.');
  const waits = d.blocked_on.length
    ? h('ul', null, d.blocked_on.map((b) => h('li', null, 'waits for ', h('span', { class: 'mono' }, b.task), ' of ',
      h('button', { type: 'button', class: 'link', onclick: () => selectSwarm(b.swarm) }, b.swarm), ` (${b.state})`)))
    : h('p', { class: 'empty' }, 'No task waits on another swarm.');
  const bl = st.blockedSwarms.get(d.id) || [];
  const actions = h('div', { class: 'actions' },
    d.state === 'paused' ? resumeButton(d.id) : d.state === 'active' ? pauseButton(d.id) : resetButton(d.id, 'swarm'),
    budgetForm(d), close);
  fillKeep(box, kv,
    h('h3', null, 'Phases'), d.phases.length ? phases : h('p', { class: 'empty' }, 'No tasks yet.'),
    h('h3', null, 'Working now'), working,
    bl.length ? [h('h3', null, 'Reported blocked'), h('ul', null, bl.map((b) => h('li', null, h('span', { class: 'mono' }, b.task), ': ', b.reason, ` (needs ${b.needs.join(', ')}; ${b.helpers.length} helper${b.helpers.length === 1 ? '' : 's'})`)))] : null,
    h('h3', null, 'Waits on other swarms'), waits,
    h('h3', null, `Agents (${d.agent_list.length})`),
    d.agent_list.length ? h('ul', null, d.agent_list.slice(0, 30).map((a) => h('li', null, `${a.id} · ${a.model} (tier ${a.tier}) · ${a.health} · breaker ${a.breaker}`))) : h('p', { class: 'empty' }, 'No agent.'),
    actions);
}

const tailRows = new Map();
let tailBody = null;

function renderWitness() {
  const cp = st.checkpoint;
  const now = st.api ? st.api.now() : Date.now();
  const c = st.cpCheck;
  fill($('checkpoint'), cp
    ? h('dl', { class: 'checkpoint', 'aria-label': 'Latest signed checkpoint' },
      h('dt', null, 'Checkpoint'), h('dd', null, h('span', { class: c.state === 'ok' ? 'verified' : c.state === 'bad' ? 'unverified' : 'muted' },
        c.state === 'ok' ? '✓ ' : c.state === 'bad' ? '✕ ' : '? ', c.msg)),
      h('dt', null, 'Tree size'), h('dd', { dataset: { treeSize: cp.tree_size } }, num(cp.tree_size) + ' entries',
        st.lastSeq > cp.tree_size ? h('span', { class: 'muted' }, ` (${num(st.lastSeq - cp.tree_size)} newer, not yet in a checkpoint)`) : ''),
      h('dt', null, 'Root hash'), h('dd', { class: 'mono' }, cp.root_hash),
      h('dt', null, 'Signed at'), h('dd', null, datetime(cp.time), h('span', { class: 'muted' }, ` (${age(now - cp.time)} ago)`)),
      h('dt', null, 'Public key'), h('dd', { class: 'mono' }, st.publicKey || '—'))
    : h('p', { class: 'empty' }, 'No signed checkpoint yet.'));

  // the tail: newest first; rows are built once and kept while they stay in the window
  if (!tailBody) {
    tailBody = h('tbody');
    fill($('witness-tail'), h('div', { class: 'tail', tabindex: '0', role: 'region', 'aria-label': 'Latest witness entries' },
      h('table', { class: 'plain fixed' },
        h('colgroup', null, ['8%', '12%', '20%', '17%', '21%', '9%', '13%'].map((w) => h('col', { style: { width: w } }))),
        h('thead', null, h('tr', null, ['Seq', 'Time', 'Operation', 'Swarm', 'Task', 'Agent', 'State'].map((t) => h('th', { scope: 'col' }, t)))),
        tailBody)));
  }
  const show = st.tail.slice(-TAIL_SHOW).reverse();
  const keep = new Set(show.map((e) => e.seq));
  for (const [seq, tr] of tailRows) {
    if (!keep.has(seq)) {
      tr.remove();
      tailRows.delete(seq);
    }
  }
  let prev = null;
  // a few new rows flash; a flood does not (it would only cost frames)
  const fresh = tailRows.size && show.filter((e) => !tailRows.has(e.seq)).length <= 8;
  for (const e of show) {
    let tr = tailRows.get(e.seq);
    if (!tr) {
      const state = e.state || (e.params && e.params.state) || '';
      tr = h('tr', { class: fresh ? 'fresh' : null, dataset: { seq: e.seq, op: e.op } },
        h('td', { class: 'num' }, e.seq), h('td', null, clock(e.time)), h('td', { class: 'mono' }, e.op),
        h('td', null, e.swarm || ''), h('td', { class: 'mono' }, e.task || ''), h('td', null, e.agent || ''),
        h('td', null, state ? badge('e-' + state, state) : ''));
      tailRows.set(e.seq, tr);
    }
    if (prev ? prev.nextSibling !== tr : tailBody.firstChild !== tr) {
      if (prev) prev.after(tr);
      else tailBody.prepend(tr);
    }
    prev = tr;
  }
}

function renderCost() {
  const box = $('cost-body');
  const now = st.api ? st.api.now() : Date.now();
  const g = st.budget && st.budget.global;
  const tierSpend = new Map();
  for (const a of st.agents) tierSpend.set(a.tier, (tierSpend.get(a.tier) || 0) + a.spent);
  const tiers = [...tierSpend.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({
    label: `tier ${t}` + (st.tiers.get(t) ? ` (${st.tiers.get(t).join(', ')})` : ''), value: v,
  }));
  const top = [...st.swarms].filter((sw) => sw.spent > 0 || sw.reserved > 0)
    .sort((a, b) => b.spent - a.spent).slice(0, 8)
    .map((sw) => ({ label: sw.id, value: sw.spent, of: sw.budget > 0 ? sw.budget : 0, note: sw.state === 'tripped' ? '⚡ tripped' : '' }));
  fill(box,
    h('h3', null, 'Throughput (tasks done per second, from the live stream)'),
    sparkline(st.tp, now),
    h('h3', null, 'Spend'),
    g ? h('div', null, g.limit
      ? bar(g.spent, g.reserved, g.limit, `all swarms: ${usd(g.spent)} of a ${usd(g.limit)} global budget (${usd(g.reserved)} reserved)`)
      : h('p', null, `All swarms: ${usd(g.spent)} spent, ${usd(g.reserved)} reserved by running tasks; no global budget.`),
    st.budget.maxPerTask ? h('p', { class: 'muted' }, `A task may cost at most ${usd(st.budget.maxPerTask)} unless it says otherwise.`) : null)
      : h('p', { class: 'muted' }, 'reading…'),
    h('h3', null, 'By model tier'),
    hbars(tiers, 'No agent yet.'),
    h('h3', null, 'Swarms that spent the most'),
    hbars(top, 'No swarm has spent anything yet.'));
}

function renderHeader() {
  const c = $('conn');
  const i = st.connInfo;
  c.dataset.state = st.conn;
  const words = {
    idle: ['○', 'not connected'],
    connecting: ['◌', 'connecting…'],
    live: ['●', 'live'],
    reconnecting: ['◌', i.delay ? `reconnecting in ${(i.delay / 1000).toFixed(1)} s (attempt ${i.attempt})` : `reconnecting (attempt ${i.attempt})`],
    offline: ['✕', 'offline: ' + (i.reason || '')],
  }[st.conn];
  c.querySelector('.conn-icon').textContent = words[0];
  // the live region says only what changes rarely; the event number beside it is not read out
  if (c.querySelector('.conn-text').textContent !== words[1]) c.querySelector('.conn-text').textContent = words[1];
  c.querySelector('.conn-seq').textContent = st.conn === 'live' ? ` · event #${num(st.lastSeq)}` : '';
  c.title = i.error ? 'last error: ' + i.error : '';
  const t = st.totals;
  if (t) {
    fill($('totals'), [['swarms', st.swarms.length], ['agents', st.agents.length],
      ['pending', t.pending], ['ready', t.ready], ['claimed', t.claimed], ['done', t.done], ['dead', t.dead]]
      .map(([k, v]) => h('div', null, h('dt', null, k), h('dd', { dataset: { total: k } }, num(v)))));
  }
  if (st.who) {
    $('who-text').textContent = `signed in: ${st.who.kind}${st.who.swarm ? ' of ' + st.who.swarm : ''}${st.who.name ? ' (' + st.who.name + ')' : ''}`;
  }
  $('foot').textContent = `s2 ${st.version} · ${location.host} · last event #${num(st.lastSeq)} · ${num(st.swarms.length)} swarms and ${num(st.agents.length)} agents in this page` +
    (st.dirtySwarms.size ? ` · ${num(st.dirtySwarms.size)} swarms being re-read` : '');
}

const RENDER = {
  header: renderHeader, swarms: renderSwarms, agents: renderAgents, attention: renderAttention,
  graph: renderGraph, detail: renderDetail, witness: renderWitness, cost: renderCost,
};

/* ---------------------------------------------------------------- wiring */

for (const id of ['swarm-q', 'swarm-status', 'swarm-relation', 'swarm-sort']) {
  $(id).addEventListener('input', () => {
    // what the user typed is answered in the next frame, whatever the render pace
    swarmTable.toTop();
    swarmViewStale = true;
    requestAnimationFrame(renderSwarms);
  });
}
for (const id of ['agent-q', 'agent-show']) {
  $(id).addEventListener('input', () => {
    agentTable.toTop();
    agentViewStale = true;
    requestAnimationFrame(renderAgents);
  });
}

// ages move on their own: heartbeats, escalation ages, the sparkline's time axis
let ticks = 0;
setInterval(() => {
  if (!st.api) return;
  ticks++;
  agentViewStale = true;
  invalidate('agents', 'header');
  if (ticks % 5 === 0) invalidate('attention', 'graph', 'cost', 'witness');
}, 1000);

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  $('login-err').textContent = '';
  try {
    await start(token);
    $('token').value = '';
  } catch (err) {
    $('login-err').textContent = err.status === 401 ? 'The server does not know this token.' : err.message;
    $('main').hidden = true;
    $('login').hidden = false;
  }
});
$('logout').addEventListener('click', () => signOut('Token forgotten. Enter one to connect again.'));

(async function boot() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    signOut('');
    return;
  }
  try {
    await start(token);
  } catch (err) {
    if (err.status === 401) signOut('The server does not know the saved token.');
    else {
      // the server may be restarting: keep the token and try again
      $('login').hidden = true;
      setConn('reconnecting', { attempt: 1, delay: 2000, error: err.message });
      setTimeout(boot, 2000);
    }
  }
})();

// the graph is drawn at the width it is shown (read here, not in render: no forced layout)
new ResizeObserver((entries) => {
  const w = Math.round(entries[0].contentRect.width);
  if (w && Math.abs(w - graphWidth) > 8) {
    graphWidth = w;
    invalidate('graph');
  }
}).observe($('graph-body'));
