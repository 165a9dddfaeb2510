// Shared pieces of the browser tests: Chromium from the distribution driven by playwright-core, the
// operator login, screenshots, and direct API calls for setting up what a test does not exercise.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONSOLE_URL = need('CONSOLE_URL');
export const CP_URL = process.env.CP_URL ?? CONSOLE_URL;
export const ADMIN_PASSWORD = need('ADMIN_PASSWORD');
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
mkdirSync(SHOTS, { recursive: true });

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through web-console/e2e/run`);
  return v;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A fresh browser context (own localStorage) with a page at the given viewport. */
export async function newPage(browser, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => console.error('page error:', e.message));
  return page;
}

export async function login(page) {
  await page.goto(CONSOLE_URL + '/');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
}

export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** A unique suffix so tests can run again against the same database. */
export const uniq = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

let bearer;
/** Calls the control plane API directly as the operator. */
export async function api(method, path, body) {
  if (!bearer) {
    const r = await fetch(`${CP_URL}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: ADMIN_PASSWORD }),
    });
    bearer = (await r.json()).token;
  }
  const r = await fetch(`${CP_URL}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/**
 * A broker node created through the API, for tests that play a broker: `beat(extra)` posts a
 * heartbeat the way brokers do (node credential, current configuration version) with `extra` fields
 * (clusterLink, instances) on top.
 */
export async function fakeBroker(nodeId) {
  const node = await api('POST', '/brokers', { nodeId, description: 'browser test' });
  const bootId = `boot-${uniq()}`;
  return {
    nodeId,
    async beat(extra = {}) {
      const { currentVersion } = await api('GET', '/brokers');
      const r = await fetch(`${CP_URL}/api/v1/broker-sync/heartbeat`, {
        method: 'POST',
        headers: { authorization: `Node ${nodeId}:${node.nodeSecret}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          bootId,
          softwareVersion: 'browser-test',
          appliedVersion: currentVersion,
          appliedHash: 'h',
          lastError: null,
          connections: 0,
          subscriptions: 0,
          messagesInPerSec: 0,
          messagesOutPerSec: 0,
          startedAtMs: Date.now(),
          ...extra,
        }),
      });
      if (r.status !== 204) throw new Error(`heartbeat of ${nodeId}: ${r.status} ${await r.text()}`);
    },
    remove: () => api('DELETE', `/brokers/${nodeId}`),
    /** A broker-sync call with this node's credential; the parsed answer (or undefined for 204). */
    async sync(method, path, body) {
      const r = await fetch(`${CP_URL}/api/v1/broker-sync${path}`, {
        method,
        headers: { authorization: `Node ${nodeId}:${node.nodeSecret}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await r.text();
      if (!r.ok) throw new Error(`${method} ${path} as ${nodeId}: ${r.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    },
  };
}
