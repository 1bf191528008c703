// Voxbridge Toolkit API: the Service Cloud Voice Toolkit API for plain ES modules.
//
// LWC style:  toolkit.addEventListener('callstarted', (e) => e.detail)
// Aura style: toolkit.addTelephonyEventListener('CALL_STARTED', (e) => e.detail)
//             toolkit.addConversationEventListener('TRANSCRIPT', (e) => e.detail)
// Actions return promises that reject with an Error whose message says what was wrong.
//
// Events come from the console API's WebSocket (/console/api/v1/events); actions call the
// console API's call-control endpoints (docs/console-api.md).

const TELEPHONY = {
  audiostats: 'AUDIO_STATS', callstarted: 'CALL_STARTED', callconnected: 'CALL_CONNECTED',
  callended: 'CALL_ENDED', hold: 'HOLD', resume: 'RESUME', mute: 'MUTE', unmute: 'UNMUTE',
  participantadded: 'PARTICIPANT_ADDED', participantremoved: 'PARTICIPANT_REMOVED',
  conference: 'CONFERENCE', swap: 'SWAP', pauserecording: 'PAUSE_RECORDING',
  resumerecording: 'RESUME_RECORDING', wrapupended: 'WRAP_UP_ENDED',
};
const CONVERSATION = {
  flagraise: 'FLAG_RAISE', flaglower: 'FLAG_LOWER', note: 'NOTE', transcript: 'TRANSCRIPT',
  signal: 'INTELLIGENCE_SIGNAL',
};
/** The lowercase (LWC) event names. */
export const EVENTS = Object.freeze([
  'audiostats', 'callstarted', 'callconnected', 'callended', 'hold', 'resume', 'mute', 'unmute',
  'participantadded', 'participantremoved', 'conference', 'swap', 'pauserecording',
  'resumerecording', 'transcript', 'wrapupended', 'flagraise', 'flaglower', 'note',
]);
export const TELEPHONY_EVENTS = Object.freeze(Object.values(TELEPHONY));
export const CONVERSATION_EVENTS = Object.freeze(Object.values(CONVERSATION));

const ROLES = { HUMAN_AGENT: 'Agent', END_USER: 'EndUser', VIRTUAL_AGENT: 'VirtualAgent', SUPERVISOR: 'Supervisor' };

function fail(message) {
  return Promise.reject(new Error(message));
}

function oneOf(name, value, allowed) {
  if (!allowed.includes(value)) {
    return `${name} must be ${allowed.map((a) => `"${a}"`).join(' or ')}, got ${JSON.stringify(value)}`;
  }
  return null;
}

export class VoiceToolkit extends EventTarget {
  /**
   * @param {{token: string, baseUrl?: string, supervisor?: boolean, WebSocketImpl?: typeof WebSocket}} options
   */
  constructor({ token, baseUrl = '', supervisor = false, WebSocketImpl = globalThis.WebSocket } = {}) {
    super();
    if (!token) throw new Error('a console session token is required');
    this.token = token;
    this.baseUrl = baseUrl || globalThis.location?.origin || '';
    this.WebSocketImpl = WebSocketImpl;
    /** Also receive the org's queue changes (`queue` messages) for a supervisor view. */
    this.supervisor = supervisor;
    /** Calls by work id: {workId, callId, callType, participant, ended}. */
    this.calls = new Map();
    /** The ringing offer, the call in focus. */
    this.offer = null;
    this.current = null;
    this.aura = new Map();
    this.socket = null;
    this.closed = false;
    this.queue = Promise.resolve();
  }

  // ----- events -----

  addTelephonyEventListener(name, listener) {
    this.#auraAdd('telephony', TELEPHONY_EVENTS, name, listener);
  }
  removeTelephonyEventListener(name, listener) {
    this.aura.get(`telephony:${name}`)?.delete(listener);
  }
  addConversationEventListener(name, listener) {
    this.#auraAdd('conversation', CONVERSATION_EVENTS, name, listener);
  }
  removeConversationEventListener(name, listener) {
    this.aura.get(`conversation:${name}`)?.delete(listener);
  }

  #auraAdd(kind, known, name, listener) {
    if (!known.includes(name)) {
      throw new Error(`unknown ${kind} event ${JSON.stringify(name)}; use one of ${known.join(', ')}`);
    }
    const key = `${kind}:${name}`;
    if (!this.aura.has(key)) this.aura.set(key, new Set());
    this.aura.get(key).add(listener);
  }

  /** Fires the LWC event and its Aura twin with the same detail. */
  emit(type, detail) {
    if (EVENTS.includes(type)) this.dispatchEvent(new CustomEvent(type, { detail }));
    const tel = TELEPHONY[type];
    const conv = CONVERSATION[type];
    for (const [kind, name] of [['telephony', tel], ['conversation', conv]]) {
      if (!name) continue;
      for (const l of this.aura.get(`${kind}:${name}`) ?? []) {
        try {
          l({ type: name, detail });
        } catch (e) {
          console.error(`${name} listener failed`, e);
        }
      }
    }
  }

  // ----- connection -----

  /** Opens the event socket; resolves with the first `state` message. */
  connect() {
    const url = new URL('/console/api/v1/events', this.baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('access_token', this.token);
    if (this.supervisor) url.searchParams.set('supervisor', 'true');
    return new Promise((resolve, reject) => {
      const ws = new this.WebSocketImpl(url.toString());
      this.socket = ws;
      let first = true;
      ws.onmessage = (m) => {
        let msg;
        try {
          msg = JSON.parse(m.data);
        } catch {
          return;
        }
        if (first && msg.type === 'state') {
          first = false;
          this.dispatchEvent(new CustomEvent('vb:message', { detail: msg }));
          this.queue = this.#onState(msg.data).then(() => resolve(msg.data), reject);
          return;
        }
        // One at a time, in order: a call's record is read before its events are mapped.
        this.queue = this.queue.then(() => this.#handle(msg)).catch((e) => console.error('toolkit event failed', e));
      };
      ws.onerror = () => first && reject(new Error('cannot open the console event socket'));
      ws.onclose = () => {
        this.dispatchEvent(new CustomEvent('vb:disconnected'));
        if (!this.closed) setTimeout(() => this.connect().catch(() => {}), 2000);
      };
    });
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }

  async #onState(state) {
    this.offer = state.offers?.[0] ?? null;
    for (const w of state.work ?? []) {
      if (!this.calls.has(w.workId)) await this.#track(w, w.stage === 'Assigned');
    }
  }

  async #track(work, announce) {
    let info = { callId: work.conversationKey ?? work.workId, callType: 'inbound', participant: '' };
    try {
      const c = await this.#api('GET', `/calls/${work.workId}`);
      info = { callId: c.callId, callType: c.callType ?? 'inbound', participant: c.participant ?? '', record: c };
    } catch {
      // The record may be unreadable for a moment; the ids still identify the call.
    }
    const call = { workId: work.workId, ...info, ended: work.stage !== 'Assigned' };
    this.calls.set(work.workId, call);
    this.current = work.workId;
    if (announce) {
      const d = { callId: call.callId, callType: call.callType, participant: call.participant };
      this.emit('callstarted', d);
      this.emit('callconnected', { ...d, callAttributes: {} });
    }
    return call;
  }

  async #handle(msg) {
    this.dispatchEvent(new CustomEvent('vb:message', { detail: msg }));
    const d = msg.data ?? {};
    switch (msg.type) {
      case 'offer':
        this.offer = d;
        break;
      case 'offerEnded':
        if (this.offer?.workId === d.workId) this.offer = null;
        break;
      case 'assigned':
        if (this.offer?.workId === d.workId) this.offer = null;
        await this.#track(d, true);
        break;
      case 'wrapUp':
        this.#ended(d.workId);
        break;
      case 'ended': {
        this.#ended(d.workId);
        const call = this.calls.get(d.workId);
        if (call && (d.reason === 'Completed' || d.reason === 'WrapUpTimedOut')) {
          this.emit('wrapupended', { callId: call.callId });
        }
        this.calls.delete(d.workId);
        if (this.current === d.workId) this.current = [...this.calls.keys()].pop() ?? null;
        break;
      }
      case 'conversation':
        this.#conversation(msg);
        break;
      default:
        break;
    }
  }

  #ended(workId) {
    const call = this.calls.get(workId);
    if (call && !call.ended) {
      call.ended = true;
      this.emit('callended', { callId: call.callId });
    }
  }

  #conversation(msg) {
    const call = this.calls.get(msg.workId);
    const d = msg.data ?? {};
    const callId = d.callId ?? call?.callId ?? msg.conversationKey;
    switch (msg.event) {
      case 'transcript':
        this.emit('transcript', {
          id: d.messageId,
          clientSentTimestamp: d.startTime,
          serverReceivedTimestamp: d.receivedTime ?? Date.now(),
          content: { formatType: 'Text', text: d.content },
          callId,
          sender: { role: ROLES[d.senderType] ?? d.senderType, participantId: d.participantId },
        });
        break;
      case 'hold':
      case 'resume':
        this.emit(msg.event, { callId, participant: d.participant ?? call?.participant ?? '' });
        break;
      case 'participantadded':
      case 'participantremoved':
        this.emit(msg.event, { callId, participant: d.participant ?? '' });
        break;
      case 'mute':
      case 'unmute':
      case 'conference':
      case 'swap':
      case 'pauserecording':
      case 'resumerecording':
        this.emit(msg.event, { callId });
        break;
      case 'flagraise':
      case 'flaglower':
      case 'note': {
        const { type: _type, ...detail } = d;
        this.emit(msg.event, detail);
        break;
      }
      case 'signal':
        this.emit('signal', { events: d.events ?? [d], callId });
        break;
      case 'callended':
        if (call) this.#ended(msg.workId);
        break;
      default:
        break;
    }
  }

  // ----- actions -----

  async #api(method, path, body) {
    const res = await fetch(new URL(`/console/api/v1${path}`, this.baseUrl), {
      method,
      headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) {
      const e = new Error(json?.message ?? `${method} ${path} failed with ${res.status}`);
      e.errorCode = json?.errorCode;
      e.status = res.status;
      throw e;
    }
    return json;
  }

  #call(action, body) {
    const id = this.current;
    if (!id || this.calls.get(id)?.ended) return fail(`${action}: there is no active call`);
    return this.#api('POST', `/calls/${id}/${action}`, body);
  }

  mute() {
    return this.#call('mute');
  }
  unmute() {
    return this.#call('unmute');
  }
  hold(participantType = 'Initial_Caller') {
    const bad = oneOf('participantType', participantType, ['Initial_Caller', 'Third_Party']);
    return bad ? fail(`hold: ${bad}`) : this.#call('hold', { participantType });
  }
  resume(participantType = 'Initial_Caller') {
    const bad = oneOf('participantType', participantType, ['Initial_Caller', 'Third_Party']);
    return bad ? fail(`resume: ${bad}`) : this.#call('resume', { participantType });
  }
  endCall(participantType = 'Agent') {
    const bad = oneOf('participantType', participantType, ['Initial_Caller', 'Third_Party', 'Agent']);
    return bad ? fail(`endCall: ${bad}`) : this.#call('endCall', { participantType });
  }
  acceptCall() {
    if (!this.offer) return fail('acceptCall: no call is ringing');
    return this.#api('POST', `/offers/${this.offer.workId}/accept`);
  }
  declineCall() {
    if (!this.offer) return fail('declineCall: no call is ringing');
    return this.#api('POST', `/offers/${this.offer.workId}/decline`);
  }
  pauseRecording() {
    return this.#call('pauseRecording');
  }
  resumeRecording() {
    return this.#call('resumeRecording');
  }
  startPreviewCall(phoneNumber) {
    if (typeof phoneNumber !== 'string' || !/^\+[1-9]\d{1,14}$/.test(phoneNumber.trim())) {
      return fail(`startPreviewCall: phoneNumber must be in E.164 form such as +14155550100, got ${JSON.stringify(phoneNumber)}`);
    }
    return this.#api('POST', '/calls', { phoneNumber: phoneNumber.trim() });
  }
  merge() {
    return this.#call('merge');
  }
  swap() {
    return this.#call('swap');
  }
  addParticipant(contactType, contactValue, isBlindTransfer = false) {
    const bad = oneOf('contactType', contactType, ['PhoneNumber', 'AgentOrQueueId']);
    if (bad) return fail(`addParticipant: ${bad}`);
    if (typeof contactValue !== 'string' || !contactValue.trim()) {
      return fail('addParticipant: contactValue must be a phone number, agent id or queue id');
    }
    if (contactType === 'PhoneNumber' && !/^\+[1-9]\d{1,14}$/.test(contactValue.trim())) {
      return fail(`addParticipant: contactValue must be in E.164 form for PhoneNumber, got ${JSON.stringify(contactValue)}`);
    }
    if (typeof isBlindTransfer !== 'boolean') return fail('addParticipant: isBlindTransfer must be true or false');
    return this.#call('addParticipant', { contactType, contactValue: contactValue.trim(), isBlindTransfer });
  }
  sendDigits(digit) {
    if (typeof digit !== 'string' || !/^[0-9*#ABCD,]{1,64}$/.test(digit)) {
      return fail(`sendDigits: digit must be 0-9, *, #, A, B, C, D or , (pause), got ${JSON.stringify(digit)}`);
    }
    return this.#call('sendDigits', { digit });
  }
  /** Flags and notes (the console's own actions; their events are FLAG_RAISE, FLAG_LOWER, NOTE). */
  raiseFlag(text) {
    return this.#call('raiseFlag', { text, clientSentTimestamp: Date.now() });
  }
  lowerFlag() {
    return this.#call('lowerFlag', { clientSentTimestamp: Date.now() });
  }
  addNote(text) {
    return this.#call('note', { text, clientSentTimestamp: Date.now() });
  }
  updateNextBestActions(recordId, payload = {}) {
    if (typeof recordId !== 'string' || !recordId) return fail('updateNextBestActions: recordId is required');
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
      return fail('updateNextBestActions: payload must be an object of key-value pairs');
    }
    return this.#api('POST', '/nextBestActions', { recordId, payload });
  }
  /** Lightning Data Service: read the VoiceCall, update the fields it allows. */
  getRecord(voiceCallId = this.current) {
    if (!voiceCallId) return fail('getRecord: there is no call');
    return this.#api('GET', `/calls/${voiceCallId}`);
  }
  updateRecord(fields, voiceCallId = this.current) {
    if (!voiceCallId) return fail('updateRecord: there is no call');
    return this.#api('PATCH', `/calls/${voiceCallId}`, fields);
  }
  /** Ends after-call work of the call in focus (or the given work). */
  wrapUp(workId = this.current) {
    if (!workId) return fail('wrapUp: there is no call in wrap-up');
    return this.#api('POST', `/work/${workId}/wrapup`);
  }
}

let shared = null;

/** The console's toolkit, for Voice Extension components that import this module. */
export function getToolkitApi() {
  return shared;
}

export function setToolkitApi(t) {
  shared = t;
}

export default VoiceToolkit;
