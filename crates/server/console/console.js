// The Voxbridge agent console: login, presence, offers, softphone, record, transcript,
// flags and notes, wrap-up, preview calls, supervisor view and Voice Extension components.
// Plain ES module; every server call goes through the console API or the Toolkit API.
import { VoiceToolkit, EVENTS, setToolkitApi } from '/console/toolkit.js';

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = 'vb.console.token';
const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  toolkit: null,
  offer: null,
  call: null, // GET /calls/{id} answer of the call in focus
  wrapUp: null, // {workId, wrapUpEndsAt}
  callback: null, // the accepted callback's work (kind "callback") until its outcome is recorded
  queues: [],
  tab: 'agent',
  signals: { callId: null, sentiment: new Map(), categories: [] }, // the call in focus's signals
};

async function api(method, path, body, token = state.token) {
  const res = await fetch(`/console/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (res.status === 401 && token === state.token) logout(false);
  if (!res.ok) throw new Error(json?.message ?? `${res.status} ${res.statusText}`);
  return json;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c ?? '');
  return e;
}

function shout(where, err) {
  $(where).textContent = err ? (err.message ?? String(err)) : '';
}

function ago(ms) {
  if (ms == null) return '–';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

// ----- login -----

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  shout('#login-error');
  const username = $('#username').value.trim();
  const crm = $('#crm-token').value.trim();
  try {
    const s = await api('POST', '/sessions', { username }, crm);
    state.token = s.token;
    sessionStorage.setItem(TOKEN_KEY, s.token);
    await start();
  } catch (err) {
    shout('#login-error', err);
  }
});

async function logout(server = true) {
  if (server && state.token) await api('DELETE', '/sessions/current').catch(() => {});
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.toolkit?.close();
  state.toolkit = null;
  $('#login').hidden = false;
  for (const id of ['#agent', '#supervisor', '#tabs', '#presence-box', '#logout']) $(id).hidden = true;
  $('#agent-name').textContent = '';
  $('#presence-state').textContent = '';
}
$('#logout').addEventListener('click', () => logout());

// ----- start -----

async function start() {
  const toolkit = new VoiceToolkit({ token: state.token, supervisor: true });
  state.toolkit = toolkit;
  setToolkitApi(toolkit);
  window.voxbridgeToolkit = toolkit;
  toolkit.addEventListener('vb:message', (e) => onMessage(e.detail));
  for (const name of EVENTS) toolkit.addEventListener(name, (e) => onToolkitEvent(name, e.detail));
  toolkit.addConversationEventListener('INTELLIGENCE_SIGNAL', (e) => {
    logEvent('INTELLIGENCE_SIGNAL', e.detail);
    onSignals(e.detail);
  });
  try {
    await toolkit.connect();
  } catch (err) {
    logout(false);
    shout('#login-error', err);
    return;
  }
  $('#login').hidden = true;
  $('#tabs').hidden = false;
  $('#presence-box').hidden = false;
  $('#logout').hidden = false;
  showTab(state.tab);
  await loadQueues();
  await loadExtensions();
}

function showTab(tab) {
  state.tab = tab;
  $('#agent').hidden = tab !== 'agent';
  $('#supervisor').hidden = tab !== 'supervisor';
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === tab);
  if (tab === 'supervisor') refreshSupervisor();
}
for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showTab(b.dataset.tab));

// ----- server messages -----

function onMessage(msg) {
  const d = msg.data ?? {};
  switch (msg.type) {
    case 'state':
      $('#agent-name').textContent = d.agent?.name ?? d.agent?.username ?? '';
      showPresence(d.presence);
      setOffer(d.offers?.[0] ?? null);
      for (const w of d.work ?? []) {
        if (w.stage === 'WrapUp') setWrapUp({ workId: w.workId, wrapUpEndsAt: w.wrapUpEndsAt });
        else {
          if (w.kind === 'callback') setCallback(w);
          focusCall(w.workId);
        }
      }
      break;
    case 'presence':
      showPresence(d);
      break;
    case 'offer':
      setOffer(d);
      break;
    case 'offerEnded':
      if (state.offer?.workId === d.workId) setOffer(null);
      break;
    case 'assigned':
      if (state.offer?.workId === d.workId) setOffer(null);
      $('#transcript').replaceChildren();
      clearSignals();
      setCallback(d.kind === 'callback' ? d : null);
      focusCall(d.workId);
      break;
    case 'wrapUp':
      setWrapUp(d);
      break;
    case 'ended':
      if (state.wrapUp?.workId === d.workId) setWrapUp(null);
      if (state.callback?.workId === d.workId) {
        // After no answer the card keeps the outcome and the next attempt's time.
        if (d.reason === 'CallbackNoAnswer') state.callback = null;
        else setCallback(null);
      }
      if (state.call?.voiceCall?.Id === d.workId || state.call?.workId === d.workId) {
        clearCall(d.reason === 'Rerouted' ? 'Transferred' : d.reason === 'CallbackNoAnswer' ? 'No answer · callback' : 'No call');
      }
      break;
    case 'queue':
      if (state.tab === 'supervisor') refreshSupervisor();
      break;
    case 'conversation':
      if (['hold', 'resume', 'mute', 'unmute', 'pauserecording', 'resumerecording', 'participantadded',
        'participantremoved', 'conference', 'swap', 'callupdated', 'flagraise', 'flaglower'].includes(msg.event)) {
        refreshCall();
      }
      break;
    default:
      break;
  }
}

function logEvent(name, detail) {
  const li = el('li', { 'data-event': name }, `${new Date().toLocaleTimeString()} ${name} ${JSON.stringify(detail)}`);
  $('#events').prepend(li);
  while ($('#events').children.length > 200) $('#events').lastChild.remove();
}

function onToolkitEvent(name, detail) {
  logEvent(name, detail);
  if (name === 'transcript') {
    if ($(`#transcript li[data-id="${CSS.escape(String(detail.id))}"]`)) return;
    const who = detail.sender?.role ?? '';
    const li = el('li', { class: who === 'EndUser' ? 'END_USER' : 'HUMAN_AGENT', 'data-id': detail.id },
      el('span', { class: 'who' }, who === 'EndUser' ? 'Caller' : who), detail.content?.text ?? '');
    $('#transcript').append(li);
    li.scrollIntoView({ block: 'nearest' });
  }
  if (name === 'note' || name === 'flagraise' || name === 'flaglower') addNote(detail, name);
  if (name === 'callended' && state.call) {
    $('#call-status').textContent = 'Call ended';
    enableCallControls(false);
  }
  if (name === 'callended') clearSignals();
}

// ----- intelligence signals -----

const TREND = 5; // sentiment values kept per participant
const PARTICIPANTS = { CUSTOMER: 'Customer', AGENT: 'Agent' };

function onSignals(detail) {
  const sig = state.signals;
  if (detail.callId && sig.callId && detail.callId !== sig.callId) clearSignals();
  sig.callId = detail.callId ?? sig.callId;
  for (const ev of detail.events ?? []) {
    const at = ev.startTime ?? Date.now();
    if (ev.type === 'IntelligenceSignal__Sentiment') {
      const value = Number(ev.value);
      if (!Number.isFinite(value)) continue;
      const who = ev.participant ?? 'CUSTOMER';
      const list = sig.sentiment.get(who) ?? [];
      list.push({ value, score: ev.score, at });
      while (list.length > TREND) list.shift();
      sig.sentiment.set(who, list);
    } else if (ev.type === 'IntelligenceSignal__Category' && ev.value != null) {
      sig.categories.push({ name: String(ev.value), at });
    }
  }
  showSignals();
}

function clearSignals() {
  state.signals = { callId: null, sentiment: new Map(), categories: [] };
  showSignals();
}

function sentimentClass(v) {
  return v >= 100 ? 'positive' : v <= -100 ? 'negative' : 'neutral';
}

function showSignals() {
  const sig = state.signals;
  $('#signals-empty').hidden = sig.sentiment.size > 0 || sig.categories.length > 0;
  $('#sentiment').replaceChildren(...[...sig.sentiment.entries()].map(([who, list]) => {
    const last = list[list.length - 1];
    const fill = el('span', { class: `fill ${sentimentClass(last.value)}` });
    // The bar grows from the middle: right for positive, left for negative (±1000 = full half).
    const half = Math.min(50, (Math.abs(last.value) / 1000) * 50);
    fill.style.width = `${half}%`;
    fill.style.left = last.value >= 0 ? '50%' : `${50 - half}%`;
    const prev = list.length > 1 ? list[list.length - 2].value : null;
    const arrow = prev == null ? '' : last.value > prev ? '↑' : last.value < prev ? '↓' : '→';
    return el('div', { class: `sentiment ${sentimentClass(last.value)}`, 'data-participant': who, 'data-value': String(last.value) },
      el('span', { class: 'who' }, PARTICIPANTS[who] ?? who),
      el('span', { class: 'meter', title: `${last.value} of ±1000` }, fill),
      el('span', { class: 'score' }, `${last.value > 0 ? '+' : ''}${last.value}${arrow ? ` ${arrow}` : ''}`),
      el('span', { class: 'trend muted' }, list.map((x) => x.value).join(' → ')));
  }));
  $('#categories').replaceChildren(...sig.categories.map((c) => el('li', { class: 'chip', 'data-category': c.name },
    c.name, el('time', {}, new Date(c.at).toLocaleTimeString()))));
}

// ----- presence -----

function showPresence(p) {
  if (!p) return;
  const sel = $('#presence');
  if (![...sel.options].some((o) => o.value === p.status)) sel.append(el('option', {}, p.status));
  sel.value = p.status;
  const pill = $('#presence-state');
  pill.textContent = `${p.status} · ${p.load}/${p.capacity}`;
  pill.classList.toggle('routable', !!p.routable);
}
$('#presence').addEventListener('change', async (e) => {
  // Back to the page, so the keyboard shortcuts work at once.
  e.target.blur();
  try {
    showPresence(await api('PUT', '/presence', { status: e.target.value }));
  } catch (err) {
    shout('#call-error', err);
  }
});

// ----- offers -----

function setOffer(o) {
  state.offer = o;
  $('#offer').hidden = !o;
  if (o) {
    const callback = o.kind === 'callback';
    $('#offer').classList.toggle('callback', callback);
    $('#offer-title').textContent = callback ? 'Callback request' : 'Incoming call';
    $('#offer-callback').hidden = !callback;
    $('#offer-callback').textContent = callback
      ? `Call back ${o.callbackNumber} · attempt ${o.attempt} of ${o.maxAttempts}` : '';
    $('#offer-info').textContent = `${o.queueName ?? 'Direct'} · ${callback ? 'queued callback' : (o.conversationKey ?? o.workId)}`;
    $('#offer-expires').textContent = o.expiresAt ? `rings until ${new Date(o.expiresAt).toLocaleTimeString()}` : '';
  }
}
async function accept() {
  if (!state.offer) return;
  try { await state.toolkit.acceptCall(); } catch (err) { shout('#call-error', err); }
}
async function decline() {
  if (!state.offer) return;
  try { await state.toolkit.declineCall(); setOffer(null); } catch (err) { shout('#call-error', err); }
}
$('#accept').addEventListener('click', accept);
$('#decline').addEventListener('click', decline);

// ----- callbacks -----

function setCallback(w) {
  state.callback = w;
  $('#callback').hidden = !w;
  $('#callback-result').textContent = '';
  for (const b of document.querySelectorAll('#callback-outcomes button')) b.disabled = !w;
  if (w) $('#callback-info').textContent = `Calling ${w.callbackNumber} · attempt ${w.attempt} of ${w.maxAttempts}`;
}
async function callbackOutcome(outcome) {
  const cb = state.callback;
  if (!cb) return;
  shout('#call-error');
  try {
    const r = await api('POST', `/callbacks/${cb.workId}/outcome`, { outcome });
    for (const b of document.querySelectorAll('#callback-outcomes button')) b.disabled = true;
    const next = r.nextAttemptAt ? ` · next attempt ${new Date(r.nextAttemptAt).toLocaleTimeString()}` : '';
    $('#callback-result').textContent = `${outcome} · ${r.status}${next}`;
    $('#callback').dataset.status = r.status;
  } catch (err) {
    shout('#call-error', err);
  }
}
for (const b of document.querySelectorAll('#callback-outcomes button')) {
  b.addEventListener('click', () => callbackOutcome(b.dataset.outcome));
}

// ----- the call in focus -----

async function focusCall(workId) {
  try {
    // A callback's work id reads the outbound call it dialed.
    state.call = { ...(await api('GET', `/calls/${workId}`)), workId };
  } catch (err) {
    shout('#call-error', err);
    return;
  }
  showCall();
  // The conversation so far (after a transfer, what the previous agent heard); live lines
  // that arrived meanwhile are not repeated.
  const live = [...$('#transcript').children];
  for (const t of state.call.transcript ?? []) {
    if ($(`#transcript li[data-id="${CSS.escape(t.messageId)}"]`)) continue;
    const li = el('li', { class: t.senderType, 'data-id': t.messageId },
      el('span', { class: 'who' }, t.senderType === 'END_USER' ? 'Caller' : 'Agent'), t.content);
    if (live.length) live[0].before(li);
    else $('#transcript').append(li);
  }
  $('#notes').replaceChildren();
  for (const n of state.call.notes ?? []) addNote(n, n.type === 'FLAG_RAISE' ? 'flagraise' : n.type === 'FLAG_LOWER' ? 'flaglower' : 'note');
}

async function refreshCall() {
  const id = state.call?.voiceCall?.Id;
  if (!id) return;
  try {
    const c = await api('GET', `/calls/${id}`);
    // The call may have left this console (ended, transferred) while the answer was on its way.
    if (state.call?.voiceCall?.Id !== id) return;
    state.call = { ...c, workId: state.call.workId };
    showCall();
  } catch {
    // The call may be gone (transferred); the next event says so.
  }
}

function showCall() {
  const c = state.call;
  const s = c.state;
  const live = c.stage === 'Assigned';
  $('#call-status').textContent = live
    ? `${c.callType === 'outbound' ? 'Outbound' : 'Inbound'} · ${c.participant || c.callId}${s.onHold ? ' · on hold' : ''}`
    : c.stage === 'WrapUp' ? 'Wrap-up' : 'Call ended';
  const bits = [];
  if (s.muted) bits.push('muted');
  if (s.recordingPaused) bits.push('recording paused');
  if (s.thirdParty) bits.push(`third party: ${s.thirdParty.name}${s.thirdPartyOnHold ? ' (on hold)' : ''}`);
  $('#call-flags').textContent = bits.join(' · ');
  $('#hold-banner').hidden = !s.onHold;
  $('#btn-mute').setAttribute('aria-pressed', String(!!s.muted));
  $('#btn-mute').firstChild.textContent = s.muted ? 'Unmute ' : 'Mute ';
  $('#btn-hold').setAttribute('aria-pressed', String(!!s.onHold));
  $('#btn-hold').firstChild.textContent = s.onHold ? 'Resume ' : 'Hold ';
  $('#btn-record').setAttribute('aria-pressed', String(!!s.recordingPaused));
  $('#btn-record').firstChild.textContent = s.recordingPaused ? 'Resume rec. ' : 'Pause rec. ';
  enableCallControls(live);
  for (const id of ['#btn-merge', '#btn-swap', '#btn-drop-third']) $(id).disabled = !live || !s.thirdParty;
  for (const id of ['#record-save', '#raise-flag', '#add-note', '#nba-btn']) $(id).disabled = false;
  $('#lower-flag').disabled = !c.flag;
  $('#flag-state').textContent = c.flag ? `Flag raised: ${c.flag.text}` : 'No flag raised';
  showRecord(c.voiceCall);
}

const RECORD_GROUPS = [
  ['Call details', ['Id', 'VendorCallKey', 'CallType', 'FromPhoneNumber', 'ToPhoneNumber', 'QueueName', 'CallStartDateTime', 'CallEndDateTime', 'CallDurationInSeconds']],
  ['Resolution', ['CallDisposition', 'CallResolution']],
];

function showRecord(v) {
  const related = v.RelatedRecordId || '';
  $('#related-label').textContent = related || 'None';
  $('#related-label').dataset.id = related;
  $('#related-label').disabled = false;
  const typeName = v.RecordType?.Name ?? v.RecordTypeName ?? null;
  $('#record-type').textContent = typeName ? `${typeName}${v.RecordTypeId ? ` (${v.RecordTypeId})` : ''}` : (v.RecordTypeId ?? 'Default');
  const groups = [...RECORD_GROUPS,
    ['Custom fields', Object.keys(v).filter((k) => k.endsWith('__c')).sort()]];
  const box = $('#record-fields');
  box.replaceChildren();
  for (const [title, keys] of groups) {
    const dl = el('dl');
    for (const k of keys) {
      if (v[k] != null && v[k] !== '') dl.append(el('dt', {}, k), el('dd', { 'data-field': k }, String(v[k])));
    }
    if (dl.children.length) box.append(el('section', { class: 'record-group', 'data-group': title }, el('h3', {}, title), dl));
  }
  if (document.activeElement !== $('#f-related')) $('#f-related').value = related;
  if (document.activeElement !== $('#f-resolution')) $('#f-resolution').value = v.CallResolution ?? '';
  if (document.activeElement !== $('#f-description')) $('#f-description').value = v.Description ?? '';
}

function enableCallControls(on) {
  for (const id of ['#btn-mute', '#btn-hold', '#btn-record', '#btn-end', '#send-digits', '#transfer-btn']) $(id).disabled = !on;
}

function clearCall(text) {
  state.call = null;
  clearSignals();
  $('#call-status').textContent = text;
  $('#call-flags').textContent = '';
  $('#hold-banner').hidden = true;
  enableCallControls(false);
  for (const id of ['#btn-merge', '#btn-swap', '#btn-drop-third', '#record-save', '#raise-flag', '#lower-flag', '#add-note', '#nba-btn']) $(id).disabled = true;
}

async function act(fn) {
  shout('#call-error');
  try {
    await fn();
    await refreshCall();
  } catch (err) {
    shout('#call-error', err);
  }
}
const t = () => state.toolkit;
$('#btn-mute').addEventListener('click', () => act(() => (state.call?.state.muted ? t().unmute() : t().mute())));
$('#btn-hold').addEventListener('click', () => act(() => (state.call?.state.onHold ? t().resume('Initial_Caller') : t().hold('Initial_Caller'))));
$('#btn-record').addEventListener('click', () => act(() => (state.call?.state.recordingPaused ? t().resumeRecording() : t().pauseRecording())));
$('#btn-end').addEventListener('click', () => act(() => t().endCall('Agent')));
$('#btn-merge').addEventListener('click', () => act(() => t().merge()));
$('#btn-swap').addEventListener('click', () => act(() => t().swap()));
$('#btn-drop-third').addEventListener('click', () => act(() => t().endCall('Third_Party')));
$('#digits-form').addEventListener('submit', (e) => {
  e.preventDefault();
  act(async () => { await t().sendDigits($('#digits').value.trim()); $('#digits').value = ''; });
});
$('#transfer-type').addEventListener('change', () => {
  const q = $('#transfer-type').value === 'queue';
  $('#transfer-queue').hidden = !q;
  $('#transfer-value').hidden = q;
});
$('#transfer-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const kind = $('#transfer-type').value;
  const value = kind === 'queue' ? $('#transfer-queue').value : $('#transfer-value').value.trim();
  const blind = $('#transfer-blind').checked;
  act(() => t().addParticipant(kind === 'phone' ? 'PhoneNumber' : 'AgentOrQueueId', value, blind));
});

async function loadQueues() {
  try {
    state.queues = (await api('GET', '/queues')).queues;
  } catch {
    state.queues = [];
  }
  $('#transfer-queue').replaceChildren(...state.queues.map((q) => el('option', { value: q.id }, q.name)));
}

// ----- wrap-up -----

function setWrapUp(w) {
  state.wrapUp = w;
  $('#wrapup').hidden = !w;
  if (w) {
    $('#wrapup-ends').textContent = w.wrapUpEndsAt ? `ends by itself at ${new Date(w.wrapUpEndsAt).toLocaleTimeString()}` : '';
    enableCallControls(false);
    if (state.call) $('#call-status').textContent = 'Wrap-up';
  }
}
async function wrapUpDone() {
  if (!state.wrapUp) return;
  try {
    await t().wrapUp(state.wrapUp.workId);
  } catch (err) {
    shout('#call-error', err);
  }
}
$('#wrapup-done').addEventListener('click', wrapUpDone);

// ----- record -----

$('#related-label').addEventListener('click', () => $('#f-related').focus());
$('#record-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!state.call) return;
  try {
    const fields = { CallResolution: $('#f-resolution').value, Description: $('#f-description').value };
    const related = $('#f-related').value.trim();
    // Sent only when changed: an emptied field unlinks the record.
    if (related !== (state.call.voiceCall.RelatedRecordId || '')) fields.RelatedRecordId = related || null;
    await t().updateRecord(fields, state.call.voiceCall.Id);
    $('#record-msg').textContent = `Saved ${new Date().toLocaleTimeString()}`;
    await refreshCall();
  } catch (err) {
    $('#record-msg').textContent = err.message;
  }
});

// ----- flags and notes -----

function addNote(d, kind) {
  const text = kind === 'flaglower' ? 'Flag lowered' : d.content?.text ?? '';
  const li = el('li', { class: kind === 'flagraise' ? 'FLAG_RAISE' : kind, 'data-kind': kind },
    el('strong', {}, `${d.sender?.displayName || d.sender?.role || ''}: `), kind === 'flagraise' ? `⚑ ${text}` : text);
  $('#notes').append(li);
}
$('#flag-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('#flag-text').value.trim();
  if (!text) return shout('#call-error', new Error('say what you need help with'));
  act(async () => { await callAction('raiseFlag', { text }); $('#flag-text').value = ''; });
});
$('#lower-flag').addEventListener('click', () => act(() => callAction('lowerFlag', {})));
$('#note-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('#note-text').value.trim();
  if (!text) return;
  act(async () => { await callAction('note', { text }); $('#note-text').value = ''; });
});
function callAction(action, body) {
  if (!state.call) throw new Error('there is no call');
  return api('POST', `/calls/${state.call.voiceCall.Id}/${action}`, { ...body, clientSentTimestamp: Date.now() });
}

// ----- next best action -----

$('#nba-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!state.call) return;
  try {
    const r = await t().updateNextBestActions(state.call.voiceCall.Id, { key: $('#nba-key').value.trim() });
    $('#nba-list').replaceChildren(...r.recommendations.map((x) => el('li', {}, el('strong', {}, x.name), x.description ? ` — ${x.description}` : '')));
    if (!r.recommendations.length) $('#nba-list').append(el('li', { class: 'muted' }, 'No recommendation'));
  } catch (err) {
    shout('#call-error', err);
  }
});

// ----- preview call -----

$('#preview-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  shout('#preview-error');
  try {
    await t().startPreviewCall($('#preview-number').value.trim());
    $('#preview-number').value = '';
  } catch (err) {
    shout('#preview-error', err);
  }
});

// ----- supervisor -----

async function refreshSupervisor() {
  try {
    const [q, calls, flags] = await Promise.all([api('GET', '/queues'), api('GET', '/calls'), api('GET', '/flags')]);
    const max = Math.max(1, ...q.queues.map((x) => x.backlog));
    $('#queues tbody').replaceChildren(...q.queues.map((x) => el('tr', { 'data-queue': x.developerName },
      el('td', {}, x.name),
      el('td', {}, el('span', { class: `bar${x.backlog > 2 ? ' hot' : ''}`, style: '' }), String(x.backlog)),
      el('td', {}, x.backlog ? ago(x.oldestContactAgeMs) : '–'),
      el('td', {}, String(x.agentsAvailable)), el('td', {}, String(x.agentsStaffed)), el('td', {}, String(x.agentsOnline)))));
    for (const [i, x] of q.queues.entries()) {
      const bar = $('#queues tbody').children[i].querySelector('.bar');
      bar.style.width = `${Math.round((x.backlog / max) * 8)}rem`;
    }
    $('#active-calls').replaceChildren(...calls.calls.map((c) => el('li', {}, `${c.agentName ?? c.agentId} · ${c.voiceCallId}`)));
    $('#raised-flags').replaceChildren(...flags.flags.map((f) => el('li', {}, el('strong', {}, `${f.raisedBy}: `), f.text ?? '')));
  } catch (err) {
    shout('#call-error', err);
  }
}
setInterval(() => state.token && state.tab === 'supervisor' && refreshSupervisor(), 5000);

// ----- Voice Extension components -----

async function loadExtensions() {
  let list = [];
  try {
    list = (await api('GET', '/extensions')).extensions;
  } catch {
    return;
  }
  const box = $('#extensions');
  box.hidden = list.length === 0;
  for (const x of list) {
    const section = el('section', { class: 'extension', 'data-url': x.url }, el('h3', {}, x.label ?? x.url));
    box.append(section);
    try {
      const mod = await import(x.url);
      const mount = mod.default ?? mod.mount;
      if (typeof mount !== 'function') throw new Error('the module exports no default function(element, toolkit)');
      await mount(section, state.toolkit);
      section.dataset.loaded = 'true';
    } catch (err) {
      section.append(el('p', { class: 'error' }, `cannot load: ${err.message}`));
    }
  }
}

// ----- keyboard -----

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || !state.token) return;
  if (e.target.closest('input, textarea, select')) return;
  const k = e.key.toLowerCase();
  const click = (id) => { if (!$(id).disabled) $(id).click(); };
  const actions = {
    a: accept, d: decline,
    m: () => click('#btn-mute'), h: () => click('#btn-hold'), r: () => click('#btn-record'), e: () => click('#btn-end'),
    t: () => { $('#transfer-box').open = true; $('#transfer-type').focus(); },
    f: () => $('#flag-text').focus(), w: wrapUpDone,
    1: () => showTab('agent'), 2: () => showTab('supervisor'),
    '?': () => { $('#help').hidden = !$('#help').hidden; },
  };
  if (actions[k]) {
    e.preventDefault();
    actions[k]();
  }
});

if (state.token) start();
