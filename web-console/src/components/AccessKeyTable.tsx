// AccessKeys (all, or those bound to one instance): create with the secret shown once, enable/disable, delete.
import { useState } from 'preact/hooks';
import { Api, type AccessKey, type CreatedAccessKey, type Instance } from '../api/endpoints';
import { Badge } from './Badge';
import { Confirm } from './Confirm';
import { SecretValue } from './CopyButton';
import { DataTable } from './DataTable';
import { Field } from './Field';
import { Modal } from './Modal';
import { FormError } from './States';
import { dateTime } from '../lib/format';
import { href } from '../lib/router';
import { useAsync } from '../lib/useAsync';

export function AccessKeyTable({ instance }: { instance?: Instance }) {
  const keys = useAsync(() => Api.listAccessKeys(), []);
  const instances = useAsync(() => (instance ? Promise.resolve([instance]) : Api.listInstances()), [instance?.instanceId]);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<AccessKey | null>(null);
  const [rowError, setRowError] = useState<Error | null>(null);
  const [unbinding, setUnbinding] = useState<AccessKey | null>(null);
  const [binding, setBinding] = useState('');
  const unbound = instance ? (keys.data ?? []).filter((k) => !k.instanceIds.includes(instance.instanceId)) : [];
  const bind = async () => {
    const k = unbound.find((x) => x.accessKeyId === binding);
    if (!k || !instance) return;
    setRowError(null);
    try {
      await Api.updateAccessKey(k.accessKeyId, { instanceIds: [...k.instanceIds, instance.instanceId] });
      setBinding('');
      keys.reload();
    } catch (e) {
      setRowError(e as Error);
    }
  };
  const rows = instance ? keys.data?.filter((k) => k.instanceIds.includes(instance.instanceId)) : keys.data;
  const names = new Map((instances.data ?? []).map((i) => [i.instanceId, i.name]));

  const toggle = async (k: AccessKey) => {
    setRowError(null);
    try {
      await Api.updateAccessKey(k.accessKeyId, { enabled: !k.enabled });
      keys.reload();
    } catch (e) {
      setRowError(e as Error);
    }
  };

  return (
    <div class="stack">
      <FormError error={rowError} />
      <DataTable<AccessKey>
        label="AccessKeys"
        rows={rows}
        loading={keys.loading}
        error={keys.error}
        onRetry={keys.reload}
        rowKey={(k) => k.accessKeyId}
        filterText={(k) => `${k.accessKeyId} ${k.description} ${k.instanceIds.join(' ')}`}
        empty="Backend applications sign API calls with an AccessKey; Signature-mode clients log in with one."
        toolbar={
          <div class="toolbar-actions">
            {instance && unbound.length ? (
              <div class="input-row">
                <label for="bind-existing" class="sr-only">
                  Existing AccessKey to bind
                </label>
                <select id="bind-existing" value={binding} onChange={(e) => setBinding((e.target as HTMLSelectElement).value)}>
                  <option value="">Bind an existing AccessKey…</option>
                  {unbound.map((k) => (
                    <option value={k.accessKeyId}>
                      {k.accessKeyId}
                      {k.description ? ` (${k.description})` : ''}
                    </option>
                  ))}
                </select>
                <button type="button" class="btn" disabled={!binding} onClick={bind}>
                  Bind
                </button>
              </div>
            ) : null}
            <button type="button" class="btn primary" onClick={() => setCreating(true)}>
              Create AccessKey
            </button>
          </div>
        }
        columns={[
          { title: 'AccessKey ID', render: (k) => <strong class="mono">{k.accessKeyId}</strong> },
          { title: 'Description', render: (k) => k.description || <span class="muted">—</span> },
          { title: 'State', render: (k) => <Badge tone={k.enabled ? 'ok' : 'muted'}>{k.enabled ? 'enabled' : 'disabled'}</Badge> },
          ...(instance
            ? []
            : [
                {
                  title: 'Instances',
                  render: (k: AccessKey) =>
                    k.instanceIds.length === 0 ? (
                      <span class="muted">none</span>
                    ) : (
                      k.instanceIds.map((i) => (
                        <a class="chip" href={href(`/instances/${i}`)}>
                          {names.get(i) ?? i}
                        </a>
                      ))
                    ),
                },
              ]),
          { title: 'Created', render: (k) => dateTime(k.createdAt) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (k) => (
              <>
                {instance ? (
                  <a class="btn small" href={href(`/signature?accessKeyId=${encodeURIComponent(k.accessKeyId)}&instanceId=${instance.instanceId}`)}>
                    MQTT password
                  </a>
                ) : null}
                <button type="button" class="btn small" onClick={() => toggle(k)}>
                  {k.enabled ? 'Disable' : 'Enable'}
                </button>
                {instance ? (
                  <button type="button" class="btn small" onClick={() => setUnbinding(k)}>
                    Unbind
                  </button>
                ) : null}
                <button type="button" class="btn small danger" onClick={() => setDeleting(k)} aria-label={`Delete ${k.accessKeyId}`}>
                  Delete
                </button>
              </>
            ),
          },
        ]}
      />
      {creating ? <CreateKey instances={instances.data ?? []} fixed={instance} onClose={() => setCreating(false)} onCreated={keys.reload} /> : null}
      {unbinding && instance ? (
        <Confirm
          title="Unbind AccessKey"
          confirmLabel="Unbind"
          onClose={() => setUnbinding(null)}
          onConfirm={async () => {
            await Api.updateAccessKey(unbinding.accessKeyId, { instanceIds: unbinding.instanceIds.filter((i) => i !== instance.instanceId) });
            keys.reload();
          }}
        >
          Stop accepting <strong class="mono">{unbinding.accessKeyId}</strong> on this instance? Its clients here are disconnected; other instances keep it.
        </Confirm>
      ) : null}
      {deleting ? (
        <Confirm
          title="Delete AccessKey"
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await Api.deleteAccessKey(deleting.accessKeyId);
            keys.reload();
          }}
        >
          Delete <strong class="mono">{deleting.accessKeyId}</strong>? Applications and clients using it are refused from now on.
        </Confirm>
      ) : null}
    </div>
  );
}

function CreateKey({ instances, fixed, onClose, onCreated }: { instances: Instance[]; fixed?: Instance; onClose: () => void; onCreated: () => void }) {
  const [description, setDescription] = useState('');
  const [bound, setBound] = useState<string[]>(fixed ? [fixed.instanceId] : []);
  const [error, setError] = useState<Error | null>(null);
  const [created, setCreated] = useState<CreatedAccessKey | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await Api.createAccessKey({ description, instanceIds: bound }));
      onCreated();
    } catch (err) {
      setError(err as Error);
    }
  };
  if (created)
    return (
      <Modal title="AccessKey created" onClose={onClose}>
        <p class="notice" role="status">
          Store the secret now: it is shown only once and cannot be retrieved later.
        </p>
        <SecretValue label="AccessKey ID" value={created.accessKeyId} />
        <SecretValue label="AccessKey secret" value={created.accessKeySecret} />
        <div class="actions">
          <button type="button" class="btn primary" onClick={onClose}>
            I have stored the secret
          </button>
        </div>
      </Modal>
    );
  return (
    <Modal title="Create AccessKey" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Description" value={description} onInput={setDescription} placeholder="e.g. backend of the fleet app" />
        <fieldset>
          <legend>Usable on instances</legend>
          {instances.length === 0 ? <p class="muted">No instance yet.</p> : null}
          <div class="checklist">
            {instances.map((i) => (
              <div class="field checkbox">
                <input
                  id={`bind-${i.instanceId}`}
                  type="checkbox"
                  disabled={fixed !== undefined}
                  checked={bound.includes(i.instanceId)}
                  onChange={(e) =>
                    setBound((e.target as HTMLInputElement).checked ? [...bound, i.instanceId] : bound.filter((x) => x !== i.instanceId))
                  }
                />
                <label for={`bind-${i.instanceId}`}>
                  {i.name} <span class="muted mono">{i.instanceId}</span>
                </label>
              </div>
            ))}
          </div>
        </fieldset>
        <FormError error={error} />
        <div class="actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary">
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}
