// Browser tests of the console against a real control plane and PostgreSQL (see e2e/run): one operator
// walks through login, instance, parent topic, group ID, AccessKey (secret shown once) and a token.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, login, newPage, shot, uniq } from './helpers.mjs';

describe('operator console', () => {
  let browser;
  let page;
  const name = `e2e-${uniq()}`;
  let instanceId;

  before(async () => {
    browser = await launch();
    page = await newPage(browser);
  });
  after(async () => {
    await browser?.close();
  });

  test('wrong password shows the server message, right one logs in', async () => {
    await page.goto(process.env.CONSOLE_URL + '/');
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    await shot(page, '01-login-error');
    await login(page);
    await page.getByTestId('instances-count').waitFor();
    await shot(page, '02-overview');
    // The session is an HttpOnly cookie: nothing a script can read holds it.
    const readable = await page.evaluate(() => document.cookie + JSON.stringify(localStorage) + JSON.stringify(sessionStorage));
    assert.ok(!readable.includes('mqtt_console_session') && !/eyJ[\w-]+\.[\w-]+\./.test(readable), readable);
    // A reload keeps the session (the console asks the control plane for it).
    await page.reload();
    await page.getByTestId('instances-count').waitFor();
  });

  test('create an instance (name checked as you type)', async () => {
    await page.getByRole('link', { name: 'Instances' }).first().click();
    await page.getByRole('button', { name: 'Create instance' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create instance' });
    await dialog.getByLabel('Name').fill('a!');
    await dialog.getByText('Only letters, digits').waitFor();
    assert.equal(await dialog.getByRole('button', { name: 'Create' }).isDisabled(), true);
    await shot(page, '03-instance-invalid-name');
    await dialog.getByLabel('Name').fill(name);
    await dialog.getByLabel('Description').fill('created by the browser test');
    await dialog.getByLabel('Max connections').fill('500');
    await dialog.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { name }).waitFor();
    instanceId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
    assert.match(instanceId, /^mqtt-[a-z0-9]{12}$/);
    await page.getByRole('heading', { name: 'Endpoints' }).waitFor();
    assert.ok(await page.getByRole('table', { name: 'quotas' }).getByText('500').isVisible());
    await shot(page, '04-instance-detail');
  });

  test('the server error shows when it disagrees (duplicate instance name)', async () => {
    await page.getByRole('link', { name: 'Instances' }).first().click();
    await page.getByRole('table', { name: 'instances' }).getByText(name).waitFor();
    await page.getByRole('button', { name: 'Create instance' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create instance' });
    await dialog.getByLabel('Name').fill(name.toUpperCase());
    await dialog.getByRole('button', { name: 'Create' }).click();
    await dialog.getByRole('alert').filter({ hasText: /exist|taken|already/i }).waitFor();
    await shot(page, '05-instance-duplicate');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  test('create a parent topic', async () => {
    await page.goto(`${process.env.CONSOLE_URL}/#/instances/${instanceId}/topics`);
    await page.getByRole('textbox', { name: 'Parent topic', exact: true }).fill('bad/topic');
    await page.getByText('no "/"').waitFor();
    await page.getByRole('textbox', { name: 'Parent topic', exact: true }).fill('sensors');
    await page.getByRole('button', { name: 'Create topic' }).click();
    await page.getByRole('table', { name: 'parent topics' }).getByText('sensors').waitFor();
    await shot(page, '06-topics');
  });

  test('create a group ID', async () => {
    await page.getByRole('link', { name: 'Group IDs' }).click();
    await page.getByRole('textbox', { name: 'Group ID', exact: true }).fill('GRP_x');
    await page.getByText('Must start with "GID_" or "GID-"').waitFor();
    await page.getByRole('textbox', { name: 'Group ID', exact: true }).fill('GID_e2e');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('table', { name: 'group IDs' }).getByText('GID_e2e').waitFor();
    await shot(page, '07-groups');
  });

  test('import group IDs from a CSV file', async () => {
    const form = page.getByRole('form', { name: 'Import group IDs' });
    // A header, two new groups (one description with a comma), one that exists, a bad name.
    const csv = 'groupId,description\nGID_zone1,first\n"GID_zone2","with, comma"\nGID_e2e\nbad\n';
    await form.getByLabel(/^Import from CSV/).setInputFiles({ name: 'groups.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await form.getByRole('button', { name: 'Import', exact: true }).click();
    await form.getByRole('status', { name: 'Import result' }).getByText('2 created, 2 failed.').waitFor();
    const failures = await form.getByRole('list', { name: 'Import failures' }).innerText();
    assert.match(failures, /GID_e2e: group ID "GID_e2e" already exists/);
    assert.match(failures, /bad: groupId: /);
    const table = page.getByRole('table', { name: 'group IDs' });
    await table.getByText('GID_zone2').waitFor();
    await table.getByText('with, comma').waitFor();
    await shot(page, '07b-groups-imported');
  });

  test('create an AccessKey: the secret is shown once', async () => {
    await page.getByRole('link', { name: 'AccessKeys' }).last().click();
    await page.getByRole('button', { name: 'Create AccessKey' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create AccessKey' });
    await dialog.getByLabel('Description').fill('e2e backend');
    assert.equal(await dialog.getByRole('checkbox').first().isChecked(), true);
    await dialog.getByRole('button', { name: 'Create' }).click();
    const created = page.getByRole('dialog', { name: 'AccessKey created' });
    const akId = await created.getByLabel('AccessKey ID').inputValue();
    const secret = await created.getByLabel('AccessKey secret').inputValue();
    assert.ok(akId.length > 8, akId);
    assert.ok(secret.length >= 20, 'secret shown');
    await created.getByRole('button', { name: 'Copy' }).last().click();
    await created.getByText('Copied').waitFor();
    await shot(page, '08-accesskey-secret');
    await created.getByRole('button', { name: 'I have stored the secret' }).click();
    const table = page.getByRole('table', { name: 'AccessKeys' });
    await table.getByText(akId).waitFor();
    assert.equal(await page.getByText(secret).count(), 0, 'the secret is not shown again');
    await shot(page, '09-accesskeys');
  });

  test('apply a token with the resource picker, then query it', async () => {
    await page.getByRole('link', { name: 'Tokens' }).click();
    const form = page.getByRole('form', { name: 'Apply for a token' });
    await form.getByText('sensors/#', { exact: true }).click();
    await form.getByLabel('Other topic or filter').fill('nope/x');
    await form.getByText('is not a parent topic').waitFor();
    await form.getByLabel('Other topic or filter').fill('sensors/room/+');
    await form.getByRole('button', { name: 'Add' }).click();
    await form.getByLabel('Actions').selectOption('R');
    await form.getByLabel('Expires in').selectOption('86400');
    await form.getByRole('button', { name: 'Apply token' }).click();
    const token = await form.getByLabel('Token').inputValue();
    assert.ok(token.split('.').length === 3, 'a JWT');
    await shot(page, '10-token-applied');
    const query = page.getByRole('form', { name: 'Query a token' });
    await query.getByLabel('Token').fill(token);
    await query.getByRole('button', { name: 'Query' }).click();
    await query.getByText('valid', { exact: true }).waitFor();
    const revoke = page.getByRole('form', { name: 'Revoke a token' });
    await revoke.getByLabel('Token').fill(token);
    await revoke.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog', { name: 'Revoke token' }).getByRole('button', { name: 'Revoke' }).click();
    await revoke.getByText('Revoked.').waitFor();
    await query.getByRole('button', { name: 'Query' }).click();
    await query.getByText('revoked', { exact: true }).waitFor();
    await shot(page, '11-token-revoked');
  });

  test('register a device credential and read its secret', async () => {
    await page.getByRole('link', { name: 'Device credentials' }).click();
    await page.getByLabel('Group ID', { exact: true }).waitFor();
    const device = page.getByRole('textbox', { name: /^Device ID/ });
    await device.fill('bad id');
    await page.getByText('Only letters, digits').waitFor();
    await device.fill('dev1');
    await page.getByRole('button', { name: 'Register' }).click();
    const dialog = page.getByRole('dialog', { name: 'Device credential registered' });
    assert.match(await dialog.getByLabel('DeviceAccessKeyId').inputValue(), /^DC\./);
    assert.match(await dialog.getByLabel('DeviceAccessKeySecret').inputValue(), /^DC\./);
    await shot(page, '12a-device-credential');
    await dialog.getByRole('button', { name: 'Close' }).last().click();
    await page.getByRole('table', { name: 'device credentials' }).getByText('GID_e2e@@@dev1').waitFor();
  });

  test('import device credentials from a CSV file and download the new secrets', async () => {
    const form = page.getByRole('form', { name: 'Import device credentials' });
    // A header, bare device IDs (joined to the chosen group), a full client ID, one that exists, a bad one.
    const csv = 'clientId\r\ndev2\r\n"GID_e2e@@@dev3",extra\r\ndev1\r\nbad id\r\n\r\n';
    await form.getByLabel(/^Import from CSV/).setInputFiles({ name: 'devices.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await form.getByRole('button', { name: 'Import', exact: true }).click();
    const result = form.getByRole('status', { name: 'Import result' });
    await result.getByText('2 registered, 2 failed.').waitFor();
    const failures = await form.getByRole('list', { name: 'Import failures' }).innerText();
    assert.match(failures, /GID_e2e@@@dev1: client ID "GID_e2e@@@dev1" already has a device credential/);
    assert.match(failures, /GID_e2e@@@bad id: clientId: /);
    await shot(page, '12a2-device-import');
    const [download] = await Promise.all([page.waitForEvent('download'), result.getByRole('button', { name: 'Download credentials (CSV)' }).click()]);
    const fs = await import('node:fs/promises');
    const rows = (await fs.readFile(await download.path(), 'utf8')).trim().split('\r\n');
    assert.equal(rows[0], 'clientId,deviceAccessKeyId,deviceAccessKeySecret');
    assert.deepEqual(
      rows.slice(1).map((r) => r.split(',')[0]),
      ['GID_e2e@@@dev2', 'GID_e2e@@@dev3'],
    );
    for (const r of rows.slice(1)) assert.match(r, /,DC\.[^,]+,DC\.[^,]+$/);
    const table = page.getByRole('table', { name: 'device credentials' });
    await table.getByText('GID_e2e@@@dev2').waitFor();
    await table.getByText('GID_e2e@@@dev3').waitFor();
  });

  test('deleting asks for confirmation first', async () => {
    await page.getByRole('link', { name: 'Parent topics' }).click();
    const table = page.getByRole('table', { name: 'parent topics' });
    await page.getByRole('textbox', { name: 'Parent topic', exact: true }).fill('scratch');
    await page.getByRole('button', { name: 'Create topic' }).click();
    await table.getByText('scratch').waitFor();
    await page.getByRole('button', { name: 'Delete scratch' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete parent topic' });
    await shot(page, '12b-delete-confirm');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await table.getByText('scratch').count(), 1, 'cancel keeps it');
    await page.getByRole('button', { name: 'Delete scratch' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await table.getByText('scratch').waitFor({ state: 'detached' });
    await page.getByPlaceholder('Filter parent topics…').fill('sens');
    await table.getByText('sensors').waitFor();
  });

  test('edit the instance', async () => {
    await page.getByRole('link', { name: 'Overview' }).last().click();
    await page.getByRole('button', { name: 'Edit' }).click();
    const dialog = page.getByRole('dialog', { name: `Edit ${name}` });
    await dialog.getByLabel('Description').fill('edited by the browser test');
    await dialog.getByLabel('Max connections').fill('0');
    await dialog.getByText('A whole number of at least 1.').waitFor();
    await dialog.getByLabel('Max connections').fill('800');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await page.getByText('edited by the browser test').waitFor();
    await page.getByRole('table', { name: 'quotas' }).getByText('800').waitFor();
    await shot(page, '12c-instance-edited');
  });

  test('signature helper computes the MQTT password in the page', async () => {
    await page.getByRole('link', { name: 'Signature helper' }).click();
    await page.getByLabel('AccessKey ID').fill('LTAI-example');
    await page.getByLabel('Instance ID').fill(instanceId);
    await page.getByLabel('AccessKey secret').fill('secret');
    await page.getByLabel('Client ID', { exact: true }).first().fill('GID_e2e@@@dev1');
    // Base64(HMAC-SHA1("secret", "GID_e2e@@@dev1")), computed independently below.
    const { createHmac } = await import('node:crypto');
    const want = createHmac('sha1', 'secret').update('GID_e2e@@@dev1').digest('base64');
    await page.waitForFunction((w) => document.querySelector('#out-password')?.value === w, want);
    assert.equal(await page.locator('#out-username').inputValue(), `Signature|LTAI-example|${instanceId}`);
    await shot(page, '12-signature-helper');
  });

  test('a phone-sized screen stacks the layout', async () => {
    const phone = await newPage(browser, { width: 390, height: 844 });
    await login(phone);
    await phone.goto(`${process.env.CONSOLE_URL}/#/instances`);
    await phone.getByRole('table', { name: 'instances' }).getByText(name).waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `no horizontal scroll on a phone (overflow ${overflow}px)`);
    await shot(phone, '13-phone-instances');
    await phone.context().close();
  });
});
