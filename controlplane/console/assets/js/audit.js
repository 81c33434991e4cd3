// Audit: who did what in the enterprise, newest first (GET /v1/audit),
// one page at a time.
import { api, query } from './api.js';
import { h, errorBox, badge, table, pager, timeEl, showIn } from './ui.js';

// Rows per page.
const PAGE = 50;

function target(e) {
  const parts = [];
  if (e.from || e.to) parts.push(`${e.from || '?'} → ${e.to || '?'}`);
  if (e.channel) parts.push(e.channel);
  else if (e.uniqueid) parts.push(e.uniqueid);
  if (e.reason) parts.push(`“${e.reason}”`);
  if (!parts.length && e.details) {
    for (const [k, v] of Object.entries(e.details)) parts.push(`${k} ${v}`);
  }
  return parts.join(' · ');
}

export function mount(main, ctx) {
  const region = h('div', { 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  const cursors = [''];
  let page = 0;

  async function load() {
    try {
      const r = await api('GET', '/v1/audit' + query({ limit: PAGE, cursor: cursors[page] }));
      if (r.next_cursor) cursors[page + 1] = r.next_cursor;
      showIn(region, table([
        { label: 'Time', cell: e => timeEl(e.at) },
        { label: 'Who', cell: e => h('span', {}, e.actor_id || '', h('br'), h('span', { class: 'note' }, e.actor_type)) },
        { label: 'Action', cell: e => e.action },
        { label: 'PBX', cell: e => e.pbx ? ctx.pbxName(e.pbx) : '' },
        { label: 'Target', cell: target },
        { label: 'Result', cell: e => h('span', {}, badge(e.result), e.error_code ? h('span', { class: 'note' }, ' ' + e.error_code) : '') },
        { label: 'Request', cell: e => h('span', { class: 'note mono' }, e.request_id || '') },
      ], r.entries, { empty: 'Nothing audited yet.', rowAttrs: e => ({ dataset: { audit: e.id } }) }),
      pager({
        onPrev: page > 0 ? () => { page--; load(); } : null,
        onNext: r.next_cursor ? () => { page++; load(); } : null,
        label: `Page ${page + 1}, newest first`,
      }));
    } catch (e) {
      showIn(region, errorBox(e));
    }
  }
  main.append(h('h1', {}, 'Audit'), region);
  load();
}
