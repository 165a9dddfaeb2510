// Browser tests of what the console shows about a cluster: each broker's link to NATS on the brokers
// page, and an instance's usage against its quotas with its history. The brokers of a cluster are
// played by the test, which posts heartbeats the way brokers do (fakeBroker), next to the real broker
// that scripts/dev runs alone.
import { after, before, describe, test } from 'node:test';
import { api, CONSOLE_URL, fakeBroker, launch, login, newPage, shot, uniq } from './helpers.mjs';

describe('cluster views', () => {
  let browser;
  let page;
  let up;
  let down;
  let timer;

  before(async () => {
    const id = uniq();
    up = await fakeBroker(`e2e-up-${id}`);
    down = await fakeBroker(`e2e-down-${id}`);
    // Keep beating like brokers (every 2 s), so that neither falls silent during the tests.
    const beatAll = () => Promise.all([up.beat({ clusterLink: true }), down.beat({ clusterLink: false })]);
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
});
