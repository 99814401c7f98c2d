// The demo page: join a channel, see who is here, chat live, and see which node and transport serve this tab.
/* global io */
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $('status'),
    transport: $('transport'),
    node: $('node'),
    joined: $('joined'),
    joinForm: $('join-form'),
    channel: $('channel'),
    name: $('name'),
    presence: $('presence'),
    presenceCount: $('presence-count'),
    messages: $('messages'),
    sendForm: $('send-form'),
    message: $('message'),
    send: $('send'),
    error: $('error'),
  };
  const ACK_TIMEOUT_MS = 5000;
  const PRESENCE_EVERY_MS = 4000;

  const params = new URLSearchParams(location.search);
  ui.channel.value = params.get('channel') || ui.channel.value;
  ui.name.value = params.get('name') || localStorage.getItem('switchboard-demo-name') || `guest-${Math.random().toString(36).slice(2, 6)}`;
  ui.name.addEventListener('change', () => localStorage.setItem('switchboard-demo-name', ui.name.value.trim()));

  /** The channel we are in, the last publication id seen there (to replay what a reconnect missed), ids shown. */
  let channel = null;
  let lastId = null;
  const seen = new Set();

  // On an open node (no JWT_SECRET, no BACKEND_URL) the name given here is what presence shows; it is read
  // again at every reconnect, so a rename shows after the next one.
  const socket = io({ transports: ['polling', 'websocket'], auth: (cb) => cb({ user: ui.name.value.trim() || 'anonymous' }) });

  function setStatus(state, text) {
    ui.status.dataset.state = state;
    ui.status.textContent = text || state;
    ui.send.disabled = state !== 'connected' || !channel;
  }

  function showTransport() {
    const engine = socket.io.engine;
    ui.transport.textContent = engine && engine.transport ? engine.transport.name : '–';
  }

  function showError(message) {
    ui.error.hidden = !message;
    ui.error.textContent = message || '';
  }

  // Which node serves this tab: the same sticky route as the socket, so ask after each (re)connect.
  async function showNode() {
    try {
      const res = await fetch('/api/node', { cache: 'no-store', credentials: 'same-origin' });
      const body = await res.json();
      ui.node.textContent = body.id || '?';
    } catch {
      ui.node.textContent = '?';
    }
  }

  /** emit with an ack and a timeout; resolves with the ack ({ ok, ... }) or a synthetic timeout error. */
  function call(event, ...args) {
    return new Promise((resolve) => {
      socket.timeout(ACK_TIMEOUT_MS).emit(event, ...args, (err, res) => {
        resolve(err ? { ok: false, error: { code: 'timeout', message: `${event}: no answer within ${ACK_TIMEOUT_MS / 1000} s` } } : res);
      });
    });
  }

  function time(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function addSystem(text) {
    const li = document.createElement('li');
    li.className = 'message system';
    li.textContent = text;
    ui.messages.append(li);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function addMessage(data, meta) {
    if (!meta || meta.channel !== channel || seen.has(meta.id)) return;
    seen.add(meta.id);
    lastId = meta.id;
    const li = document.createElement('li');
    li.className = 'message';
    li.dataset.testid = 'message';
    li.dataset.id = meta.id;
    if (data && data.name === ui.name.value.trim()) li.classList.add('mine');
    const head = document.createElement('div');
    head.className = 'meta';
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = (data && data.name) || 'anonymous';
    const when = document.createElement('time');
    when.dateTime = new Date(meta.ts).toISOString();
    when.textContent = time(meta.ts);
    head.append(who, when);
    const text = document.createElement('div');
    text.className = 'text';
    text.dataset.testid = 'message-text';
    text.textContent = data && typeof data.text === 'string' ? data.text : JSON.stringify(data);
    li.append(head, text);
    ui.messages.append(li);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  async function refreshPresence() {
    if (!channel || !socket.connected) return;
    const res = await call('presence', channel);
    if (!res || !res.ok) return;
    ui.presenceCount.textContent = String(res.count);
    ui.presence.replaceChildren(
      ...res.members.map((m) => {
        const li = document.createElement('li');
        const user = document.createElement('span');
        user.textContent = m.user;
        const n = document.createElement('span');
        n.textContent = m.connections === 1 ? '1 connection' : `${m.connections} connections`;
        li.append(user, n);
        return li;
      }),
    );
  }

  /** Joins `name`; on a reconnect (same channel) asks for what was published meanwhile. */
  async function join(name, { resume = false } = {}) {
    showError('');
    if (channel && channel !== name) {
      await call('unsubscribe', channel);
    }
    const fresh = channel !== name || !resume;
    if (fresh) {
      channel = name;
      lastId = null;
      seen.clear();
      ui.messages.replaceChildren();
      ui.presence.replaceChildren();
      ui.presenceCount.textContent = '0';
    }
    ui.joined.textContent = name;
    // A fresh join asks for everything history still holds ('0-0' precedes every id), so recent messages show.
    const opts = !fresh && lastId ? { since: lastId } : { since: '0-0' };
    const res = await call('subscribe', name, opts);
    if (!res || !res.ok) {
      showError(`Could not join ${name}: ${res && res.error ? res.error.message || res.error.code : 'no answer'}`);
      setStatus(socket.connected ? 'connected' : 'disconnected');
      return;
    }
    const resumed = !fresh && opts.since !== '0-0';
    if (resumed && res.replayed) addSystem(`Back online: ${res.replayed} missed message${res.replayed === 1 ? '' : 's'} replayed.`);
    if (resumed && res.recovered === false) addSystem('Back online: some messages from while you were away may be missing.');
    history.replaceState(null, '', `?channel=${encodeURIComponent(name)}`);
    setStatus(socket.connected ? 'connected' : 'disconnected');
    refreshPresence();
  }

  ui.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.channel.value.trim();
    if (name) join(name);
  });

  ui.sendForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = ui.message.value.trim();
    if (!text || !channel) return;
    ui.send.disabled = true;
    const res = await call('publish', channel, 'chat', { text, name: ui.name.value.trim() || 'anonymous' });
    ui.send.disabled = !socket.connected;
    if (res && res.ok) {
      showError('');
      ui.message.value = '';
      ui.message.focus();
    } else {
      showError(`Not sent: ${res && res.error ? res.error.message || res.error.code : 'no answer'}`);
    }
  });

  socket.on('chat', addMessage);

  socket.on('connect', () => {
    setStatus('connected');
    showTransport();
    showNode();
    socket.io.engine.once('upgrade', showTransport);
    const name = channel || ui.channel.value.trim();
    if (name) join(name, { resume: channel === name });
  });
  socket.on('disconnect', (reason) => {
    setStatus(reason === 'io client disconnect' ? 'disconnected' : 'reconnecting');
    ui.transport.textContent = '–';
  });
  socket.on('connect_error', (err) => {
    setStatus(socket.active ? 'reconnecting' : 'disconnected');
    showError(`Connection problem: ${err.message}`);
  });
  socket.io.on('reconnect', () => showError(''));

  setInterval(refreshPresence, PRESENCE_EVERY_MS);
})();
