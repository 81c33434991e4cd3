// History: the enterprise's calls, newest first (GET /v1/calls with its
// filters and cursor pages), and one call with its event timeline
// (GET /v1/calls/{id}).
import { api, query } from './api.js';
import { h, field, errorBox, badge, table, pager, timeEl, fmtDuration, fmtClock, showIn, fromLocalInput, toLocalInput } from './ui.js';

// Calls per page.
const PAGE = 25;
const STATUSES = ['queued', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer', 'failed', 'canceled'];
const DIRECTIONS = ['inbound', 'outbound', 'internal', 'originate'];
const FILTERS = ['since', 'until', 'extension', 'number', 'status', 'direction'];

function callLink(c) {
  return '#/calls/' + encodeURIComponent(c.call_id) + query({ pbx: c.pbx });
}

function select(name, values) {
  return h('select', { name }, h('option', { value: '' }, 'Any'), values.map(v => h('option', { value: v }, v)));
}

export function mountList(main, ctx, _rest, params) {
  const since = h('input', { type: 'datetime-local', name: 'since', value: toLocalInput(params.get('since')) });
  const until = h('input', { type: 'datetime-local', name: 'until', value: toLocalInput(params.get('until')) });
  const extension = h('input', { type: 'text', name: 'extension', size: 8, inputmode: 'tel', value: params.get('extension') || '' });
  const number = h('input', { type: 'text', name: 'number', size: 14, inputmode: 'tel', value: params.get('number') || '' });
  const status = select('status', STATUSES);
  status.value = params.get('status') || '';
  const direction = select('direction', DIRECTIONS);
  direction.value = params.get('direction') || '';
  const filters = {};
  for (const f of FILTERS) filters[f] = params.get(f) || '';

  const region = h('div', { 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  const cursors = [''];
  let page = 0;

  const columns = [
    { label: 'Started', cell: c => timeEl(c.started_at) },
    { label: 'From', cell: c => c.from },
    { label: 'To', cell: c => c.to },
    { label: 'Direction', cell: c => c.direction || '' },
    { label: 'Status', cell: c => badge(c.status) },
    { label: 'Answered by', cell: c => c.answered_by || '' },
    { label: 'Duration', cell: c => fmtDuration(c.duration_s), class: 'num' },
    { label: 'Cause', cell: c => c.cause_text || '' },
    { label: 'PBX', cell: c => ctx.pbxName(c.pbx) },
    { label: 'Details', cell: c => h('a', { href: callLink(c), 'aria-label': `Details of the call from ${c.from} to ${c.to}` }, 'Timeline') },
  ];

  async function load() {
    try {
      const r = await api('GET', '/v1/calls' + query({ ...filters, limit: PAGE, cursor: cursors[page] }));
      if (r.next_cursor) cursors[page + 1] = r.next_cursor;
      showIn(region,
        table(columns, r.calls, { empty: 'No call matches.', rowAttrs: c => ({ dataset: { callId: c.call_id, pbx: c.pbx } }) }),
        pager({
          onPrev: page > 0 ? () => { page--; load(); } : null,
          onNext: r.next_cursor ? () => { page++; load(); } : null,
          label: `Page ${page + 1}`,
        }));
    } catch (e) {
      showIn(region, errorBox(e));
    }
  }

  const form = h('form', {
    class: 'inline', role: 'search', 'aria-label': 'Filter the history',
    onsubmit: e => {
      e.preventDefault();
      ctx.go('#/history' + query({
        since: fromLocalInput(since.value), until: fromLocalInput(until.value), extension: extension.value.trim(),
        number: number.value.trim(), status: status.value, direction: direction.value,
      }));
    },
  }, field('Since', since), field('Until', until), field('Extension', extension), field('Number', number),
  field('Status', status), field('Direction', direction), h('button', { type: 'submit', class: 'primary' }, 'Search'));
  main.append(h('h1', {}, 'History'), h('section', { class: 'panel' }, form), region);
  load();
}

// describe says what one event of the timeline means.
function describe(ev) {
  const join = parts => parts.filter(Boolean).join(', ');
  switch (ev.type) {
    case 'call.started': return ['Started', join([`${ev.from || '?'} → ${ev.to || '?'}`, ev.direction])];
    case 'call.ringing': return ['Ringing', ev.to ? `${ev.to} rings` : ''];
    case 'call.answered': return ['Answered', ev.answered_by ? `by ${ev.answered_by}` : ''];
    case 'call.bridged': return ['Bridged', ev.answered_channel || ''];
    case 'call.monitor_started': return ['Monitor started', join([ev.spy_channel && `supervisor ${ev.spy_channel}`, ev.target_channel && `on ${ev.target_channel}`])];
    case 'call.monitor_stopped': return ['Monitor stopped', ev.spy_channel || ''];
    case 'call.ended': return ['Ended', join([
      ev.status,
      ev.cause !== undefined ? `cause ${ev.cause}${ev.cause_text ? ' ' + ev.cause_text : ''}` : ev.cause_text,
      ev.duration_s !== undefined ? `duration ${fmtDuration(ev.duration_s)}` : '',
      ev.billsec_s !== undefined ? `billed ${fmtDuration(ev.billsec_s)}` : '',
      ev.hungup_by ? `hung up by ${ev.hungup_by}` : ''])];
    case 'gap': return ['Events lost', ev.dropped ? `${ev.dropped} dropped (${ev.reason})` : `${ev.lost} lost`];
    default: return [ev.type, ''];
  }
}

export function mountCall(main, ctx, rest, params) {
  const id = rest[0];
  const region = h('div', { 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  main.append(h('p', {}, h('a', { href: '#/history' }, '← History')), region);
  api('GET', '/v1/calls/' + encodeURIComponent(id) + query({ pbx: params.get('pbx') })).then(c => {
    const fact = (label, value) => value === '' || value === undefined || value === null ? null : [h('dt', {}, label), h('dd', {}, value)];
    const facts = h('dl', { class: 'facts' },
      fact('Call', h('span', { class: 'mono' }, c.call_id)),
      fact('PBX', ctx.pbxName(c.pbx)),
      fact('Status', badge(c.status)),
      fact('Direction', c.direction),
      fact('Started', timeEl(c.started_at)),
      fact('Answered', c.answered_at ? h('span', {}, timeEl(c.answered_at), c.answered_by ? ` by ${c.answered_by}` : '') : ''),
      fact('Ended', c.ended_at ? timeEl(c.ended_at) : ''),
      fact('Duration', c.duration_s !== undefined ? fmtDuration(c.duration_s) : ''),
      fact('Billed', c.billsec_s !== undefined ? fmtDuration(c.billsec_s) : ''),
      fact('Cause', c.cause !== undefined ? `${c.cause} ${c.cause_text || ''}` : ''),
      fact('Hung up by', c.hungup_by),
      fact('Monitored', c.monitored ? 'yes' : ''));
    const timeline = h('ol', { class: 'timeline', id: 'timeline' }, c.events.map(ev => {
      const [what, detail] = describe(ev);
      return h('li', { dataset: { type: ev.type, seq: ev.seq } },
        h('time', { datetime: ev.time, title: ev.time }, fmtClock(ev.time)), h('span', { class: 'what' }, what), detail ? ` — ${detail}` : '');
    }));
    showIn(region,
      h('h1', {}, `Call ${c.from || '?'} → ${c.to || '?'}`),
      h('section', { class: 'panel' }, facts),
      h('h2', {}, 'Timeline'),
      h('section', { class: 'panel' }, c.events.length ? timeline : h('p', { class: 'note' }, 'No events stored for this call.'),
        c.events_truncated ? h('p', { class: 'note' }, 'Only the first events are shown.') : null));
  }, e => showIn(region, errorBox(e)));
}
