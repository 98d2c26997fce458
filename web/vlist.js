// vlist.js: a virtualised table. Only the rows in view (plus a few) exist in the DOM, so a
// list of 10,000 swarms costs what a list of 30 does. Rows keep their element while their
// key stays in view, and a row is rebuilt only when its signature changes, so keyboard
// focus on a button inside a row survives live updates.
import { h } from './util.js';

export class VTable {
  // columns: [{label, width, cls, cell(row) -> Node|string}]
  // key(row) -> string, sig(row) -> string (changes when the row must be redrawn)
  constructor(host, { label, columns, rowHeight, key, sig, selected, onView }) {
    this.columns = columns;
    this.rowHeight = rowHeight;
    this.key = key;
    this.sig = sig;
    this.selected = selected || (() => false);
    this.onView = onView || (() => {});
    this.rows = [];
    this.live = new Map(); // key -> {tr, sig}
    this.scroller = h('div', { class: 'vscroll', role: 'region', 'aria-label': label, tabindex: '0' });
    this.table = h('table', { 'aria-label': label });
    const colgroup = h('colgroup', null, columns.map((c) => h('col', { style: c.width ? { width: c.width } : null })));
    this.thead = h('thead', null, h('tr', { 'aria-rowindex': '1' },
      columns.map((c) => h('th', { scope: 'col', class: c.cls || null }, c.label))));
    this.tbody = h('tbody');
    this.top = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan: columns.length }));
    this.bottom = h('tr', { class: 'spacer', 'aria-hidden': 'true' }, h('td', { colspan: columns.length }));
    this.table.append(colgroup, this.thead, this.tbody);
    this.scroller.append(this.table);
    host.replaceChildren(this.scroller);
    this.pending = false;
    // Geometry is read where the browser has it at hand (scroll events, resize observers),
    // never in render(): a forced layout per render costs more than the render itself.
    this.scrollTop = 0;
    this.viewH = 400;
    this.headH = 32;
    this.measured = false;
    const ro = new ResizeObserver((entries) => {
      for (const e of entries) {
        if (e.target === this.scroller) this.viewH = e.contentRect.height || 400;
        else this.headH = e.contentRect.height || 32;
      }
      this.render();
    });
    ro.observe(this.scroller);
    ro.observe(this.thead);
    this.scroller.addEventListener('scroll', () => {
      this.scrollTop = this.scroller.scrollTop;
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        this.render();
      });
    }, { passive: true });
    this.lastView = [0, 0];
  }

  setRows(rows) {
    this.rows = rows;
  }

  toTop() {
    this.scroller.scrollTop = 0;
    this.scrollTop = 0;
  }

  // The rows now in view (for refreshing just those from the server).
  visible() {
    return this.rows.slice(this.lastView[0], this.lastView[1]);
  }


  render() {
    const n = this.rows.length;
    const rh = this.rowHeight;
    const head = this.headH, viewH = this.viewH, scrollTop = this.scrollTop;
    const overscan = 6;
    let first = Math.max(0, Math.floor((scrollTop - head) / rh) - overscan);
    let last = Math.min(n, Math.ceil((scrollTop + viewH) / rh) + overscan);
    if (first > last) first = last;
    this.lastView = [first, last];
    this.table.setAttribute('aria-rowcount', String(n + 1));

    const focusKey = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.fkey : undefined;
    const keep = new Map();
    const trs = [];
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      const k = this.key(row);
      const sg = this.sig(row) + (this.selected(row) ? '|sel' : '');
      let item = this.live.get(k);
      if (!item || item.sig !== sg) {
        const tr = item ? item.tr : h('tr', { dataset: { key: k } });
        tr.replaceChildren(...this.columns.map((c) => {
          const v = c.cell(row);
          return v instanceof Node && v.nodeName === 'TD' ? v : h('td', { class: c.cls || null }, v);
        }));
        tr.className = this.selected(row) ? 'sel' : '';
        item = { tr, sig: sg };
      }
      item.tr.setAttribute('aria-rowindex', String(i + 2));
      keep.set(k, item);
      trs.push(item.tr);
    }
    this.live = keep;
    this.top.style.height = first * rh + 'px';
    this.bottom.style.height = (n - last) * rh + 'px';
    this.top.hidden = first === 0;
    this.bottom.hidden = last === n;
    // Move only what moved: replaceChildren would blur a focused button in a kept row.
    const want = [this.top, ...trs, this.bottom];
    let cur = this.tbody.firstChild;
    for (const el of want) {
      if (cur === el) {
        cur = cur.nextSibling;
        continue;
      }
      this.tbody.insertBefore(el, cur);
    }
    while (cur) {
      const next = cur.nextSibling;
      cur.remove();
      cur = next;
    }
    // Rows are as tall as the CSS makes them: learn it once, in the next frame (when the
    // layout is done anyway), so that the spacers stay exact.
    if (trs.length && !this.measured) {
      this.measured = true;
      requestAnimationFrame(() => {
        const real = trs[0].getBoundingClientRect().height;
        this.headH = this.thead.getBoundingClientRect().height || this.headH;
        if (real > 0 && Math.abs(real - this.rowHeight) > 0.5) {
          this.rowHeight = real;
          this.render();
        }
      });
    }
    if (focusKey && (!document.activeElement || document.activeElement === document.body)) {
      const again = this.tbody.querySelector(`[data-fkey="${CSS.escape(focusKey)}"]`);
      if (again) again.focus();
    }
    this.onView(first, last);
  }
}
