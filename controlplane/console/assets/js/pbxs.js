// PBXs: an enterprise's own (GET /v1/pbxs), and for a platform_admin the
// whole fleet (GET /v1/fleet), which the server filters and pages: the
// page shows FLEET_PAGE agents at a time, never the whole fleet at once.
import { api, query } from './api.js';
import { h, field, errorBox, badge, table, pager, timeEl, ago, showIn } from './ui.js';

// Agents per fleet page.
const FLEET_PAGE = 50;

function connection(p) {
  if (p.revoked) return badge('revoked', 'bad');
  if (p.connected) {
    return h('span', {}, badge('online', 'ok'), ' ', p.connected_since ? h('span', { class: 'note' }, 'since ', timeEl(p.connected_since)) : '');
  }
  return badge('offline', 'bad');
}

function agent(p) {
  if (!p.agent_version) return '';
  return `${p.agent_version}${p.agent_protocol ? ` (protocol ${p.agent_protocol})` : ''}`;
}

function lastSeen(p) {
  return p.last_seen ? h('time', { datetime: p.last_seen, title: p.last_seen }, ago(p.last_seen)) : 'never';
}

const columns = [
  { label: 'Name', cell: p => h('span', {}, h('strong', {}, p.name), h('br'), h('span', { class: 'note mono' }, p.id)) },
  { label: 'Connection', cell: connection },
  { label: 'Agent', cell: agent },
  { label: 'Asterisk', cell: p => p.asterisk_version || '' },
  { label: 'AMI', cell: p => badge(p.ami) },
  { label: 'Live calls', cell: p => String(p.live_calls ?? 0), class: 'num' },
  { label: 'Last seen', cell: lastSeen },
];

export function mountPBXs(main) {
  const region = h('div', { 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  main.append(h('h1', {}, 'PBXs'), region);
  api('GET', '/v1/pbxs').then(list => {
    showIn(region, table(columns, list.pbxs, { empty: 'This enterprise has no PBX yet.', rowAttrs: p => ({ dataset: { pbx: p.id } }) }));
  }, e => showIn(region, errorBox(e)));
}

export function mountFleet(main) {
  const search = h('input', { type: 'search', name: 'search', placeholder: 'name, id, host, enterprise' });
  const enterprise = h('input', { type: 'text', name: 'enterprise', inputmode: 'numeric', size: 8 });
  const version = h('input', { type: 'text', name: 'version', size: 10 });
  const connected = h('select', { name: 'connected' },
    h('option', { value: '' }, 'Any'), h('option', { value: 'true' }, 'Online'), h('option', { value: 'false' }, 'Offline'));
  const region = h('div', { 'aria-live': 'polite' });
  let filters = {};
  let cursors = [''];  // cursors[i] opens page i
  let page = 0;
  let loading = 0;

  async function load() {
    const mine = ++loading;
    try {
      const f = await api('GET', '/v1/fleet' + query({ ...filters, limit: FLEET_PAGE, cursor: cursors[page] }));
      if (mine !== loading) return;
      if (f.next_cursor) cursors[page + 1] = f.next_cursor;
      const t = f.totals;
      const first = page * FLEET_PAGE + 1;
      const last = page * FLEET_PAGE + f.agents.length;
      showIn(region,
        h('div', { class: 'totals', id: 'fleet-totals' },
          h('span', {}, h('strong', {}, String(t.agents)), ' PBXs'),
          h('span', {}, h('strong', {}, String(t.connected)), ' online'),
          h('span', {}, 'AMI ', h('strong', {}, String(t.ami_up)), ' up, ', h('strong', {}, String(t.ami_down)), ' down'),
          h('span', {}, h('strong', {}, String(t.live_calls)), ' live calls')),
        table([{ label: 'Enterprise', cell: p => p.enterprise }, ...columns], f.agents,
          { empty: 'No PBX matches.', rowAttrs: p => ({ dataset: { pbx: p.id } }) }),
        pager({
          onPrev: page > 0 ? () => { page--; load(); } : null,
          onNext: f.next_cursor ? () => { page++; load(); } : null,
          label: f.matched ? `${first}–${last} of ${f.matched} matching` : '',
        }));
    } catch (e) {
      if (mine === loading) showIn(region, errorBox(e));
    }
  }

  const form = h('form', {
    class: 'inline', role: 'search', 'aria-label': 'Filter the fleet',
    onsubmit: e => {
      e.preventDefault();
      filters = { search: search.value.trim(), enterprise: enterprise.value.trim(), version: version.value.trim(), connected: connected.value };
      cursors = [''];
      page = 0;
      load();
    },
  }, field('Search', search), field('Enterprise', enterprise), field('Agent version', version), field('Connection', connected),
  h('button', { type: 'submit', class: 'primary' }, 'Show'));
  main.append(h('h1', {}, 'Fleet'), h('section', { class: 'panel' }, form), region);
  load();
}
