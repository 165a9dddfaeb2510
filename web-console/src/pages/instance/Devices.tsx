// Device credentials: register a client ID (or many from a CSV file), list by group, show, refresh the
// secret, unregister.
import { useState } from 'preact/hooks';
import { Api, type DeviceCredential, type Instance } from '../../api/endpoints';
import { Confirm } from '../../components/Confirm';
import { SecretValue } from '../../components/CopyButton';
import { DataTable } from '../../components/DataTable';
import { Field, valid } from '../../components/Field';
import { Modal } from '../../components/Modal';
import { Empty, ErrorBox, FormError, Loading } from '../../components/States';
import { href } from '../../lib/router';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';
import { DeviceImport } from './DeviceImport';

export function Devices({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const groups = useAsync(() => Api.listGroups(id), [id]);
  const [group, setGroup] = useState('');
  if (groups.error) return <ErrorBox error={groups.error} onRetry={groups.reload} />;
  if (!groups.data) return <Loading />;
  if (groups.data.length === 0)
    return (
      <Empty title="No group ID yet">
        Device credentials belong to client IDs of a group: <a href={href(`/instances/${id}/groups`)}>create a group ID</a> first.
      </Empty>
    );
  const g = group || groups.data[0].groupId;
  return (
    <div class="stack">
      <div class="field narrow">
        <label for="dev-group">Group ID</label>
        <select id="dev-group" value={g} onChange={(e) => setGroup((e.target as HTMLSelectElement).value)}>
          {groups.data.map((x) => (
            <option value={x.groupId}>{x.groupId}</option>
          ))}
        </select>
      </div>
      <GroupDevices key={g} instance={instance} groupId={g} />
    </div>
  );
}

function GroupDevices({ instance, groupId }: { instance: Instance; groupId: string }) {
  const id = instance.instanceId;
  const list = useAsync(async () => {
    const all: string[] = [];
    for (let page = 1; ; page++) {
      const r = await Api.listDeviceClientIds(id, groupId, page, 100);
      all.push(...r.clientIds);
      if (r.clientIds.length < 100 || all.length >= r.total) return all;
    }
  }, [id, groupId]);
  const [device, setDevice] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [shown, setShown] = useState<{ cred: DeviceCredential; title: string } | null>(null);
  const [confirm, setConfirm] = useState<{ clientId: string; kind: 'refresh' | 'delete' } | null>(null);
  const [rowError, setRowError] = useState<Error | null>(null);
  const clientId = `${groupId}@@@${device}`;
  const checkDevice = (v: string) => rules.deviceId(v) ?? (v ? rules.clientId(`${groupId}@@@${v}`, instance.quotas.maxClientIdLength) : null);

  const register = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const cred = await Api.registerDevice(id, clientId);
      setDevice('');
      setShown({ cred, title: 'Device credential registered' });
      list.reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  const show = async (c: string) => {
    setRowError(null);
    try {
      setShown({ cred: await Api.getDevice(id, c), title: 'Device credential' });
    } catch (err) {
      setRowError(err as Error);
    }
  };

  return (
    <>
      <form class="card inline-form" onSubmit={register} aria-label="Register device credential">
        <Field label={`Device ID (client ID ${groupId}@@@…)`} value={device} onInput={setDevice} check={checkDevice} />
        <button type="submit" class="btn primary" disabled={!valid(checkDevice(device))}>
          Register
        </button>
        <FormError error={error} />
      </form>
      <DeviceImport instance={instance} groupId={groupId} onDone={list.reload} />
      <FormError error={rowError} />
      <DataTable<string>
        label="device credentials"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(c) => c}
        filterText={(c) => c}
        empty="A device credential is a per-client secret pair; clients log in with DeviceCredential|<id>|<instance>."
        columns={[
          { title: 'Client ID', render: (c) => <span class="mono">{c}</span> },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (c) => (
              <>
                <button type="button" class="btn small" onClick={() => show(c)}>
                  Show
                </button>
                <button type="button" class="btn small" onClick={() => setConfirm({ clientId: c, kind: 'refresh' })}>
                  New secret
                </button>
                <button type="button" class="btn small danger" onClick={() => setConfirm({ clientId: c, kind: 'delete' })}>
                  Unregister
                </button>
              </>
            ),
          },
        ]}
      />
      {shown ? (
        <Modal title={shown.title} onClose={() => setShown(null)}>
          <SecretValue label="Client ID" value={shown.cred.clientId} />
          <SecretValue label="DeviceAccessKeyId" value={shown.cred.deviceAccessKeyId} />
          <SecretValue label="DeviceAccessKeySecret" value={shown.cred.deviceAccessKeySecret} />
          <p class="small muted">
            Username <span class="mono">DeviceCredential|{shown.cred.deviceAccessKeyId}|{id}</span>; password Base64(HMAC-SHA1(secret, client ID)) — see
            the <a href={href('/signature')}>signature helper</a>.
          </p>
          <div class="actions">
            <button type="button" class="btn primary" onClick={() => setShown(null)}>
              Close
            </button>
          </div>
        </Modal>
      ) : null}
      {confirm ? (
        <Confirm
          title={confirm.kind === 'delete' ? 'Unregister device credential' : 'Issue a new secret'}
          confirmLabel={confirm.kind === 'delete' ? 'Unregister' : 'Issue new secret'}
          onClose={() => setConfirm(null)}
          onConfirm={async () => {
            if (confirm.kind === 'delete') {
              await Api.unregisterDevice(id, confirm.clientId);
              list.reload();
            } else {
              const cred = await Api.refreshDevice(id, confirm.clientId);
              setShown({ cred, title: 'New device secret' });
            }
          }}
        >
          {confirm.kind === 'delete' ? 'Unregister' : 'Replace the secret of'} <strong class="mono">{confirm.clientId}</strong>? The device is disconnected
          and must use {confirm.kind === 'delete' ? 'another credential' : 'the new secret'}.
        </Confirm>
      ) : null}
    </>
  );
}
