// The console's entry point: sign-in, the page frame, and the router.
// Pages live in their own modules; each mounts into <main> and returns
// what stops it (timers, the event stream) when another page is shown.
import { api, setCSRF, whenSignedOut } from './api.js';
import { h, field, errorBox, timeZone, fmtClock, showIn } from './ui.js';
import * as live from './live.js';
import * as queues from './queues.js';
import * as pbxs from './pbxs.js';
import * as calls from './history.js';
import * as webhooks from './webhooks.js';
import * as audit from './audit.js';

const main = document.getElementById('main');
const top = document.getElementById('top');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const foot = document.getElementById('foot');

// The pages of the navigation, in order. need is the API action the page
// reads with; a credential without it sees the entry disabled, with the
// server's reason as its tooltip. hideDenied: not shown at all then.
const pages = [
  { path: 'live', label: 'Live calls', need: 'events:read', mount: live.mount },
  { path: 'queues', label: 'Queues', need: 'queues:read', mount: queues.mountList },
  { path: 'pbxs', label: 'PBXs', need: 'pbx:read', mount: pbxs.mountPBXs },
  { path: 'fleet', label: 'Fleet', need: 'fleet:read', mount: pbxs.mountFleet, hideDenied: true },
  { path: 'history', label: 'History', need: 'calls:read', mount: calls.mountList },
  { path: 'webhooks', label: 'Webhooks', need: 'events:read', mount: webhooks.mountList },
  { path: 'audit', label: 'Audit', need: 'audit:read', mount: audit.mount },
];

// Pages reached from another page, not from the navigation.
const subpages = {
  calls: { parent: 'history', mount: calls.mountCall },
  queues: { parent: 'queues', mount: queues.mountQueue },
  webhooks: { parent: 'webhooks', mount: webhooks.mountDeliveries },
};

let ctx = null;        // the signed-in credential and shared helpers
let stopPage = null;   // stops the page on show

function stop() {
  if (stopPage) {
    try { stopPage(); } catch { /* a page that fails to stop must not block the next */ }
    stopPage = null;
  }
}

// parseHash: "#/calls/sb-1?pbx=agt_x" → {segments: ['calls','sb-1'], params}.
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  return { segments: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(qs || '') };
}

function route() {
  if (!ctx) return;
  stop();
  const { segments, params } = parseHash();
  const allowed = pages.filter(p => ctx.can(p.need));
  let page = pages.find(p => p.path === segments[0]);
  let mount = page && page.mount;
  let current = page && page.path;
  if (segments.length > 1 && subpages[segments[0]]) {
    mount = subpages[segments[0]].mount;
    current = subpages[segments[0]].parent;
    page = pages.find(p => p.path === current);
  }
  if (!page || !ctx.can(page.need)) {
    if (!allowed.length) {
      renderNav(null);
      main.replaceChildren(h('h1', {}, 'Nothing to show'), h('p', {}, 'This credential may not read any page of the console.'));
      return;
    }
    location.replace('#/' + allowed[0].path);
    return;
  }
  renderNav(current);
  main.replaceChildren();
  stopPage = mount(main, ctx, segments.slice(1), params) || null;
  main.focus({ preventScroll: true });
}

function renderNav(current) {
  nav.replaceChildren(...pages.filter(p => ctx.can(p.need) || !p.hideDenied).map(p => {
    if (!ctx.can(p.need)) {
      return h('span', { class: 'nav-denied', 'aria-disabled': 'true', title: ctx.why(p.need), tabindex: 0 }, p.label);
    }
    return h('a', { href: '#/' + p.path, 'aria-current': p.path === current ? 'page' : false }, p.label);
  }));
}

// newContext wraps what GET /v1/me (or the sign-in) said.
function newContext(me) {
  const c = {
    me,
    can: action => !!(me.actions[action] && me.actions[action].allowed),
    why: action => (me.actions[action] && me.actions[action].reason) || 'not allowed',
    pbxs: new Map(),
    pbxName: id => (c.pbxs.get(id) || {}).name || id,
    go: hash => { location.hash = hash; },
  };
  return c;
}

async function loadPBXNames(c) {
  if (!c.can('pbx:read')) return;
  try {
    const list = await api('GET', '/v1/pbxs');
    for (const p of list.pbxs) c.pbxs.set(p.id, p);
  } catch { /* names are a nicety: ids are shown instead */ }
}

function describe(me) {
  const kind = me.kind === 'api_key' ? 'API key' : 'Operator';
  const parts = [`${kind} ${me.id}`];
  if (me.enterprise) parts.push(`enterprise ${me.enterprise}`);
  if (me.roles && me.roles.length) parts.push(me.roles.join(', '));
  return parts.join(' · ');
}

async function startApp(me) {
  setCSRF(me.session ? me.session.csrf_token : '');
  ctx = newContext(me);
  await loadPBXNames(ctx);
  top.hidden = false;
  const until = me.session ? h('span', { class: 'note', title: me.session.expires_at }, 'session until ' + fmtClock(me.session.expires_at)) : null;
  showIn(who, h('span', { id: 'whoami' }, describe(me)), until,
    h('button', { type: 'button', class: 'small', onclick: signOut }, 'Sign out'));
  foot.textContent = `Times are shown in ${timeZone}. Switchboard console — every action goes through the public API.`;
  route();
}

async function signOut() {
  try {
    await api('DELETE', '/v1/session');
  } catch (e) {
    if (e.status !== 401) { main.prepend(errorBox(e)); return; }
  }
  showSignIn(null, 'Signed out.');
}

function showSignIn(problem, info) {
  stop();
  ctx = null;
  setCSRF('');
  top.hidden = true;
  foot.textContent = '';
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const status = h('div', { role: 'status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', {
    onsubmit: async e => {
      e.preventDefault();
      button.disabled = true;
      status.replaceChildren();
      try {
        const me = await api('POST', '/v1/session', { token: input.value.trim() });
        input.value = '';
        await startApp(me);
      } catch (err) {
        status.replaceChildren(errorBox(err));
        button.disabled = false;
        input.focus();
      }
    },
  }, field('API key or token', input), button);
  main.replaceChildren(h('section', { class: 'signin panel', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to Switchboard'),
    problem ? errorBox(problem) : null,
    info ? h('p', { class: 'okmsg', role: 'status' }, info) : null,
    h('p', { class: 'note' }, 'Paste an API key (sbk_…) or an operator token (JWT). It is exchanged for a session cookie; the browser does not keep the key.'),
    form, status));
  input.focus();
}

async function boot() {
  whenSignedOut(err => { if (ctx) showSignIn('Your session has ended: ' + err.message); });
  window.addEventListener('hashchange', route);
  const link = location.hash.match(/^#link=(sbl_[A-Za-z0-9_]+)$/);
  if (link) {
    // A sign-in link (switchboard console-link): used once, then gone
    // from the address bar and the history.
    history.replaceState(null, '', location.pathname);
    try {
      return await startApp(await api('POST', '/v1/session', { token: link[1] }));
    } catch (e) {
      return showSignIn(e);
    }
  }
  try {
    const me = await api('GET', '/v1/me');
    if (!me.session) return showSignIn();
    await startApp(me);
  } catch (e) {
    showSignIn(e.status === 401 ? null : e);
  }
}

boot();
