// Drives a queued callback through the agent console in headless Chromium against a running
// `voxbridge serve`: a call waits in the Support queue, the telephony system asks for a callback
// (two attempts, a one-second retry delay), the agent is offered it as a callback (number,
// attempt 1 of 2), accepts — the console shows the outbound call — and records no answer; the
// second attempt is offered, reaches voicemail (the callback completes), the agent hangs up and
// wraps up. Every wait is for a selector, with a timeout; a screenshot is saved per step, named
// `cb-NN-step.png`.
//
// Environment: as common.mjs describes.
// Prints one JSON line {"passed": true, "steps": [...]} and exits 0, or exits 1.
import { chromium } from 'playwright-core';

import { BASE, CRM, DIALED, TIMEOUT, check, key, screenshots, telephony } from './common.mjs';

const KEY = `callback-${Date.now()}`;
const NUMBER = '+14155550177';

const { steps, snap } = screenshots('cb-');

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await page.goto(`${BASE}/console`);
    await page.fill('#username', 'ada@demo.voxbridge.local');
    await page.fill('#crm-token', CRM);
    await page.click('#login-btn');
    await page.waitForSelector('#presence-box:not([hidden])');
    await page.selectOption('#presence', 'Busy');
    await page.waitForSelector('#presence-state:has-text("Busy")');

    // The caller waits in the Support queue, then asks to be called back.
    const created = await telephony('POST', '/voiceCalls', {
      callCenterApiName: 'DemoCallCenter', vendorCallKey: KEY, to: DIALED, from: NUMBER,
      initiationMethod: 'Inbound', startTime: new Date(Date.now() - 1000).toISOString(),
      participants: [{ participantKey: NUMBER, type: 'END_USER' }],
    });
    check(created.status === 200, `createVoiceCall answered ${created.status}: ${JSON.stringify(created.body)}`);
    const routed = await telephony('PATCH', `/voiceCalls/${created.body.voiceCallId}/omniFlow`, {
      dialedNumber: DIALED, flowInputParameters: { Department: 'Support' },
    });
    check(routed.status === 200, `executeOmniFlow answered ${routed.status}: ${JSON.stringify(routed.body)}`);
    const bad = await telephony('POST', `/voiceCalls/${KEY}/callback`, { callbackNumber: '4155550177' });
    const badCode = Array.isArray(bad.body) ? bad.body[0]?.errorCode : bad.body?.errorCode;
    check(bad.status === 400 && badCode === 'INVALID_FIELD_VALUE',
      `a number not in E.164 form is refused: ${bad.status} ${JSON.stringify(bad.body)}`);
    const requested = await telephony('POST', `/voiceCalls/${KEY}/callback`, {
      callbackNumber: NUMBER, queue: 'Support', initialDelaySeconds: 0, maxAttempts: 2, retryDelaySeconds: 1,
    });
    check(requested.status === 201, `callback answered ${requested.status}: ${JSON.stringify(requested.body)}`);
    const id = requested.body.id;

    await page.selectOption('#presence', 'Available');
    await page.waitForSelector('#offer.callback:not([hidden])');
    await page.waitForSelector(`#offer-callback:has-text("Call back ${NUMBER} · attempt 1 of 2")`);
    await snap(page, 'callback-offer');
    await key(page, 'a');
    await page.waitForSelector('#call-status:has-text("Outbound")');
    await page.waitForSelector(`#callback:not([hidden]) #callback-info:has-text("attempt 1 of 2")`);
    await page.waitForSelector(`#record-fields dd[data-field="ToPhoneNumber"]:has-text("${NUMBER}")`);
    await snap(page, 'callback-dialing');

    await page.click('#callback-outcomes button[data-outcome="NoAnswer"]');
    await page.waitForSelector('#callback[data-status="Scheduled"]');
    await page.waitForSelector('#call-status:has-text("No answer")');
    await snap(page, 'callback-no-answer');

    // The retry delay passes; the second attempt rings.
    await page.waitForSelector('#offer-callback:has-text("attempt 2 of 2")');
    await snap(page, 'callback-second-attempt');
    await page.click('#accept');
    await page.waitForSelector('#call-status:has-text("Outbound")');
    await page.click('#callback-outcomes button[data-outcome="Voicemail"]');
    await page.waitForSelector('#callback[data-status="Completed"]');
    await snap(page, 'callback-voicemail');

    // The agent leaves a message and hangs up.
    await page.click('#btn-end');
    await page.waitForSelector('#wrapup:not([hidden])');
    await key(page, 'w');
    await page.waitForSelector('#wrapup', { state: 'hidden' });
    await page.waitForSelector('#callback', { state: 'hidden' });
    await snap(page, 'callback-wrapped-up');
    console.log(JSON.stringify({ passed: true, steps, callbackId: id, vendorCallKey: KEY }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e.stack ?? String(e));
  console.log(JSON.stringify({ passed: false, steps, error: String(e.message ?? e) }));
  process.exit(1);
});
