// Browser test of the Custom auth tab against the real control plane (see e2e/run): add identities of
// both types (names checked as you type, the secret never shown again, a username another instance
// has refused with the server's message), change one, add permissions and flip one to DENY, blacklist a
// client ID and take it off again. Connecting with identities is tested with MQTT clients in
// tests/e2e/custom_auth.rs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { api, CONSOLE_URL, launch, login, newPage, shot, uniq } from './helpers.mjs';

describe('custom authentication', () => {
  let browser;
  let page;
  let instanceId;
  const user = `fleet-${uniq()}`;
  const taken = `taken-${uniq()}`;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
    const inst = await api('POST', '/instances', { name: `e2e-custom-${uniq()}` });
    instanceId = inst.instanceId;
    const other = await api('POST', '/instances', { name: `e2e-custom-other-${uniq()}` });
    await api('POST', `/instances/${other.instanceId}/custom-auth/identities`, {
      username: taken,
      secret: 'x',
      identityType: 'USER',
      signMode: 'ORIGIN',
    });
    await login(page);
    await page.goto(`${CONSOLE_URL}/#/instances/${instanceId}/custom-auth`);
    await page.getByRole('heading', { name: 'Identities' }).waitFor();
  });
  after(async () => {
    await browser?.close();
  });

  test('add identities of both types; the secret is never shown again', async () => {
    const form = page.getByRole('form', { name: 'Add identity' });
    await form.getByLabel('Username').fill('a|b');
    await form.getByText('without spaces or "|"').waitFor();
    await form.getByLabel('Username').fill(user);
    await form.getByLabel('Secret').fill('s3cret-value');
    await form.getByRole('button', { name: 'Add identity' }).click();
    const table = page.getByRole('table', { name: 'identities' });
    const row = table.getByRole('row').filter({ hasText: user });
    await row.waitFor();
    assert.match(await row.innerText(), /USER[\s\S]*any[\s\S]*ORIGIN/);
    assert.equal(await page.getByText('s3cret-value').count(), 0, 'the secret is not in the page');

    await form.getByLabel('Username').fill(`${user}-pump`);
    await form.getByLabel('Secret').fill('k1');
    await form.getByLabel('Identity type').selectOption('CLIENT');
    const add = form.getByRole('button', { name: 'Add identity' });
    assert.equal(await add.isDisabled(), true, 'a CLIENT identity needs its client ID');
    await form.getByLabel('Client ID').fill('pump-1');
    await form.getByLabel('Sign mode').selectOption('SIGNED');
    await add.click();
    const pump = table.getByRole('row').filter({ hasText: `${user}-pump` });
    await pump.waitFor();
    assert.match(await pump.innerText(), /CLIENT[\s\S]*pump-1[\s\S]*SIGNED/);
    await shot(page, '40-custom-auth-identities');
  });

  test("another instance's username is refused with the server's message", async () => {
    const form = page.getByRole('form', { name: 'Add identity' });
    await form.getByLabel('Identity type').selectOption('USER');
    await form.getByLabel('Username').fill(taken);
    await form.getByLabel('Secret').fill('x');
    await form.getByRole('button', { name: 'Add identity' }).click();
    await form.getByText(`a custom identity with username "${taken}" already exists`).waitFor();
  });

  test('change an identity: new secret and sign mode', async () => {
    await page.getByRole('button', { name: `Change ${user}`, exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Change ${user}` });
    await dialog.getByLabel('New secret').fill('rotated');
    await dialog.getByLabel('Sign mode').selectOption('SIGNED');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    const row = page.getByRole('table', { name: 'identities' }).getByRole('row').filter({ hasText: user }).first();
    await row.getByText('SIGNED').waitFor();
    const stored = await api('GET', `/instances/${instanceId}/custom-auth/identities?username=${user}`);
    assert.equal(stored.identities[0].signMode, 'SIGNED');
  });

  test('permissions: add, flip to DENY, delete', async () => {
    const form = page.getByRole('form', { name: 'Add permission' });
    await form.getByLabel('Username').fill(user);
    await form.getByLabel('Topic filter').fill('sensors/#/x');
    await form.getByText('"#" must be a whole last level.').waitFor();
    await form.getByLabel('Topic filter').fill('sensors/#');
    await form.getByRole('button', { name: 'Add permission' }).click();
    const table = page.getByRole('table', { name: 'permissions' });
    const row = table.getByRole('row').filter({ hasText: 'sensors/#' });
    await row.getByText('ALLOW').waitFor();
    await row.getByRole('button', { name: 'Make DENY' }).click();
    await row.getByText('DENY', { exact: true }).waitFor();
    const stored = await api('GET', `/instances/${instanceId}/custom-auth/permissions`);
    assert.deepEqual(
      stored.permissions.map((p) => [p.identity, p.topic, p.permitAction, p.effect]),
      [[user, 'sensors/#', 'PUB_SUB', 'DENY']],
    );
    await shot(page, '41-custom-auth-permissions');
    await page.getByRole('button', { name: `Delete permission ${user} sensors/#` }).click();
    await page.getByRole('dialog', { name: 'Delete permission' }).getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached' });
  });

  test('blacklist a client ID and take it off again', async () => {
    const form = page.getByRole('form', { name: 'Blacklist client ID' });
    await form.getByLabel('Client ID').fill('stolen/1');
    await form.getByText('No "/", "+", "#"').waitFor();
    await form.getByLabel('Client ID').fill('stolen-1');
    await form.getByRole('button', { name: 'Blacklist' }).click();
    const table = page.getByRole('table', { name: 'blacklisted client IDs' });
    await table.getByText('stolen-1').waitFor();
    await page.getByRole('button', { name: 'Remove stolen-1' }).click();
    await page.getByRole('dialog', { name: 'Remove from the blacklist' }).getByRole('button', { name: 'Remove' }).click();
    await table.getByText('stolen-1').waitFor({ state: 'detached' });
    const stored = await api('GET', `/instances/${instanceId}/custom-auth/connect-blacklist`);
    assert.deepEqual(stored.entries, []);
  });
});
