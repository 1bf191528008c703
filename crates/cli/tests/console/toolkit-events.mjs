// The Toolkit API module (crates/server/console/toolkit.js) without a browser: console API
// WebSocket messages in, every LWC and Aura event out with the guide's `detail` payloads, and
// the actions' argument checks. Prints {"passed": true, "checked": n} or exits 1.
import assert from 'node:assert/strict';
import { VoiceToolkit, EVENTS, TELEPHONY_EVENTS, CONVERSATION_EVENTS } from '../../../server/console/toolkit.js';

class FakeSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    FakeSocket.last = this;
  }
  send() {}
  close() {}
  deliver(msg) {
    this.onmessage({ data: JSON.stringify(msg) });
  }
}

const requests = [];
globalThis.fetch = async (url, init) => {
  requests.push({ url: String(url), method: init.method, body: init.body && JSON.parse(init.body) });
  const path = new URL(url).pathname;
  if (init.method === 'GET' && path === '/console/api/v1/calls/0LQ1') {
    return new Response(JSON.stringify({ callId: 'key-1', callType: 'inbound', participant: '+14155550123' }));
  }
  if (path.endsWith('/sendDigits') || path.endsWith('/mute')) return new Response('{"status":"ok"}');
  return new Response(JSON.stringify({ errorCode: 'INVALID_STATE', message: 'refused by the server' }), { status: 409 });
};

const toolkit = new VoiceToolkit({ token: 'org!t', baseUrl: 'http://vb.test', supervisor: true, WebSocketImpl: FakeSocket });
const lwc = [];
const aura = [];
for (const name of EVENTS) toolkit.addEventListener(name, (e) => lwc.push([e.type, e.detail]));
for (const name of TELEPHONY_EVENTS) toolkit.addTelephonyEventListener(name, (e) => aura.push([e.type, e.detail]));
for (const name of CONVERSATION_EVENTS) toolkit.addConversationEventListener(name, (e) => aura.push([e.type, e.detail]));
assert.throws(() => toolkit.addTelephonyEventListener('CALL_EXPLODED', () => {}), /unknown telephony event/);

const connected = toolkit.connect();
const ws = FakeSocket.last;
assert.match(ws.url, /^ws:\/\/vb\.test\/console\/api\/v1\/events\?access_token=org%21t&supervisor=true$/);
ws.deliver({ type: 'state', data: { offers: [], work: [] } });
await connected;

const conv = (event, data) => ws.deliver({ type: 'conversation', event, workId: '0LQ1', conversationKey: 'key-1', data });
const flagDetail = (type, text) => ({
  id: 'n1', type, clientSentTimestamp: 1, serverReceivedTimestamp: 2,
  content: { formatType: text === null ? null : 'Text', text }, callId: 'key-1',
  sender: { role: 'Agent', displayName: 'Ada Lovelace' },
});
ws.deliver({ type: 'offer', data: { workId: '0LQ1', stage: 'Offered', conversationKey: 'key-1' } });
ws.deliver({ type: 'assigned', data: { workId: '0LQ1', stage: 'Assigned', conversationKey: 'key-1' } });
conv('hold', { voiceCallId: '0LQ1', callId: 'key-1', participant: '+14155550123', participantType: 'Initial_Caller' });
conv('resume', { voiceCallId: '0LQ1', callId: 'key-1', participant: '+14155550123' });
for (const e of ['mute', 'unmute', 'conference', 'swap', 'pauserecording', 'resumerecording']) conv(e, { voiceCallId: '0LQ1', callId: 'key-1' });
conv('participantadded', { callId: 'key-1', participant: 'Support Queue' });
conv('participantremoved', { callId: 'key-1', participant: 'Support Queue' });
conv('transcript', { messageId: 'm1', senderType: 'END_USER', participantId: 'p', content: 'Hello', startTime: 10, endTime: 11 });
conv('flagraise', flagDetail('FLAG_RAISE', 'help'));
conv('flaglower', flagDetail('FLAG_LOWER', null));
conv('note', flagDetail('NOTE', 'a note'));
conv('signal', { events: [{ type: 'IntelligenceSignal__Category', value: 'CustomerAngry', startTime: 5 }] });
ws.deliver({ type: 'wrapUp', data: { workId: '0LQ1', wrapUpEndsAt: 'x' } });
ws.deliver({ type: 'ended', data: { workId: '0LQ1', reason: 'Completed' } });
await toolkit.queue;

const call = { callId: 'key-1', callType: 'inbound', participant: '+14155550123' };
const note = (type, text) => {
  const { type: _t, ...d } = flagDetail(type, text);
  return d;
};
const expected = [
  ['callstarted', call],
  ['callconnected', { ...call, callAttributes: {} }],
  ['hold', { callId: 'key-1', participant: '+14155550123' }],
  ['resume', { callId: 'key-1', participant: '+14155550123' }],
  ['mute', { callId: 'key-1' }], ['unmute', { callId: 'key-1' }], ['conference', { callId: 'key-1' }],
  ['swap', { callId: 'key-1' }], ['pauserecording', { callId: 'key-1' }], ['resumerecording', { callId: 'key-1' }],
  ['participantadded', { callId: 'key-1', participant: 'Support Queue' }],
  ['participantremoved', { callId: 'key-1', participant: 'Support Queue' }],
  ['transcript', 'transcript'],
  ['flagraise', note('FLAG_RAISE', 'help')],
  ['flaglower', note('FLAG_LOWER', null)],
  ['note', note('NOTE', 'a note')],
  ['callended', { callId: 'key-1' }],
  ['wrapupended', { callId: 'key-1' }],
];
assert.deepEqual(lwc.map(([t]) => t), expected.map(([t]) => t));
let checked = 0;
for (const [i, [type, detail]] of expected.entries()) {
  if (detail === 'transcript') {
    const d = lwc[i][1];
    assert.equal(d.id, 'm1');
    assert.equal(d.clientSentTimestamp, 10);
    assert.equal(typeof d.serverReceivedTimestamp, 'number');
    assert.deepEqual(d.content, { formatType: 'Text', text: 'Hello' });
    assert.equal(d.callId, 'key-1');
    assert.equal(d.sender.role, 'EndUser');
  } else {
    assert.deepEqual(lwc[i][1], detail, type);
  }
  checked += 1;
}
// The Aura twins carry the same details, uppercase.
const auraNames = aura.map(([t]) => t);
assert.deepEqual(auraNames, [
  'CALL_STARTED', 'CALL_CONNECTED', 'HOLD', 'RESUME', 'MUTE', 'UNMUTE', 'CONFERENCE', 'SWAP', 'PAUSE_RECORDING',
  'RESUME_RECORDING', 'PARTICIPANT_ADDED', 'PARTICIPANT_REMOVED', 'TRANSCRIPT', 'FLAG_RAISE', 'FLAG_LOWER', 'NOTE',
  'INTELLIGENCE_SIGNAL', 'CALL_ENDED', 'WRAP_UP_ENDED',
]);
assert.deepEqual(aura.find(([t]) => t === 'INTELLIGENCE_SIGNAL')[1].events[0].value, 'CustomerAngry');
assert.deepEqual(aura.find(([t]) => t === 'WRAP_UP_ENDED')[1], { callId: 'key-1' });
checked += auraNames.length;

// Actions: argument checks reject before any request; server refusals reject with its message.
const rejects = async (p, re) => {
  await assert.rejects(p, re);
  checked += 1;
};
await rejects(toolkit.mute(), /no active call/);
ws.deliver({ type: 'assigned', data: { workId: '0LQ1', stage: 'Assigned', conversationKey: 'key-1' } });
await toolkit.queue;
const before = requests.length;
await rejects(toolkit.hold('Everyone'), /participantType must be "Initial_Caller" or "Third_Party"/);
await rejects(toolkit.endCall('Caller'), /participantType must be "Initial_Caller" or "Third_Party" or "Agent"/);
await rejects(toolkit.sendDigits('12x'), /digit must be 0-9/);
await rejects(toolkit.startPreviewCall('4155550100'), /E\.164/);
await rejects(toolkit.addParticipant('Email', 'a@b'), /contactType must be "PhoneNumber" or "AgentOrQueueId"/);
await rejects(toolkit.addParticipant('PhoneNumber', '555'), /E\.164/);
await rejects(toolkit.addParticipant('AgentOrQueueId', '00G1', 'yes'), /isBlindTransfer must be true or false/);
await rejects(toolkit.updateNextBestActions('0LQ1', 'refund'), /payload must be an object/);
await rejects(toolkit.acceptCall(), /no call is ringing/);
assert.equal(requests.length, before, 'bad arguments never reach the server');
await rejects(toolkit.merge(), /refused by the server/);
await toolkit.sendDigits('12#*');
await toolkit.mute();
const sent = requests.filter((r) => r.method === 'POST').map((r) => [new URL(r.url).pathname, r.body]);
assert.deepEqual(sent.slice(-2), [
  ['/console/api/v1/calls/0LQ1/sendDigits', { digit: '12#*' }],
  ['/console/api/v1/calls/0LQ1/mute', undefined],
]);
console.log(JSON.stringify({ passed: true, checked }));
