// Drives the agent console in headless Chromium against a running `voxbridge serve`:
// a Voice Extension registered on the Voice Extension page, a call created and routed through
// the Telephony API, offered to agent A, accepted, transcribed, shown real-time intelligence
// signals (sentiment and a category), related to a record, held (lines said on hold never
// appear), resumed, flagged, transferred to a queue, taken by agent B, ended and wrapped up.
// Every wait is for a selector or an event, with a timeout; a screenshot is saved per step.
//
// Environment: as common.mjs describes.
// Prints one JSON line {"passed": true, "steps": [...]} and exits 0, or exits 1.
import { chromium } from 'playwright-core';

import { BASE, CRM, DIALED, TIMEOUT, check, key, screenshots, telephony } from './common.mjs';

const KEY = `browser-${Date.now()}`;
const EXTENSION = 'https://components.voxbridge.test/auto-mute.js';
// A Voice Extension component: on callstarted it mutes the call through the Toolkit API.
const EXTENSION_SOURCE = `
export default function mount(element, toolkit) {
  const p = document.createElement('p');
  p.id = 'ext-status';
  p.textContent = 'waiting for a call';
  element.append(p);
  toolkit.addEventListener('callstarted', async (e) => {
    p.textContent = 'callstarted ' + e.detail.callId;
    p.dataset.callId = e.detail.callId;
    try {
      await toolkit.mute();
      p.dataset.muted = 'true';
      p.textContent += ' · muted';
    } catch (err) {
      p.textContent += ' · ' + err.message;
    }
  });
}`;

const { steps, snap } = screenshots('');

let lineNo = 0;
async function say(text) {
  lineNo += 1;
  const now = Date.now();
  const r = await telephony('POST', `/voiceCalls/${KEY}/messages`, {
    participantId: 'caller', messageId: `${KEY}-m${lineNo}`, startTime: now, endTime: now + 500,
    content: text, senderType: 'END_USER',
  });
  return r.status;
}

/** Real-time conversation events (intelligence signals) of the call, as a telephony system posts them. */
async function signals(events) {
  const r = await telephony('POST', `/voiceCalls/${KEY}/realtimeConversationEvents`, { service: 'ContactLens', events });
  return r.status;
}

async function agentPage(browser, username, presence) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.route(EXTENSION, (route) => route.fulfill({ contentType: 'text/javascript', body: EXTENSION_SOURCE }));
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => console.error(`[${username}] page error: ${e.message}`));
  await page.goto(`${BASE}/console`);
  await page.fill('#username', username);
  await page.fill('#crm-token', CRM);
  await page.click('#login-btn');
  await page.waitForSelector('#presence-box:not([hidden])');
  await page.selectOption('#presence', presence);
  await page.waitForSelector(`#presence-state:has-text("${presence}")`);
  await page.waitForSelector('#extensions section[data-loaded="true"]');
  return page;
}

const transcriptLine = (text) => `#transcript li:has-text("${text}")`;

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    // The Voice Extension page: the administrator registers the component for the org.
    const adminContext = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    const admin = await adminContext.newPage();
    admin.setDefaultTimeout(TIMEOUT);
    await admin.goto(`${BASE}/console/extensions`);
    await admin.fill('#admin-token', CRM);
    await admin.click('#token-btn');
    await admin.waitForSelector('#add-form:not([hidden])');
    if (!(await admin.$(`#ext-list li[data-url="${EXTENSION}"]`))) {
      await admin.fill('#ext-url', EXTENSION);
      await admin.fill('#ext-label', 'Auto mute');
      await admin.click('#ext-add');
    }
    await admin.waitForSelector(`#ext-list li[data-url="${EXTENSION}"]`);
    await snap(admin, 'voice-extension-page');

    const a = await agentPage(browser, 'ada@demo.voxbridge.local', 'Available');
    const b = await agentPage(browser, 'grace@demo.voxbridge.local', 'Busy');
    await snap(a, 'agent-a-logged-in');
    // The Toolkit API's argument checks reject with a clear error.
    const digitsError = await a.evaluate(() => window.voxbridgeToolkit.sendDigits('x').then(() => 'resolved', (e) => e.message));
    check(digitsError.includes('digit must be'), `sendDigits('x') should reject: ${digitsError}`);
    const holdError = await a.evaluate(() => window.voxbridgeToolkit.hold('Everyone').then(() => 'resolved', (e) => e.message));
    check(holdError.includes('participantType must be'), `hold('Everyone') should reject: ${holdError}`);

    // A call through the Telephony API: createVoiceCall, then executeOmniFlow.
    const created = await telephony('POST', '/voiceCalls', {
      callCenterApiName: 'DemoCallCenter', vendorCallKey: KEY, to: DIALED, from: '+14155550123',
      initiationMethod: 'Inbound', startTime: new Date(Date.now() - 1000).toISOString(),
      participants: [{ participantKey: '+14155550123', type: 'END_USER' }],
    });
    check(created.status === 200, `createVoiceCall answered ${created.status}: ${JSON.stringify(created.body)}`);
    const callId = created.body.voiceCallId;
    const routed = await telephony('PATCH', `/voiceCalls/${callId}/omniFlow`, {
      dialedNumber: DIALED, flowInputParameters: { Department: 'Support' },
    });
    check(routed.status === 200, `executeOmniFlow answered ${routed.status}: ${JSON.stringify(routed.body)}`);

    await a.waitForSelector('#offer:not([hidden])');
    await snap(a, 'offer');
    await key(a, 'a');
    await a.waitForSelector('#call-status:has-text("Inbound")');
    await a.waitForSelector('#offer', { state: 'hidden' });
    // The registered component heard callstarted and muted the call.
    await a.waitForSelector(`#ext-status[data-muted="true"][data-call-id="${KEY}"]`);
    await a.waitForSelector('#btn-mute[aria-pressed="true"]');
    await snap(a, 'accepted-extension-muted');

    check((await say('I would like a refund')) === 200, 'the first line is stored');
    await a.waitForSelector(transcriptLine('I would like a refund'));
    check((await say('It was charged twice')) === 200, 'the second line is stored');
    await a.waitForSelector(transcriptLine('It was charged twice'));
    await snap(a, 'transcript');

    // Real-time intelligence signals: the customer's sentiment as a bar with its trend, a category chip.
    const t0 = Date.now();
    check((await signals([
      { type: 'IntelligenceSignal__Sentiment', value: -250, startTime: t0, participant: 'CUSTOMER', score: 800 },
      { type: 'IntelligenceSignal__Category', value: 'RefundRequest', startTime: t0 + 1 },
    ])) === 202, 'the first signals are accepted');
    await a.waitForSelector('#sentiment .sentiment.negative[data-participant="CUSTOMER"][data-value="-250"]');
    await a.waitForSelector('#categories li.chip[data-category="RefundRequest"]');
    check((await signals([
      { type: 'IntelligenceSignal__Sentiment', value: 420.5, startTime: t0 + 2, participant: 'CUSTOMER', score: 900 },
    ])) === 202, 'the second sentiment is accepted');
    await a.waitForSelector('#sentiment .sentiment.positive[data-participant="CUSTOMER"][data-value="420.5"]');
    await a.waitForSelector('#sentiment .sentiment[data-participant="CUSTOMER"] .trend:has-text("-250 → 420.5")');
    await a.waitForSelector('#signals-empty', { state: 'hidden' });
    // The record panel: grouped fields, and the related record edited from the form.
    await a.waitForSelector(`#record-fields section[data-group="Call details"] dd[data-field="VendorCallKey"]:has-text("${KEY}")`);
    await a.waitForSelector('#related-label:has-text("None")');
    await a.fill('#f-related', callId);
    await a.click('#record-save');
    await a.waitForSelector(`#related-label[data-id="${callId}"]`);
    await snap(a, 'intelligence-signals');

    await a.click('#btn-hold');
    await a.waitForSelector('#hold-banner:not([hidden])');
    await a.waitForSelector('#events li[data-event="hold"]');
    const held = await say('my card number is 4111');
    check(held !== 200, `a line said on hold must not be stored, got ${held}`);
    await snap(a, 'on-hold');
    await key(a, 'h');
    await a.waitForSelector('#hold-banner', { state: 'hidden' });
    await a.waitForSelector('#events li[data-event="resume"]');
    check((await say('Thanks for waiting')) === 200, 'the line after resume is stored');
    await a.waitForSelector(transcriptLine('Thanks for waiting'));
    check(!(await a.$(transcriptLine('4111'))), 'the line said on hold appeared');
    await snap(a, 'resumed');

    // A flag for the supervisor, seen in the supervisor view.
    await a.fill('#flag-text', 'Customer wants a credit note');
    await a.click('#raise-flag');
    await a.waitForSelector('#notes li[data-kind="flagraise"]');
    await a.waitForSelector('#events li[data-event="flagraise"]');
    await key(b, '2');
    await b.waitForSelector('#raised-flags li:has-text("Customer wants a credit note")');
    await b.waitForSelector('#queues tbody tr[data-queue="Support"]');
    await snap(b, 'supervisor-view');
    await key(b, '1');

    // Transfer to the Support queue; agent B becomes available and takes it.
    await key(a, 't');
    await a.selectOption('#transfer-type', 'queue');
    await a.selectOption('#transfer-queue', { label: 'Support Queue' });
    await a.check('#transfer-blind');
    await b.selectOption('#presence', 'Available');
    await b.waitForSelector('#presence-state:has-text("Available")');
    await a.click('#transfer-btn');
    await a.waitForSelector('#call-status:has-text("Transferred")');
    await a.waitForSelector('#events li[data-event="callended"]');
    // The call left this console: its signals are cleared.
    await a.waitForSelector('#signals-empty:not([hidden])');
    check(!(await a.$('#sentiment .sentiment')), 'the sentiment stayed after the call left');
    await b.waitForSelector('#offer:not([hidden])');
    await snap(b, 'agent-b-offer');
    await b.click('#accept');
    await b.waitForSelector('#call-status:has-text("Inbound")');
    await b.waitForSelector(`#ext-status[data-muted="true"][data-call-id="${KEY}"]`);
    // B sees the conversation so far, and new lines.
    await b.waitForSelector(transcriptLine('Thanks for waiting'));
    check((await say('Hello again')) === 200, 'the line to agent B is stored');
    await b.waitForSelector(transcriptLine('Hello again'));
    check(!(await b.$(transcriptLine('4111'))), 'the line said on hold appeared for agent B');
    await snap(b, 'agent-b-on-call');

    // End, wrap-up, and wrapupended for both the LWC and the Aura listener.
    await b.evaluate(() => {
      window.voxbridgeToolkit.addTelephonyEventListener('WRAP_UP_ENDED', (e) => { window.auraWrapUpEnded = e.detail; });
    });
    await b.click('#btn-end');
    await b.waitForSelector('#wrapup:not([hidden])');
    await b.waitForSelector('#events li[data-event="callended"]');
    await snap(b, 'wrap-up');
    await key(b, 'w');
    await b.waitForSelector('#events li[data-event="wrapupended"]');
    await b.waitForSelector('#wrapup', { state: 'hidden' });
    const aura = await b.evaluate(() => window.auraWrapUpEnded);
    check(aura?.callId === KEY, `WRAP_UP_ENDED detail should name the call: ${JSON.stringify(aura)}`);
    await snap(b, 'wrap-up-ended');
    console.log(JSON.stringify({ passed: true, steps, callId, vendorCallKey: KEY }));
  } finally {
    await browser.close();
  }
}

main().catch(async (e) => {
  console.error(e.stack ?? String(e));
  console.log(JSON.stringify({ passed: false, steps, error: String(e.message ?? e) }));
  process.exit(1);
});
