// Queues: every queue of every PBX of the enterprise (GET /v1/queues),
// and one queue's members and waiting callers (GET /v1/queues/{queue}),
// with a pause toggle that asks for a reason, and adding and removing
// members for a credential with queues:manage.
//
// The pages read the queues once, then again only when an event on the
// /v1/events WebSocket says something changed (stream.js): a queue.*
// event or a gap at once (debounced), a call answered or ended by
// someone at most every CALL_REFRESH (a member's state and calls taken
// change with its calls, and no queue event says so). No polling. Waiting
// times tick in the browser between reads.
import { api, query } from './api.js';
import { h, field, errorBox, badge, table, timeEl, showIn, fmtDuration, confirmAction, askForm } from './ui.js';
import { eventStream } from './stream.js';

// The events a queue page follows (the WebSocket's types= filter).
const QUEUE_EVENTS = ['queue.caller_joined', 'queue.caller_left', 'queue.member_added', 'queue.member_removed',
  'queue.member_paused', 'queue.member_unpaused', 'gap'];
const CALL_EVENTS = ['call.answered', 'call.ended'];
// Events this close together cause one read.
const REFRESH_DEBOUNCE = 300;
// At most one read this often for calls answered or ended.
const CALL_REFRESH = 2000;
// Queue member penalties the API accepts.
const MAX_PENALTY = 1000;

// refresher runs load at most once at a time: soon(ms) asks for a run
// within ms, an ask while one runs makes one more run after it.
function refresher(load) {
  let timer = null;
  let due = 0;
  let running = false;
  let again = false;
  let stopped = false;
  async function run() {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    try { await load(); } finally {
      running = false;
      if (again) { again = false; soon(REFRESH_DEBOUNCE); }
    }
  }
  function soon(ms) {
    if (stopped) return;
    const at = Date.now() + ms;
    if (timer !== null) {
      if (due <= at) return;
      clearTimeout(timer);
    }
    due = at;
    timer = setTimeout(run, ms);
  }
  return { soon, now: () => soon(0), stop: () => { stopped = true; if (timer !== null) clearTimeout(timer); } };
}

// follow opens the event stream for a queue page, or says why it cannot.
// relevant(ev) is the delay before a read for ev, or 0 to ignore it.
function follow(ctx, filter, relevant, refresh) {
  if (!ctx.can('events:read')) {
    return {
      indicator: h('span', { class: 'stream', id: 'stream', 'data-state': 'off', title: ctx.why('events:read') }, 'Not live'),
      stop() {},
      note: h('p', { class: 'denied' }, `Not updated live: ${ctx.why('events:read')}. `,
        h('button', { type: 'button', class: 'small', onclick: () => refresh.now() }, 'Refresh')),
    };
  }
  return eventStream({
    filter,
    onLive: resumed => { if (resumed) refresh.now(); },
    onTruncated: () => refresh.now(),
    onEvent: ev => {
      const ms = relevant(ev);
      if (ms) refresh.soon(ms);
    },
  });
}

// waitEl is a waiting time that ticks (see tickWaits) from seconds s,
// as Asterisk counted them when the page read them.
function waitEl(s) {
  return h('span', { class: 'wait', dataset: { waitS: String(s), since: String(Date.now()) } }, fmtDuration(s));
}

function tickWaits(root) {
  for (const el of root.querySelectorAll('[data-wait-s]')) {
    el.textContent = fmtDuration(Number(el.dataset.waitS) + (Date.now() - Number(el.dataset.since)) / 1000);
  }
}

function queueHref(name, pbx) {
  return '#/queues/' + encodeURIComponent(name) + query({ pbx });
}

const longestWait = q => (q.callers > 0 ? waitEl(q.longest_wait_s) : '—');
const serviceLevel = q => (q.service_level_s ? `${q.service_level_perf.toFixed(1)} % within ${q.service_level_s} s` : '');

// --- the list -----------------------------------------------------------------

export function mountList(main, ctx) {
  const region = h('div', { id: 'queues', 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  let loads = 0;

  const columns = pbx => [
    { label: 'Queue', cell: q => h('a', { href: queueHref(q.name, pbx), 'aria-label': `Queue ${q.name}: members and callers` }, q.name) },
    { label: 'Strategy', cell: q => q.strategy },
    { label: 'Callers waiting', cell: q => String(q.callers), class: 'num' },
    { label: 'Longest wait', cell: longestWait, class: 'num' },
    { label: 'Available', cell: q => `${q.available} of ${q.logged_in}`, class: 'num' },
    { label: 'Completed', cell: q => String(q.completed), class: 'num' },
    { label: 'Abandoned', cell: q => String(q.abandoned), class: 'num' },
    { label: 'Avg hold', cell: q => fmtDuration(q.hold_time_s), class: 'num' },
    { label: 'Avg talk', cell: q => fmtDuration(q.talk_time_s), class: 'num' },
    { label: 'Service level', cell: q => serviceLevel(q) || '—' },
  ];

  async function load() {
    const mine = ++loads;
    let r;
    try {
      r = await api('GET', '/v1/queues');
    } catch (e) {
      if (mine === loads) showIn(region, errorBox(e));
      return;
    }
    if (mine !== loads) return;
    if (!r.pbxs.length) {
      showIn(region, h('p', { class: 'empty' }, 'This enterprise has no PBX yet.'));
      return;
    }
    showIn(region, r.pbxs.map(p => h('section', { dataset: { pbx: p.pbx }, 'aria-labelledby': 'queues-' + p.pbx },
      h('h2', { id: 'queues-' + p.pbx }, p.name || p.pbx),
      p.error
        ? h('p', { class: 'error', role: 'alert' }, p.error.message)
        : table(columns(p.pbx), p.queues, { empty: 'This PBX has no queues.', rowAttrs: q => ({ dataset: { queue: q.name } }) }))));
  }

  const refresh = refresher(load);
  const stream = follow(ctx, { types: [...QUEUE_EVENTS, ...CALL_EVENTS].join(',') },
    ev => (ev.type.startsWith('call.') ? (ev.answered_by ? CALL_REFRESH : 0) : REFRESH_DEBOUNCE), refresh);
  main.append(h('h1', {}, 'Queues', stream.indicator), stream.note || '', region);
  load();
  const ticker = setInterval(() => tickWaits(region), 1000);
  return () => {
    clearInterval(ticker);
    refresh.stop();
    stream.stop();
  };
}

// keepFocus redraws a region without taking the keyboard's place away: a
// member's button that had the focus has it again afterwards (the same
// button of the same member), as a read the events cause may come at any
// time.
function keepFocus(region, draw) {
  const a = document.activeElement;
  const tr = a && region.contains(a) && a.dataset.action ? a.closest('tr') : null;
  const was = tr ? { member: tr.dataset.member, action: a.dataset.action } : null;
  draw();
  if (!was) return;
  const again = [...region.querySelectorAll('tr[data-member]')].find(r => r.dataset.member === was.member);
  const b = again && again.querySelector(`button[data-action="${was.action}"]`);
  if (b && !b.disabled) b.focus();
}

// --- one queue ----------------------------------------------------------------

function memberState(m) {
  const cls = { not_in_use: 'ok', in_use: 'ringing', ringing: 'ringing', ring_in_use: 'ringing', on_hold: 'ringing', busy: 'ringing' }[m.status] || 'bad';
  return h('span', {}, badge((m.status || 'unknown').replaceAll('_', ' '), cls), m.in_call ? [' ', badge('in call', 'ringing')] : '');
}

function memberPaused(m) {
  if (!m.paused) return h('span', { class: 'note' }, 'no');
  return h('span', { class: 'paused' }, badge('paused', 'ringing'), m.paused_reason ? [' ', h('span', { class: 'reason' }, m.paused_reason)] : '');
}

export function mountQueue(main, ctx, rest, params) {
  const name = rest[0] || '';
  let pbx = params.get('pbx') || '';
  const manage = ctx.can('queues:manage');
  const head = h('div', {});
  const region = h('div', { id: 'queue', 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  const status = h('div', { id: 'queue-status', role: 'status', 'aria-live': 'polite' });
  const flash = text => showIn(status, h('p', { class: 'okmsg' }, text));
  const fail = e => showIn(status, errorBox(e));
  let extensions = new Set(); // of the members shown: their calls matter
  let loads = 0;

  const path = suffix => '/v1/queues/' + encodeURIComponent(name) + suffix;

  async function load() {
    const mine = ++loads;
    let q;
    try {
      q = await api('GET', path(query({ pbx })));
    } catch (e) {
      if (mine === loads) showIn(region, errorBox(e));
      return;
    }
    if (mine !== loads) return;
    pbx = q.pbx;
    extensions = new Set(q.members.map(m => m.extension).filter(Boolean));
    render(q);
  }

  // act runs one member change, says how it went and reads the queue
  // again. It reports whether the change was made.
  async function act(request, done) {
    let ok = false;
    try {
      await request();
      flash(done);
      ok = true;
    } catch (e) {
      fail(e);
    }
    refresh.now();
    return ok;
  }

  async function togglePause(m) {
    const who = m.name || m.extension;
    if (m.paused) {
      await act(() => api('POST', path('/members/' + encodeURIComponent(m.extension) + '/pause'), { body: { paused: false, pbx } }),
        `${who} is taking calls from ${name} again.`);
      return;
    }
    const reason = h('input', { type: 'text', name: 'reason', autocomplete: 'off', maxlength: 80, placeholder: 'lunch, training…' });
    const v = await askForm(`Pause ${who}?`, [{ name: 'reason', label: 'Reason (optional)', control: reason }], 'Pause',
      `${who} gets no calls from queue ${name} until unpaused.`);
    if (!v) return;
    await act(() => api('POST', path('/members/' + encodeURIComponent(m.extension) + '/pause'),
      { body: { paused: true, reason: v.reason || undefined, pbx } }),
    `${who} is paused in ${name}${v.reason ? ` (${v.reason})` : ''}.`);
  }

  async function setPenalty(m) {
    const input = h('input', { type: 'number', name: 'penalty', min: 0, max: MAX_PENALTY, step: 1, required: true, value: String(m.penalty) });
    const v = await askForm(`Penalty of ${m.name || m.extension}`, [{ name: 'penalty', label: 'Penalty', control: input }], 'Save',
      'Members with a lower penalty are rung first.');
    if (!v) return;
    await act(() => api('PUT', path('/members/' + encodeURIComponent(m.extension) + '/penalty'), { body: { penalty: Number(v.penalty), pbx } }),
      `${m.name || m.extension}'s penalty in ${name} is ${v.penalty}.`);
  }

  async function remove(m) {
    const who = m.name || m.extension;
    if (!await confirmAction(`Remove ${who}?`, `${who} leaves queue ${name} and gets no more of its calls.`, 'Remove')) return;
    await act(() => api('DELETE', path('/members/' + encodeURIComponent(m.extension) + query({ pbx }))), `Removed ${who} from ${name}.`);
  }

  // memberButton is offered only when the credential may manage members
  // and the API can name the member; otherwise it says why not.
  function memberButton(m, label, action, onclick, whyNot) {
    const who = m.name || m.extension || m.interface;
    const reason = !manage ? ctx.why('queues:manage')
      : !m.extension ? `${m.interface} is not an interface this PBX's agent makes from an extension (--queue-member-interface), so the API cannot name it`
        : whyNot || '';
    return h('button', {
      type: 'button', class: 'small' + (action === 'remove' ? ' danger' : ''), dataset: { action },
      disabled: !!reason, title: reason || false, 'aria-label': `${label}: ${who}`, onclick: reason ? null : () => onclick(m),
    }, label);
  }

  const memberColumns = [
    { label: 'Name', cell: m => h('span', {}, m.name || '', ' ', h('span', { class: 'note' }, m.membership)) },
    { label: 'Extension', cell: m => h('span', {}, m.extension || '—', h('br'), h('span', { class: 'note mono' }, m.interface)) },
    { label: 'State', cell: memberState },
    { label: 'Paused', cell: memberPaused },
    { label: 'Penalty', cell: m => String(m.penalty), class: 'num' },
    { label: 'Calls taken', cell: m => String(m.calls_taken), class: 'num' },
    { label: 'Last call', cell: m => timeEl(m.last_call) || '—' },
    {
      label: 'Actions', class: 'actions', cell: m => [
        memberButton(m, m.paused ? 'Unpause' : 'Pause', 'pause', togglePause),
        memberButton(m, 'Penalty', 'penalty', setPenalty),
        memberButton(m, 'Remove', 'remove', remove,
          m.membership === 'dynamic' ? '' : `a ${m.membership} member (queues.conf) cannot be removed through AMI; remove it on the PBX`),
      ],
    },
  ];

  const callerColumns = [
    { label: 'Position', cell: c => String(c.position), class: 'num' },
    { label: 'Caller', cell: c => [c.caller_id_num || 'unknown', c.caller_id_name ? h('span', { class: 'note' }, ' ', c.caller_id_name) : ''] },
    { label: 'Waiting', cell: c => waitEl(c.wait_s), class: 'num' },
    { label: 'Call', cell: c => (c.call_id ? h('a', { href: '#/calls/' + encodeURIComponent(c.call_id) + query({ pbx }) }, c.call_id) : h('span', { class: 'mono note' }, c.channel)) },
  ];

  function render(q) {
    keepFocus(region, () => draw(q));
  }

  function draw(q) {
    showIn(head, h('h1', {}, `Queue ${q.name}`, stream.indicator),
      h('p', { class: 'note' }, `On ${ctx.pbxName(q.pbx)}. Strategy ${q.strategy}.`));
    showIn(region,
      h('dl', { class: 'facts panel', id: 'queue-facts' },
        h('dt', {}, 'Callers waiting'), h('dd', {}, String(q.callers)),
        h('dt', {}, 'Longest wait'), h('dd', {}, longestWait(q)),
        h('dt', {}, 'Available members'), h('dd', {}, `${q.available} of ${q.logged_in}`),
        h('dt', {}, 'Completed, abandoned'), h('dd', {}, `${q.completed}, ${q.abandoned}`),
        h('dt', {}, 'Average hold, talk'), h('dd', {}, `${fmtDuration(q.hold_time_s)}, ${fmtDuration(q.talk_time_s)}`),
        serviceLevel(q) ? [h('dt', {}, 'Service level'), h('dd', {}, serviceLevel(q))] : null),
      h('h2', { id: 'members-title' }, 'Members'),
      table(memberColumns, q.members, { empty: 'No members.', rowAttrs: m => ({ dataset: { member: m.interface, extension: m.extension || '', paused: String(m.paused) } }) }),
      h('h2', { id: 'waiting-title' }, 'Callers waiting'),
      table(callerColumns, q.waiting, { empty: 'Nobody is waiting.', rowAttrs: c => ({ dataset: { caller: c.uniqueid } }) }));
  }

  function addForm() {
    const ext = h('input', { type: 'text', name: 'extension', autocomplete: 'off', inputmode: 'tel', required: true, size: 8 });
    const who = h('input', { type: 'text', name: 'name', autocomplete: 'off', size: 16 });
    const penalty = h('input', { type: 'number', name: 'penalty', min: 0, max: MAX_PENALTY, step: 1, value: '0' });
    const submit = h('button', { type: 'submit', class: 'primary', disabled: !manage, title: manage ? false : ctx.why('queues:manage') }, 'Add member');
    const form = h('form', {
      class: 'inline', 'aria-labelledby': 'add-member',
      onsubmit: async e => {
        e.preventDefault();
        submit.disabled = true;
        const body = { extension: ext.value.trim(), name: who.value.trim() || undefined, penalty: Number(penalty.value || 0), pbx };
        if (await act(() => api('POST', path('/members'), { body }), `Added ${body.extension} to ${name}.`)) form.reset();
        submit.disabled = false;
      },
    }, field('Extension', ext), field('Name', who), field('Penalty', penalty), submit);
    return h('section', { class: 'panel' }, h('h2', { id: 'add-member' }, 'Add member'),
      manage ? h('p', { class: 'note' }, 'The PBX makes the member\'s interface from the extension.') : h('p', { class: 'denied', id: 'queue-denied' },
        'Not offered to this credential: adding, pausing and removing members (' + ctx.why('queues:manage') + ').'),
      form);
  }

  const refresh = refresher(load);
  const stream = follow(ctx, { types: [...QUEUE_EVENTS, ...CALL_EVENTS].join(','), pbx },
    ev => {
      if (ev.pbx !== pbx) return 0;
      if (ev.type.startsWith('call.')) return extensions.has(ev.answered_by) ? REFRESH_DEBOUNCE : 0;
      return ev.type === 'gap' || ev.queue === name ? REFRESH_DEBOUNCE : 0;
    }, refresh);
  showIn(head, h('h1', {}, `Queue ${name}`, stream.indicator));
  main.append(h('p', {}, h('a', { href: '#/queues' }, '← Queues')), head, stream.note || '', status, region, addForm());
  load();
  const ticker = setInterval(() => tickWaits(region), 1000);
  return () => {
    clearInterval(ticker);
    refresh.stop();
    stream.stop();
  };
}
