// Webhooks: list, create (the secret is shown once, in the creation's
// answer), delete, and each webhook's deliveries with every attempt.
import { api, query } from './api.js';
import { h, field, errorBox, badge, table, pager, timeEl, showIn, confirmAction } from './ui.js';

// The types a webhook may ask for (events.EventTypes).
const EVENT_TYPES = ['call.started', 'call.ringing', 'call.answered', 'call.bridged', 'call.monitor_started',
  'call.monitor_stopped', 'call.ended', 'gap',
  'queue.caller_joined', 'queue.caller_left', 'queue.member_added', 'queue.member_removed', 'queue.member_paused',
  'queue.member_unpaused', 'recording.started', 'recording.stopped',
  'call.transfer_started', 'call.transferred', 'call.transfer_canceled', 'call.parked', 'call.unparked', 'call.park_timeout'];
// Deliveries per page.
const DELIVERY_PAGE = 25;

export function mountList(main, ctx) {
  const manage = ctx.can('webhooks:manage');
  const listRegion = h('div', { 'aria-live': 'polite' }, h('p', { class: 'note' }, 'Loading…'));
  const status = h('div', { role: 'status', 'aria-live': 'polite', id: 'webhook-status' });

  async function load() {
    try {
      const r = await api('GET', '/v1/webhooks');
      showIn(listRegion, table([
        { label: 'URL', cell: w => h('span', { class: 'mono' }, w.url) },
        { label: 'Events', cell: w => w.event_types.length ? w.event_types.join(', ') : 'all' },
        { label: 'PBX', cell: w => w.pbx ? ctx.pbxName(w.pbx) : 'all' },
        { label: 'Description', cell: w => w.description || '' },
        { label: 'Created', cell: w => timeEl(w.created_at) },
        {
          label: 'Actions', class: 'actions', cell: w => [
            h('a', { href: '#/webhooks/' + encodeURIComponent(w.id), 'aria-label': `Deliveries of ${w.url}` }, 'Deliveries'),
            h('button', {
              type: 'button', class: 'small danger', disabled: !manage, title: manage ? false : ctx.why('webhooks:manage'),
              'aria-label': `Delete the webhook to ${w.url}`, onclick: () => remove(w),
            }, 'Delete')],
        },
      ], r.webhooks, { empty: 'No webhooks yet.', rowAttrs: w => ({ dataset: { webhook: w.id } }) }));
    } catch (e) {
      showIn(listRegion, errorBox(e));
    }
  }

  async function remove(w) {
    if (!await confirmAction('Delete this webhook?', `${w.url} gets no more deliveries.`, 'Delete')) return;
    try {
      await api('DELETE', '/v1/webhooks/' + encodeURIComponent(w.id));
      showIn(status, h('p', { class: 'okmsg' }, `Deleted the webhook to ${w.url}.`));
      load();
    } catch (e) {
      showIn(status, errorBox(e));
    }
  }

  const url = h('input', { type: 'url', name: 'url', required: true, size: 40, placeholder: 'https://crm.example.com/hook' });
  const description = h('input', { type: 'text', name: 'description', size: 20 });
  const boxes = EVENT_TYPES.map(t => h('input', { type: 'checkbox', name: 'event_types', value: t, id: 'evt-' + t.replace('.', '-') }));
  const pbxs = [...ctx.pbxs.values()];
  const pbx = h('select', { name: 'pbx' }, h('option', { value: '' }, 'All PBXs'), pbxs.map(p => h('option', { value: p.id }, p.name)));
  const create = h('button', { type: 'submit', class: 'primary', disabled: !manage, title: manage ? false : ctx.why('webhooks:manage') }, 'Create webhook');
  const form = h('form', {
    'aria-labelledby': 'new-webhook',
    onsubmit: async e => {
      e.preventDefault();
      create.disabled = true;
      try {
        const w = await api('POST', '/v1/webhooks', {
          body: {
            url: url.value.trim(), description: description.value.trim(), pbx: pbx.value || undefined,
            event_types: boxes.filter(b => b.checked).map(b => b.value),
          },
        });
        showIn(status, h('div', { class: 'okmsg' },
          h('p', {}, `Created webhook ${w.id} to ${w.url}. Its signing secret is shown once, now: keep it in the receiver's configuration.`),
          h('p', { class: 'secret', id: 'webhook-secret' }, w.secret)));
        form.reset();
        load();
      } catch (err) {
        showIn(status, errorBox(err));
      } finally {
        create.disabled = !manage;
      }
    },
  },
  h('div', { class: 'inline-row' }, field('URL', url), field('Description', description), field('PBX', pbx)),
  h('fieldset', {}, h('legend', { class: 'label' }, 'Events (none ticked: all)'),
    h('div', { class: 'checks' }, boxes.map(b => h('label', { for: b.id }, b, ' ', b.value)))),
  h('p', {}, create));

  main.append(h('h1', {}, 'Webhooks'), status,
    h('section', { class: 'panel' }, h('h2', { id: 'new-webhook' }, 'New webhook'),
      manage ? null : h('p', { class: 'denied' }, 'Not offered to this credential: ' + ctx.why('webhooks:manage')), form),
    listRegion);
  load();
}

export function mountDeliveries(main, ctx, rest) {
  const id = rest[0];
  const head = h('div', {}, h('p', { class: 'note' }, 'Loading…'));
  const region = h('div', { 'aria-live': 'polite' });
  const cursors = [''];
  let page = 0;
  main.append(h('p', {}, h('a', { href: '#/webhooks' }, '← Webhooks')), head, region);

  api('GET', '/v1/webhooks/' + encodeURIComponent(id)).then(w => {
    showIn(head, h('h1', {}, 'Deliveries to ', h('span', { class: 'mono' }, w.url)),
      h('p', { class: 'note' }, `Events: ${w.event_types.length ? w.event_types.join(', ') : 'all'}. Each delivery is retried with backoff until it succeeds or gives up; every attempt is listed.`));
  }, e => showIn(head, errorBox(e)));

  const attempts = d => d.attempt_log.length
    ? h('ul', { class: 'attempts' }, d.attempt_log.map(a => h('li', {},
      `#${a.attempt} `, timeEl(a.at), ' — ',
      a.status_code ? `HTTP ${a.status_code}` : '', a.error ? ` ${a.error}` : '', ` (${a.duration_ms} ms)`)))
    : 'none yet';

  async function load() {
    try {
      const r = await api('GET', '/v1/webhooks/' + encodeURIComponent(id) + '/deliveries' + query({ limit: DELIVERY_PAGE, cursor: cursors[page] }));
      if (r.next_cursor) cursors[page + 1] = r.next_cursor;
      showIn(region, table([
        { label: 'Event', cell: d => h('span', {}, d.event_type, h('br'), h('span', { class: 'note' }, `seq ${d.seq}`)) },
        { label: 'Status', cell: d => badge(d.status) },
        { label: 'Created', cell: d => timeEl(d.created_at) },
        { label: 'Next attempt', cell: d => d.next_attempt_at ? timeEl(d.next_attempt_at) : '' },
        { label: 'Attempts', cell: attempts },
      ], r.deliveries, { empty: 'No deliveries yet.', rowAttrs: d => ({ dataset: { delivery: d.id } }) }),
      pager({
        onPrev: page > 0 ? () => { page--; load(); } : null,
        onNext: r.next_cursor ? () => { page++; load(); } : null,
        label: `Page ${page + 1}`,
      }));
    } catch (e) {
      showIn(region, errorBox(e));
    }
  }
  load();
}
