// Small DOM helpers shared by the pages: element building, times in the
// browser's zone, dialogs, tables, errors and pagers.

// h builds an element. attrs: class, text, dataset (object), on<Event>
// handlers, and any other attribute (false/null/undefined leave it out).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// add appends nodes and text to el, skipping null, undefined and false
// (the DOM's own append would show them as words).
export function add(el, ...children) { append(el, children); }

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// The browser's time zone: every time shown is in it.
export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

// fmtTime shows an RFC 3339 time in the browser's zone ('' for none).
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : dateTime.format(d);
}

export function fmtClock(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return isNaN(d) ? iso : clock.format(d);
}

// timeEl is a <time> element with the exact instant in its datetime.
export function timeEl(iso) {
  return iso ? h('time', { datetime: iso, title: iso }, fmtTime(iso)) : '';
}

// fmtDuration: 75 → "1:15", 3725 → "1:02:05".
export function fmtDuration(seconds) {
  if (seconds === undefined || seconds === null || isNaN(seconds)) return '';
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = n => String(n).padStart(2, '0');
  return hh > 0 ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

// ago: "5 s ago", "3 min ago", or the time itself when older than a day.
export function ago(iso) {
  if (!iso) return '';
  const s = (Date.now() - new Date(iso).getTime()) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return fmtTime(iso);
}

// errorBox shows an API error as the server's own message.
export function errorBox(err) {
  const msg = err && err.message ? err.message : String(err);
  return h('p', { class: 'error', role: 'alert' }, msg);
}

// showIn replaces a region's content.
export function showIn(region, ...nodes) {
  region.replaceChildren();
  append(region, nodes);
}

export function badge(value, cls) {
  return value ? h('span', { class: 'badge ' + (cls || value) }, value) : '';
}

// table builds a table whose rows become cards at phone width. columns:
// [{label, cell(row) → node|string, class}]; rows: data.
export function table(columns, rows, { caption, empty, rowAttrs } = {}) {
  const thead = h('thead', {}, h('tr', {}, columns.map(c => h('th', { scope: 'col' }, c.label))));
  const tbody = h('tbody', {});
  for (const r of rows) tbody.append(tableRow(columns, r, rowAttrs));
  const t = h('table', { class: 'cards' }, caption ? h('caption', { class: 'note' }, caption) : null, thead, tbody);
  const wrap = h('div', { class: 'tablewrap' }, t);
  if (!rows.length && empty) wrap.append(h('p', { class: 'empty' }, empty));
  return wrap;
}

export function tableRow(columns, r, rowAttrs) {
  return h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map(c => {
    const v = c.cell(r);
    return h('td', { 'data-label': c.label, class: c.class || false }, v === undefined || v === null ? '' : v);
  }));
}

// pager shows Previous / Next for cursor pages.
export function pager({ onPrev, onNext, label }) {
  return h('div', { class: 'pager' },
    h('button', { type: 'button', onclick: onPrev, disabled: !onPrev }, 'Previous page'),
    h('button', { type: 'button', onclick: onNext, disabled: !onNext }, 'Next page'),
    label ? h('span', { class: 'note' }, label) : null);
}

// field is a labelled control.
let fieldSeq = 0;
export function field(label, control) {
  if (!control.id) control.id = 'f' + (++fieldSeq);
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
}

// dialog shows a modal and resolves with the value its form gives, or
// null when cancelled (Escape, Cancel). <dialog> keeps focus inside.
function modal(build) {
  return new Promise(resolve => {
    const d = h('dialog', {});
    let value = null;
    const done = v => { value = v; d.close(); };
    d.append(build(done));
    d.addEventListener('close', () => { d.remove(); resolve(value); });
    document.body.append(d);
    d.showModal();
  });
}

// confirmAction asks a yes/no question.
export function confirmAction(title, text, okLabel) {
  return modal(done => {
    const ok = h('button', { type: 'button', class: 'danger', onclick: () => done(true) }, okLabel);
    const form = h('div', { role: 'document' },
      h('h2', {}, title), h('p', {}, text),
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => done(null) }, 'Cancel'), ok));
    queueMicrotask(() => ok.focus());
    return form;
  });
}

// ask asks for one value in a labelled field.
export function ask(title, label, value, okLabel, hint) {
  return modal(done => {
    const input = h('input', { type: 'text', value: value || '', required: true, autocomplete: 'off', inputmode: 'tel' });
    const form = h('form', { method: 'dialog', onsubmit: e => { e.preventDefault(); if (input.value.trim()) done(input.value.trim()); } },
      h('h2', {}, title), hint ? h('p', { class: 'note' }, hint) : null, field(label, input),
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => done(null) }, 'Cancel'),
        h('button', { type: 'submit', class: 'primary' }, okLabel)));
    queueMicrotask(() => input.focus());
    return form;
  });
}

// askForm asks for several values: controls are [{name, label, control}]
// (inputs and selects, built by the caller with their own constraints).
// It resolves with {name: trimmed value} when the form is valid, or null.
export function askForm(title, controls, okLabel, hint) {
  return modal(done => {
    const form = h('form', {
      method: 'dialog',
      onsubmit: e => {
        e.preventDefault();
        if (!form.reportValidity()) return;
        done(Object.fromEntries(controls.map(c => [c.name, String(c.control.value).trim()])));
      },
    },
    h('h2', {}, title), hint ? h('p', { class: 'note' }, hint) : null,
    controls.map(c => field(c.label, c.control)),
    h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => done(null) }, 'Cancel'),
      h('button', { type: 'submit', class: 'primary' }, okLabel)));
    queueMicrotask(() => controls[0].control.focus());
    return form;
  });
}

// toLocalInput and fromLocalInput convert between RFC 3339 and the value
// of <input type=datetime-local>, which is in the browser's zone.
export function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString();
}

export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const two = n => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}
