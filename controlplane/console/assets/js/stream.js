// The /v1/events WebSocket as the pages follow it: opened with a browser
// ticket (POST /v1/events/ticket), resumed with after=<last seq> whenever
// it drops, with a backoff, and shown by an indicator beside the page's
// heading (Live, Stream down — reconnecting…, Live — resumed after N s).
// Live calls and Queues each open one while they are shown.
import { api } from './api.js';
import { h } from './ui.js';

// Reconnect backoff: the first retry after RETRY_MIN, doubling to RETRY_MAX.
export const RETRY_MIN = 1000;
export const RETRY_MAX = 10000;

// eventStream connects at once and calls:
//   onLive(resumed)     the stream is live (resumed: after it was down);
//   onEvent(ev, prev)   each event once, in order; prev is the sequence
//                       before it (null for the first), so a page that
//                       reads every type can tell a skipped one;
//   onTruncated(ev)     events after the resume point are gone (retention).
// filter: the query's other parameters (types, pbx). It returns the
// indicator and stop().
export function eventStream({ filter, onLive, onEvent, onTruncated }) {
  let ws = null;
  let stopped = false;
  let lastSeq = null;   // the last event passed on (or the stream's start)
  let downs = 0;        // how often the stream went down
  let downSince = null;
  let retryMs = RETRY_MIN;
  let retryTimer = null;

  const indicator = h('span', { class: 'stream', id: 'stream', role: 'status', 'aria-live': 'polite' });
  const setState = (state, text) => {
    indicator.dataset.state = state;
    indicator.textContent = text;
  };
  const publish = () => {
    indicator.dataset.lastSeq = lastSeq === null ? '' : String(lastSeq);
    indicator.dataset.downs = String(downs);
  };
  setState('connecting', 'Connecting…');
  publish();

  function onMessage(data) {
    let ev;
    try { ev = JSON.parse(data); } catch { return; }
    if (ev.type === 'stream.live') {
      if (lastSeq === null) lastSeq = ev.seq;
      retryMs = RETRY_MIN;
      const resumed = downSince !== null;
      const text = resumed ? `Live — resumed after ${Math.max(1, Math.round((Date.now() - downSince) / 1000))} s` : 'Live';
      downSince = null;
      setState('live', text);
      publish();
      if (onLive) onLive(resumed);
      return;
    }
    if (ev.type === 'stream.truncated') {
      lastSeq = ev.seq;
      publish();
      if (onTruncated) onTruncated(ev);
      return;
    }
    if (typeof ev.seq !== 'number') return;
    if (lastSeq !== null && ev.seq <= lastSeq) return; // already passed on
    const prev = lastSeq;
    lastSeq = ev.seq;
    publish();
    onEvent(ev, prev);
  }

  function setDown(reason) {
    if (indicator.dataset.state !== 'down') {
      downs++;
      if (downSince === null) downSince = Date.now();
    }
    setState('down', 'Stream down — reconnecting…' + (reason ? ` (${reason})` : ''));
    publish();
  }

  function schedule() {
    if (stopped) return;
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX);
  }

  async function connect() {
    retryTimer = null;
    if (stopped) return;
    let t;
    try {
      t = await api('POST', '/v1/events/ticket');
    } catch (e) {
      if (stopped || e.status === 401) return; // signed out: the sign-in page takes over
      setDown(e.message);
      schedule();
      return;
    }
    if (stopped) return;
    const url = new URL(t.url, location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    for (const [k, v] of Object.entries(filter || {})) {
      if (v) url.searchParams.set(k, v);
    }
    if (lastSeq !== null) url.searchParams.set('after', String(lastSeq));
    const sock = new WebSocket(url);
    ws = sock;
    sock.onmessage = m => { if (ws === sock) onMessage(m.data); };
    sock.onclose = e => {
      if (ws !== sock || stopped) return;
      ws = null;
      setDown(e.reason || 'connection closed');
      schedule();
    };
  }

  connect();
  return {
    indicator,
    stop() {
      stopped = true;
      if (retryTimer) clearTimeout(retryTimer);
      if (ws) {
        const s = ws;
        ws = null;
        s.close(1000, 'page closed');
      }
    },
  };
}
