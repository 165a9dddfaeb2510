// Browser test of the Rules page against the real control plane (see e2e/run): create a rule (a server
// field error shown next to its field first), its secret never in the page, figures from a broker's
// heartbeat in the list, disable/enable, "Test target" answered by a broker, dead letters, delete.
// The broker is played through the real broker-sync endpoints (helpers.fakeBroker): it reports with
// the newest configuration version, so TestRule picks it over the system's own broker.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, CONSOLE_URL, fakeBroker, launch, login, newPage, shot, uniq } from './helpers.mjs';

const SECRET = 'e2e-signing-secret-0123';

describe('rules', () => {
  let browser;
  let page;
  let instanceId;
  let broker;
  let ruleId;
  const ruleName = 'to backend';

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    const inst = await api('POST', '/instances', { name: `e2e-rules-${uniq()}` });
    instanceId = inst.instanceId;
    await api('POST', `/instances/${instanceId}/topics`, { topic: 'sensors' });
    await api('POST', `/instances/${instanceId}/groups`, { groupId: 'GID_rules' });
    broker = await fakeBroker(`e2e-rules-${uniq()}`);
    await login(page);
  });
  after(async () => {
    await broker?.remove().catch(() => {});
    await browser?.close();
  });

  /** A heartbeat ahead of every real broker's configuration, with `rules` figures. */
  const beat = async (rules = []) => {
    const { currentVersion } = await api('GET', '/brokers');
    await broker.beat({ appliedVersion: currentVersion + 1_000_000, rules });
  };
  const row = () => page.getByRole('table', { name: 'rules' }).getByRole('row').filter({ hasText: ruleName });

  test('create a rule; the server names the wrong field', async () => {
    await page.goto(`${CONSOLE_URL}/#/instances/${instanceId}/rules`);
    await page.getByText('No rules yet').waitFor();
    await page.getByRole('button', { name: 'Create rule' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create rule' });
    await dialog.getByLabel('Name').fill(ruleName);
    await dialog.getByLabel('Topic filters').fill('sensors/+/up, sensors/#');
    await dialog.getByLabel('Group IDs (optional)').fill('GID_rules');
    await dialog.getByLabel('Webhook URL').fill('ftp://hooks.example.com/in');
    await dialog.getByLabel('Signing secret').fill(SECRET);
    await dialog.getByRole('button', { name: 'Create' }).click();
    // The error sits under the URL field (the server's `target.url`).
    await dialog.locator('.field.invalid').filter({ hasText: 'Webhook URL' }).getByText('http:// or https://').first().waitFor();
    await shot(page, 'rules-01-field-error');
    await dialog.getByLabel('Webhook URL').fill('https://hooks.example.com/in');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await row().waitFor();
    await row().getByText('Enabled').waitFor();
    const { rules } = await api('GET', `/instances/${instanceId}/rules`);
    assert.equal(rules.length, 1);
    ruleId = rules[0].ruleId;
    assert.equal(rules[0].target.hasSecret, true);
    assert.deepEqual(rules[0].source.topicFilters, ['sensors/+/up', 'sensors/#']);
    // Write-only: the secret is in no answer, hence nowhere in the page.
    assert.ok(!(await page.content()).includes(SECRET));
    await shot(page, 'rules-02-created');
  });

  test('figures from the brokers show in the list', async () => {
    await beat([
      {
        ruleId,
        instanceId,
        matched: 987,
        delivered: 953,
        failed: 7,
        dropped: 0,
        deadLettered: 1,
        queued: 34,
        queuedBytes: 3400,
        overflowing: true,
        lastError: 'HTTP 503 from hooks.example.com',
        lastErrorAtMs: Date.now() - 5000,
      },
    ]);
    await page.reload();
    await row().getByRole('cell', { name: '987', exact: true }).waitFor();
    await row().getByText('Overflowing').waitFor();
    await row().getByText('HTTP 503 from hooks.example.com').waitFor();
    await shot(page, 'rules-03-status');
  });

  test('disable and enable', async () => {
    await page.getByRole('button', { name: `Disable ${ruleName}` }).click();
    await row().getByText('Disabled').waitFor();
    assert.equal((await api('GET', `/instances/${instanceId}/rules/${ruleId}`)).enabled, false);
    await page.getByRole('button', { name: `Enable ${ruleName}` }).click();
    await row().getByText('Enabled').waitFor();
  });

  test('edit keeps the secret unless removed', async () => {
    await page.getByRole('button', { name: `Edit ${ruleName}` }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit rule' });
    assert.equal(await dialog.getByLabel('Signing secret').inputValue(), '');
    await dialog.getByLabel('Timeout (ms)').fill('3000');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const rule = await api('GET', `/instances/${instanceId}/rules/${ruleId}`);
    assert.equal(rule.target.timeoutMs, 3000);
    assert.equal(rule.target.hasSecret, true);
  });

  test('test the target: a broker answers and the console shows it', async () => {
    await beat();
    const { latestSeq } = await broker.sync('GET', '/commands');
    // The broker's side: wait (at most three 10 s polls) for the TestRule command and answer it.
    const answered = (async () => {
      for (let i = 0, after = latestSeq; i < 3; i++) {
        const batch = await broker.sync('GET', `/commands?after=${after}&waitSecs=10`);
        after = batch.latestSeq;
        const cmd = batch.commands.map((c) => c.command).find((c) => c.kind === 'testRule');
        if (!cmd) continue;
        assert.equal(cmd.ruleId, ruleId);
        assert.equal(cmd.nodeId, broker.nodeId);
        await broker.sync('POST', '/command-results', {
          requestId: cmd.requestId,
          nodeId: broker.nodeId,
          delivered: false,
          status: 401,
          latencyMs: 87,
          error: 'HTTP 401 from https://hooks.example.com/in',
        });
        return;
      }
      throw new Error('no testRule command reached the broker');
    })();
    await page.getByRole('button', { name: `Test target of ${ruleName}` }).click();
    const result = page.getByTestId('rule-test-result');
    await result.getByText('Not delivered').waitFor();
    await answered;
    await result.getByText('401', { exact: true }).waitFor();
    await result.getByText('HTTP 401 from https://hooks.example.com/in').waitFor();
    await result.getByText(broker.nodeId).waitFor();
    await shot(page, 'rules-04-test-result');
    await page.getByRole('dialog', { name: 'Test target' }).getByRole('button', { name: 'Close', exact: true }).last().click();
  });

  test('dead letters', async () => {
    await broker.sync('POST', '/dead-letters', {
      bootId: 'e2e',
      letters: [
        { ruleId, instanceId, atMs: Date.now(), status: 400, error: 'HTTP 400: bad payload', topic: 'sensors/t1/up', clientId: 'GID_rules@@@t1' },
      ],
    });
    await page.getByRole('button', { name: `Dead letters of ${ruleName}` }).click();
    const table = page.getByRole('table', { name: 'dead letters' });
    await table.getByText('HTTP 400: bad payload').waitFor();
    await table.getByText('GID_rules@@@t1').waitFor();
    await shot(page, 'rules-05-dead-letters');
    await page.keyboard.press('Escape');
  });

  test('delete', async () => {
    await page.getByRole('button', { name: `Delete ${ruleName}` }).click();
    await page.getByRole('dialog', { name: 'Delete rule' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No rules yet').waitFor();
    assert.deepEqual((await api('GET', `/instances/${instanceId}/rules`)).rules, []);
  });
});
