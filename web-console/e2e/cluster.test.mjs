// Browser tests of what the console shows about a cluster: each broker's link to NATS on the brokers
// page, and an instance's usage across the brokers against its quotas, with its history per minute. The brokers of a cluster are
// played by the test, which posts heartbeats the way brokers do (fakeBroker), next to the real broker
// that scripts/dev runs alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, CONSOLE_URL, fakeBroker, launch, login, newPage, shot, uniq } from './helpers.mjs';

describe('cluster views', () => {
  let browser;
  let page;
  let up;
  let down;
  let timer;
  let instance;
  // What each played broker reports per instance (set by the usage test).
  const figures = { up: [], down: [] };

  before(async () => {
    const id = uniq();
    instance = await api('POST', '/instances', { name: `usage-${id}` });
    up = await fakeBroker(`e2e-up-${id}`);
    down = await fakeBroker(`e2e-down-${id}`);
    // Keep beating like brokers (every 2 s), so that neither falls silent during the tests.
    const beatAll = () =>
      Promise.all([up.beat({ clusterLink: true, instances: figures.up }), down.beat({ clusterLink: false, instances: figures.down })]);
    await beatAll();
    timer = setInterval(() => beatAll().catch((e) => console.error(e.message)), 2000);
    browser = await launch();
    page = await newPage(browser);
    await login(page);
  });
  after(async () => {
    clearInterval(timer);
    await browser?.close();
    await Promise.allSettled([up?.remove(), down?.remove()]);
  });

  test("the brokers page shows each broker's link to NATS", async () => {
    await page.goto(`${CONSOLE_URL}/#/brokers`);
    const table = page.getByRole('table', { name: 'brokers' });
    const row = (nodeId) => table.getByRole('row').filter({ hasText: nodeId });
    await row(up.nodeId).locator('[data-cluster-link="up"]').getByText('up', { exact: true }).waitFor();
    await row(down.nodeId).locator('[data-cluster-link="down"]').getByText('down', { exact: true }).waitFor();
    // The broker scripts/dev runs alone reports no link.
    await table.locator('[data-cluster-link="none"]').getByText('alone', { exact: true }).first().waitFor();
    await shot(page, 'cluster-01-brokers');
  });

  test("the instance page shows its usage across the brokers against its quotas, and per minute", async () => {
    const usage = (connections, subscriptions, messagesInPerSec, messagesOutPerSec, offlineMessages) => ({
      instanceId: instance.instanceId,
      connections,
      subscriptions,
      messagesInPerSec,
      messagesOutPerSec,
      offlineMessages,
    });
    figures.up = [usage(3, 4, 12.5, 20, 7)];
    // Both brokers of a cluster report the shared offline store: the largest report counts.
    figures.down = [usage(2, 1, 2.5, 0, 9)];
    await Promise.all([up.beat({ clusterLink: true, instances: figures.up }), down.beat({ clusterLink: false, instances: figures.down })]);
    await page.goto(`${CONSOLE_URL}/#/instances/${instance.instanceId}`);
    const table = page.getByRole('table', { name: 'usage' });
    const row = (label) => table.getByRole('row', { name: label });
    await row('Connections').getByText('5 / 10,000').waitFor();
    await row('Messages in per second').getByText('15 / 10,000').waitFor();
    await row('Offline messages stored').getByText('9 / 1,000,000').waitFor();
    await row('Subscriptions').getByText('5', { exact: true }).waitFor();
    await page.getByText('reported by 2 brokers').waitFor();
    const meter = page.getByRole('meter', { name: 'Connections used' });
    assert.equal(await meter.getAttribute('aria-valuenow'), '5');
    assert.equal(await meter.getAttribute('aria-valuemax'), '10000');
    // This minute's point is in the chart (its legend shows the latest minute; read again every 10 s,
    // so a minute that has just begun shows within that).
    const chart = page.locator('figure.chart').filter({ hasText: 'Connections per minute' });
    await chart.getByText('connections 5').waitFor({ timeout: 25_000 });
    assert.equal(await chart.locator('svg path').count(), 1);
    await page.getByLabel('History').selectOption({ label: 'last 24 hours' });
    await chart.getByText('connections 5').waitFor({ timeout: 25_000 });
    await shot(page, 'cluster-02-instance-usage');

    // The clients leave one broker: the page follows within its 5 s refresh.
    figures.down = [];
    await row('Connections').getByText('3 / 10,000').waitFor({ timeout: 15_000 });
  });
});
