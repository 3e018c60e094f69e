// DOM helpers. Every text goes in through textContent or attributes: no HTML is parsed from data.

/** An element: h('td', {class: 'num'}, 'text', child, ...). `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element (for charts). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A labelled input for a form grid: field('Max budget (USD)', {name: 'max_budget', type: 'number'}). */
let uid = 0;
export function field(label, attrs = {}, tag = 'input', options = []) {
  const id = `f${++uid}`;
  const input = tag === 'select'
    ? h('select', { id, ...attrs }, options.map(([v, t]) => h('option', { value: v }, t)))
    : h(tag, { id, ...attrs });
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

/** A table; on a phone its rows become cards (each cell labelled by its column). */
export function table(columns, rows, caption) {
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : undefined }, c.label)));
  const body = rows.map((r) => h('tr', {}, columns.map((c) => {
    const v = c.render ? c.render(r) : r[c.key];
    return h('td', { 'data-label': c.label, class: c.num ? 'num' : undefined }, v ?? '');
  })));
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'cards' },
      caption ? h('caption', { class: 'muted' }, caption) : null,
      h('thead', {}, head),
      h('tbody', {}, body.length ? body : h('tr', {}, h('td', { colspan: columns.length, class: 'muted' }, 'Nothing yet.')))));
}

/** The form's named fields as an object: empty ones left out, numbers parsed, lists split on commas. */
export function formValues(form, { numbers = [], lists = [] } = {}) {
  const out = {};
  for (const [k, raw] of new FormData(form).entries()) {
    const v = String(raw).trim();
    if (v === '') continue;
    if (numbers.includes(k)) out[k] = Number(v);
    else if (lists.includes(k)) out[k] = v.split(',').map((x) => x.trim()).filter(Boolean);
    else out[k] = v;
  }
  return out;
}

export const usd = (n) => (typeof n === 'number' ? `$${n < 0.01 && n > 0 ? n.toFixed(6) : n.toFixed(4)}` : '');
/** A short amount for chart axes: $0, $0.0042, $1.25, $1,200. */
export const usdShort = (n) => {
  if (typeof n !== 'number' || n === 0) return '$0';
  if (Math.abs(n) < 1) return `$${Number(n.toPrecision(2))}`;
  return `$${n.toLocaleString(undefined, { maximumFractionDigits: 2 })}`;
};
export const num = (n) => (typeof n === 'number' ? n.toLocaleString() : '');
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : '');
