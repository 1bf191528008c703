// What the console's browser scripts share: their environment, the Telephony API as the demo
// call center, assertions, keyboard shortcuts, and numbered screenshots of each step.
//
// Environment: VB_BASE (server root URL), VB_CRM (an administrator's CRM access token),
// VB_JWT (a telephony JWT without jti), VB_DIALED (the demo phone number), VB_SHOTS (screenshot
// directory), CHROMIUM (browser path, default /usr/bin/chromium).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k, d) => process.env[k] ?? d ?? (() => { throw new Error(`${k} is required`); })();
export const BASE = env('VB_BASE');
export const CRM = env('VB_CRM');
export const JWT = env('VB_JWT');
export const DIALED = env('VB_DIALED', '+15550100100');
export const SHOTS = env('VB_SHOTS', 'console-screenshots');
export const TIMEOUT = 20_000;

/** The Telephony Integration API: `{status, body}`. */
export async function telephony(method, path, body) {
  const res = await fetch(`${BASE}/telephony/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${JWT}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** A keyboard shortcut, typed with nothing focused (shortcuts ignore form fields). */
export async function key(page, k) {
  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press(k);
}

/** Numbered full-page screenshots, `<prefix>NN-<step>.png`; `steps` lists the steps taken. */
export function screenshots(prefix) {
  const steps = [];
  let shot = 0;
  mkdirSync(SHOTS, { recursive: true });
  async function snap(page, name) {
    shot += 1;
    await page.screenshot({ path: join(SHOTS, `${prefix}${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
    steps.push(name);
  }
  return { steps, snap };
}
