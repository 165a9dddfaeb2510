// Browser tests that need a broker linked to the control plane: broker status, an online client
// connected by the test (MQTT.js with a Signature password) looked up in the console, a message sent
// from the console, and the kick. The MQTT endpoint is $MQTT_URL (e2e/run takes it from the `mqtt=`
// field of scripts/dev's READY line), else the instance's first endpoint.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import mqtt from 'mqtt';
import { api, CONSOLE_URL, launch, login, newPage, shot, uniq } from './helpers.mjs';

const until = async (what, fn, ms = 20_000) => {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
};

describe('live broker views', () => {
  let browser;
  let page;
  let instance;
  let ak;
  let client;
  const clientId = `GID_live@@@dev-${uniq()}`;
  const received = [];

  before(async () => {
    instance = await api('POST', '/instances', { name: `live-${uniq()}` });
    await api('POST', `/instances/${instance.instanceId}/topics`, { topic: 'live' });
    await api('POST', `/instances/${instance.instanceId}/groups`, { groupId: 'GID_live' });
    ak = await api('POST', '/access-keys', { description: 'live e2e', instanceIds: [instance.instanceId] });
    browser = await launch();
    page = await newPage(browser);
    await login(page);
  });
  after(async () => {
    client?.end(true);
    await browser?.close();
  });

  test('brokers page shows a broker in sync', async () => {
    await page.goto(`${CONSOLE_URL}/#/brokers`);
    const table = page.getByRole('table', { name: 'brokers' });
    await table.getByText('in sync').first().waitFor({ timeout: 30_000 });
    await shot(page, 'live-01-brokers');
    await page.goto(`${CONSOLE_URL}/#/`);
    await until('overview counts', async () => Number(await page.locator('.stat.ok .stat-value').textContent()) >= 1);
    await page.waitForTimeout(4500); // a few samples for the charts
    await shot(page, 'live-02-overview');
  });

  test('an online client is found with its subscriptions, and receives a message sent from the console', async () => {
    const url = process.env.MQTT_URL ?? instance.endpoints[0];
    const password = createHmac('sha1', ak.accessKeySecret).update(clientId).digest('base64');
    // The new instance reaches the broker in its next snapshot: retry until CONNACK accepts us.
    client = await until(
      'the broker to accept the Signature login',
      () =>
        new Promise((resolve, reject) => {
          const c = mqtt.connect(url, {
            clientId,
            username: `Signature|${ak.accessKeyId}|${instance.instanceId}`,
            password,
            protocolVersion: 4,
            reconnectPeriod: 0,
            connectTimeout: 5000,
          });
          c.once('connect', () => resolve(c));
          c.once('error', (e) => (c.end(true), reject(e)));
          c.once('close', () => reject(new Error('closed before CONNACK')));
        }),
      30_000,
    );
    client.on('message', (topic, payload) => received.push(`${topic} ${payload}`));
    await client.subscribeAsync('live/#', { qos: 1 });

    await page.goto(`${CONSOLE_URL}/#/instances/${instance.instanceId}/clients`);
    await page.getByLabel('Client ID (up to 10, separated by commas)').fill(clientId);
    const card = page.locator(`.client-card[data-client-id="${clientId}"]`);
    await until('the client online with its subscription', async () => {
      await page.getByRole('button', { name: 'Look up' }).click();
      await card.waitFor({ timeout: 3000 });
      return (await card.getByText('online').count()) > 0 && (await card.getByText('live/#').count()) > 0;
    });
    await shot(page, 'live-03-online-client');

    await page.getByRole('link', { name: 'Send message' }).click();
    await page.getByLabel('Topic', { exact: true }).fill('live/console');
    await page.getByLabel('Payload (UTF-8 text)').fill('hello from the console');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.getByRole('status').getByText('live/console').waitFor();
    await until('the message at the client', () => received.includes('live/console hello from the console'), 10_000);
    await shot(page, 'live-04-sent');

    // Its trace: published by the backend, pushed to the client (the broker writes records every 100 ms).
    await page.getByRole('status').getByRole('link', { name: 'trace' }).first().click();
    const trace = page.getByRole('table', { name: 'message trace' });
    await until('the message trace to show the push to the client', async () => {
      await page.getByRole('button', { name: 'Search' }).click();
      await page.getByRole('button', { name: 'Search' }).waitFor();
      return (await trace.getByText(clientId).count()) > 0;
    });
    await trace.getByText('pub_mq').waitFor();
    await trace.getByText('sub', { exact: true }).waitFor();
    await shot(page, 'live-04b-message-trace');
  });

  test('kick closes the client connection', async () => {
    assert.ok(client, 'needs the client connected by the previous test');
    const closed = new Promise((resolve) => client.once('close', resolve));
    await page.getByRole('link', { name: 'Online clients' }).click();
    await page.getByLabel('Client ID (up to 10, separated by commas)').fill(clientId);
    await page.getByRole('button', { name: 'Look up' }).click();
    const card = page.locator(`.client-card[data-client-id="${clientId}"]`);
    await card.getByRole('button', { name: 'Kick' }).click();
    await page.getByRole('dialog', { name: 'Kick client' }).getByRole('button', { name: 'Kick' }).click();
    await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('the client was not disconnected')), 10_000))]);
    await until('the console to show the client offline', async () => {
      await page.getByRole('button', { name: 'Look up' }).click();
      return (await card.getByText('offline', { exact: true }).count()) > 0;
    });
    await card.getByRole('button', { name: 'Show connection history' }).click();
    await card.getByRole('table', { name: 'connection history' }).getByText('tcpclean').first().waitFor();
    // Why it ended, as the broker reported it.
    await card.getByRole('table', { name: 'connection history' }).getByText('closed by server').waitFor();
    await shot(page, 'live-05-kicked');
    assert.ok(client.disconnected || !client.connected);
  });
});
