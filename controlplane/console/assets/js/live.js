// Live calls: the enterprise's calls in progress. One load of the history
// (GET /v1/calls?status=queued,ringing,in-progress) gives the rows; from
// then on they appear, change and go from the /v1/events WebSocket alone,
// opened with a browser ticket and resumed with after=<last seq> whenever
// it drops, so no event is lost across a control-plane restart and no
// polling is needed (stream.js).
import { api, query } from './api.js';
import { h, add, field, errorBox, badge, fmtDuration, confirmAction, ask, askForm } from './ui.js';
import { eventStream } from './stream.js';

// Statuses a call ends in: its row goes.
const TERMINAL = new Set(['completed', 'busy', 'no-answer', 'failed', 'canceled']);
// At most this many live calls are loaded at first (one page of the API).
const SNAPSHOT_LIMIT = 500;
// Where the supervisor's own extension is remembered (this browser only).
const EXT_KEY = 'switchboard.supervisorExtension';

// What a row says of a transfer (row.c.transfer.state).
const TRANSFER_STATES = {
  transferring: { text: 'transferring to', cls: 'ringing' },
  consulting: { text: 'consulting', cls: 'ringing' },
  transferred: { text: 'transferred to', cls: 'ok' },
};

const MONITOR_MODES = [
  { mode: 'spy', label: 'Spy' },
  { mode: 'whisper', label: 'Whisper' },
  { mode: 'barge', label: 'Barge' },
];

// transferState is a row's transfer after a call.transfer_* event.
function transferState(type, x) {
  switch (type) {
    case 'call.transfer_started': return { ...x, state: x.mode === 'attended' ? 'consulting' : 'transferring' };
    case 'call.transferred': return { ...x, state: 'transferred' };
    default: return null; // call.transfer_canceled
  }
}

function transferBadge(t) {
  if (!t) return '';
  const s = TRANSFER_STATES[t.state];
  return s ? [' ', h('span', { class: 'badge ' + s.cls, title: t.transferer ? `by ${t.transferer}, ${t.mode}` : t.mode }, `${s.text} ${t.to || '?'}`)] : '';
}

// handsOver is who hands a call over by default: the extension that
// answered an inbound call, the caller of any other (the from of a call
// placed through the API, as the API defaults it).
function handsOver(c) {
  return c.direction === 'inbound' ? (c.answered_by || '') : (c.from || '');
}

function callPath(c, suffix) {
  return '/v1/calls/' + encodeURIComponent(c.call_id) + suffix;
}

export function mount(main, ctx) {
  const can = a => ctx.can(a);
  const why = a => ctx.why(a);
  const rows = new Map(); // "pbx/call_id" → {c, tr, cells}
  let stopped = false;
  let missed = 0;          // events skipped over: must stay 0
  let snapshot = 'none';   // none | loading | done
  let buffered = [];       // events that arrived while the snapshot loaded
  let loads = 0;           // the newest snapshot load wins

  const stream = eventStream({
    onLive: () => { if (snapshot === 'none') loadSnapshot(); },
    onEvent: (ev, prev) => onEvent(ev, prev),
    onTruncated: () => {
      notice('Some events are older than the server keeps; the list was reloaded.');
      reload();
    },
  });
  const indicator = stream.indicator;
  indicator.dataset.missed = '0';

  const notices = h('div', { id: 'live-notices', 'aria-live': 'polite' });
  const status = h('div', { id: 'live-status', role: 'status', 'aria-live': 'polite' });
  const notice = node => {
    notices.replaceChildren(typeof node === 'string' ? h('p', { class: 'note' }, node) : node);
  };
  const flash = text => status.replaceChildren(h('p', { class: 'okmsg' }, text));

  // --- the table ---------------------------------------------------------
  const headers = ['From', 'To', 'Direction', 'Status', 'Answered by', 'PBX', 'Duration', 'Actions'];
  const tbody = h('tbody', { id: 'live-rows' });
  const empty = h('p', { class: 'empty', id: 'live-empty' }, 'No calls right now.');
  const tableWrap = h('div', { class: 'tablewrap' },
    h('table', { class: 'cards', 'aria-describedby': 'stream' },
      h('thead', {}, h('tr', {}, headers.map(l => h('th', { scope: 'col' }, l)))), tbody), empty);
  const renderEmpty = () => { empty.hidden = rows.size > 0 || snapshot !== 'done'; };
  empty.hidden = true;

  const key = (pbx, id) => pbx + '/' + id;

  function actionButton(label, action, onclick, extra) {
    if (!can(action)) {
      return h('button', { type: 'button', class: 'small', disabled: true, title: why(action), dataset: { action: extra.name } }, label);
    }
    return h('button', { type: 'button', class: 'small ' + (extra.cls || ''), onclick, dataset: { action: extra.name },
      'aria-label': `${label}: ${extra.what}` }, label);
  }

  function buildRow(row) {
    const td = label => h('td', { 'data-label': label });
    const cells = {};
    for (const [name, label] of [['from', 'From'], ['to', 'To'], ['direction', 'Direction'], ['status', 'Status'],
      ['answered_by', 'Answered by'], ['pbx', 'PBX'], ['duration', 'Duration']]) {
      cells[name] = td(label);
    }
    cells.duration.classList.add('num');
    const what = () => `${row.c.from || '?'} to ${row.c.to || '?'}`;
    // An attended transfer in progress offers Complete and Cancel instead
    // of Transfer (fill shows one or the other).
    row.transferButtons = {
      start: actionButton('Transfer', 'calls:control', () => transfer(row), { name: 'transfer', what: what() }),
      complete: actionButton('Complete transfer', 'calls:control', () => finishTransfer(row, 'complete'), { name: 'transfer-complete', cls: 'primary', what: what() }),
      cancel: actionButton('Cancel transfer', 'calls:control', () => finishTransfer(row, 'cancel'), { name: 'transfer-cancel', what: what() }),
    };
    const actions = h('td', { class: 'actions', 'data-label': 'Actions' },
      actionButton('Hang up', 'hangup', () => hangup(row), { name: 'hangup', cls: 'danger', what: what() }),
      MONITOR_MODES.map(m => actionButton(m.label, 'monitor', () => monitor(row, m), { name: m.mode, what: what() })),
      row.transferButtons.start, row.transferButtons.complete, row.transferButtons.cancel);
    row.cells = cells;
    row.tr = h('tr', { dataset: { callId: row.c.call_id, pbx: row.c.pbx } },
      cells.from, cells.to, cells.direction, cells.status, cells.answered_by, cells.pbx, cells.duration, actions);
  }

  function fill(row) {
    const c = row.c;
    row.cells.from.textContent = c.from || '';
    row.cells.to.textContent = c.to || '';
    row.cells.direction.textContent = c.direction || '';
    row.cells.status.replaceChildren(h('span', {}, badge(c.status),
      c.monitored ? [' ', h('span', { class: 'badge', title: 'A supervisor is listening' }, 'monitored')] : '',
      transferBadge(c.transfer)));
    const consulting = !!c.transfer && c.transfer.state === 'consulting';
    row.transferButtons.start.hidden = consulting;
    row.transferButtons.complete.hidden = !consulting;
    row.transferButtons.cancel.hidden = !consulting;
    row.tr.dataset.transfer = c.transfer ? c.transfer.state : '';
    row.cells.answered_by.textContent = c.answered_by || '';
    row.cells.pbx.textContent = ctx.pbxName(c.pbx);
    row.tr.dataset.status = c.status || '';
    tickRow(row);
  }

  function tickRow(row) {
    const start = Date.parse(row.c.started_at);
    row.cells.duration.textContent = isNaN(start) ? '' : fmtDuration((Date.now() - start) / 1000);
  }

  function upsert(c) {
    const k = key(c.pbx, c.call_id);
    let row = rows.get(k);
    if (!row) {
      row = { c };
      buildRow(row);
      rows.set(k, row);
      tbody.prepend(row.tr);
    } else {
      row.c = c;
    }
    fill(row);
  }

  function remove(k) {
    const row = rows.get(k);
    if (!row) return;
    rows.delete(k);
    row.tr.remove();
  }

  function clearRows() {
    rows.clear();
    tbody.replaceChildren();
  }

  // apply folds one event into the rows.
  function apply(ev) {
    if (ev.type === 'gap') {
      notice(`PBX ${ctx.pbxName(ev.pbx)} lost ${ev.lost || 1} events; the list was reloaded.`);
      reload();
      return;
    }
    if (!ev.call_id) return;
    const k = key(ev.pbx, ev.call_id);
    if (ev.type === 'call.ended' || TERMINAL.has(ev.status)) {
      remove(k);
      renderEmpty();
      return;
    }
    const old = rows.get(k);
    const c = old ? { ...old.c } : { call_id: ev.call_id, pbx: ev.pbx, started_at: ev.time };
    for (const f of ['from', 'to', 'direction', 'status', 'answered_by', 'channel']) {
      if (ev[f]) c[f] = ev[f];
    }
    if (ev.type === 'call.started' && ev.time) c.started_at = ev.time;
    if (ev.answered_at) c.answered_at = ev.answered_at;
    if (ev.type === 'call.monitor_started') c.monitored = true;
    if (ev.type === 'call.monitor_stopped') c.monitored = false;
    if (ev.transfer) c.transfer = transferState(ev.type, ev.transfer);
    upsert(c);
    renderEmpty();
  }

  // --- the first load ------------------------------------------------------
  async function loadSnapshot() {
    snapshot = 'loading';
    const mine = ++loads;
    let page;
    try {
      page = await api('GET', '/v1/calls' + query({ status: 'queued,ringing,in-progress', limit: SNAPSHOT_LIMIT }));
    } catch (e) {
      if (stopped || e.status === 401 || mine !== loads) return;
      snapshot = 'none';
      notice(errorBox(e));
      setTimeout(() => { if (!stopped && snapshot === 'none') loadSnapshot(); }, 5000);
      return;
    }
    if (stopped || mine !== loads) return;
    clearRows();
    for (const c of page.calls.slice().reverse()) upsert(c);
    snapshot = 'done';
    if (page.next_cursor) notice(`Showing the newest ${SNAPSHOT_LIMIT} live calls.`);
    const evs = buffered;
    buffered = [];
    for (const ev of evs) apply(ev);
    renderEmpty();
  }

  function reload() {
    buffered = [];
    snapshot = 'none';
    loadSnapshot();
  }

  // --- the stream ------------------------------------------------------------
  // Every type, so a skipped sequence is a missed event.
  function onEvent(ev, prev) {
    if (prev !== null && ev.seq !== prev + 1) {
      missed += ev.seq - prev - 1;
      indicator.dataset.missed = String(missed);
      notice(`${ev.seq - prev - 1} events were missed; the list was reloaded.`);
      reload();
    }
    if (snapshot !== 'done') buffered.push(ev);
    else apply(ev);
  }

  // --- actions -----------------------------------------------------------------
  async function hangup(row) {
    const c = row.c;
    const ok = await confirmAction('Hang up this call?',
      `The call from ${c.from || '?'} to ${c.to || '?'} on ${ctx.pbxName(c.pbx)} ends for everyone on it.`, 'Hang up');
    if (!ok) return;
    try {
      await api('DELETE', '/v1/calls/' + encodeURIComponent(c.call_id) + query({ pbx: c.pbx, reason: 'hung up from the web console' }));
      flash(`Hung up the call from ${c.from} to ${c.to}.`);
    } catch (e) {
      status.replaceChildren(errorBox(e));
    }
  }

  // The extension a monitor call rings first: the supervisor's own phone.
  const extLine = h('p', { class: 'note', id: 'my-extension' });
  function renderExt() {
    const ext = localStorage.getItem(EXT_KEY);
    extLine.hidden = !can('monitor');
    extLine.replaceChildren(ext ? `Spy, Whisper and Barge ring your extension ${ext} first. ` : 'Spy, Whisper and Barge will ask for your extension once. ',
      ext ? h('button', { type: 'button', class: 'linkish', onclick: changeExt }, 'Change extension') : '');
  }
  async function changeExt() {
    const ext = await ask('Your extension', 'Your extension', localStorage.getItem(EXT_KEY), 'Save');
    if (ext) localStorage.setItem(EXT_KEY, ext);
    renderExt();
  }

  async function monitor(row, m) {
    let ext = localStorage.getItem(EXT_KEY);
    if (!ext) {
      ext = await ask('Your extension', 'Your extension', '', m.label,
        'Spy, Whisper and Barge ring your own phone first. The console remembers the extension in this browser.');
      if (!ext) return;
      localStorage.setItem(EXT_KEY, ext);
      renderExt();
    }
    const c = row.c;
    // The agent's side of the call: who answered an inbound call, the
    // caller of any other.
    const target = c.direction === 'inbound' ? (c.answered_by || c.to) : c.from;
    try {
      await api('POST', '/v1/monitor', { body: { mode: m.mode, target, from: ext, pbx: c.pbx } });
      flash(`${m.label}: your extension ${ext} rings, then joins ${target}'s call.`);
    } catch (e) {
      status.replaceChildren(errorBox(e));
    }
  }

  // --- transfer ------------------------------------------------------------------
  async function transfer(row) {
    const c = row.c;
    const to = h('input', { type: 'text', name: 'to', autocomplete: 'off', inputmode: 'tel', required: true });
    const mode = h('select', { name: 'mode' },
      h('option', { value: 'blind' }, 'Blind: the call goes to To at once'),
      h('option', { value: 'attended' }, 'Attended: consult To first'));
    const transferer = h('input', { type: 'text', name: 'transferer', autocomplete: 'off', inputmode: 'tel', value: handsOver(c) });
    const v = await askForm('Transfer this call', [
      { name: 'to', label: 'To', control: to },
      { name: 'mode', label: 'Mode', control: mode },
      { name: 'transferer', label: 'Transferer', control: transferer },
    ], 'Transfer', `The call from ${c.from || '?'} to ${c.to || '?'} on ${ctx.pbxName(c.pbx)}. The transferer is the party in it that hands it over; its peer goes to To.`);
    if (!v) return;
    try {
      const r = await api('POST', callPath(c, '/transfer'), { body: { to: v.to, mode: v.mode, transferer: v.transferer || undefined, pbx: c.pbx } });
      const state = r.status === 'consulting' ? 'consulting' : 'transferred';
      setTransfer(row, { mode: r.mode, to: r.to, transferer: r.transferer, state });
      flash(state === 'consulting'
        ? `${r.transferer} is consulting ${r.to}; the other party is on hold. Complete or cancel the transfer on the row.`
        : `Transferred: ${r.transferer} handed the call to ${r.to}.`);
    } catch (e) {
      status.replaceChildren(errorBox(e));
    }
  }

  async function finishTransfer(row, how) {
    const c = row.c;
    const x = c.transfer || {};
    try {
      const r = await api('POST', callPath(c, '/transfer/' + how), { body: { transferer: x.transferer || undefined, pbx: c.pbx } });
      setTransfer(row, how === 'complete' ? { ...x, to: r.to || x.to, state: 'transferred' } : null);
      flash(how === 'complete' ? `Transferred to ${r.to || x.to}.` : `Transfer cancelled: ${r.transferer} is back with the call.`);
    } catch (e) {
      status.replaceChildren(errorBox(e));
    }
  }

  // setTransfer records what the API answered; the events say the same
  // and may come first.
  function setTransfer(row, t) {
    const cur = rows.get(key(row.c.pbx, row.c.call_id));
    if (cur !== row) return; // the call ended meanwhile
    row.c = { ...row.c, transfer: t };
    fill(row);
  }

  // --- place a call ----------------------------------------------------------
  function placeCallForm() {
    const from = h('input', { type: 'text', name: 'from', autocomplete: 'off', inputmode: 'tel', required: true, size: 12 });
    const to = h('input', { type: 'text', name: 'to', autocomplete: 'off', inputmode: 'tel', required: true, size: 16 });
    const pbxs = [...ctx.pbxs.values()];
    const pbx = pbxs.length > 1
      ? h('select', { name: 'pbx' }, pbxs.map(p => h('option', { value: p.id }, p.name)))
      : null;
    const allowed = can('originate');
    const call = h('button', { type: 'submit', class: 'primary', disabled: !allowed, title: allowed ? false : why('originate') }, 'Call');
    const form = h('form', {
      class: 'inline', 'aria-labelledby': 'place-call',
      onsubmit: async e => {
        e.preventDefault();
        call.disabled = true;
        try {
          const r = await api('POST', '/v1/calls', { body: { from: from.value.trim(), to: to.value.trim(), pbx: pbx ? pbx.value : undefined } });
          flash(`Call placed: ${r.from} → ${r.to} (call ${r.call_id}).`);
          to.value = '';
        } catch (err) {
          status.replaceChildren(errorBox(err));
        } finally {
          call.disabled = false;
        }
      },
    }, field('From', from), field('To', to), pbx ? field('PBX', pbx) : null, call);
    return h('section', { class: 'panel' }, h('h2', { id: 'place-call' }, 'Place call'),
      allowed ? null : h('p', { class: 'denied' }, 'Not offered to this credential: ' + why('originate')), form);
  }

  const denied = [];
  if (!can('hangup')) denied.push(`Hang up (${why('hangup')})`);
  if (!can('monitor')) denied.push(`Spy, Whisper and Barge (${why('monitor')})`);
  if (!can('calls:control')) denied.push(`Transfer (${why('calls:control')})`);

  add(main,
    h('h1', {}, 'Live calls', indicator),
    notices,
    status,
    denied.length ? h('p', { class: 'denied', id: 'live-denied' }, 'Not offered to this credential: ' + denied.join('; ') + '.') : null,
    extLine,
    tableWrap,
    placeCallForm());
  renderExt();

  const ticker = setInterval(() => { for (const row of rows.values()) tickRow(row); }, 1000);

  return () => {
    stopped = true;
    clearInterval(ticker);
    stream.stop();
  };
}
