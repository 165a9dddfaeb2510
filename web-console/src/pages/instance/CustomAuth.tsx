// Custom authentication (docs/custom-auth.md): identities that connect with their own username and
// secret, their topic permissions, and the connect blacklist of client IDs.
import { useState } from 'preact/hooks';
import { Api, type CustomAuthIdentity, type CustomAuthPermission, type ConnectBlacklistEntry, type Instance } from '../../api/endpoints';
import { Confirm } from '../../components/Confirm';
import { DataTable } from '../../components/DataTable';
import { Field, valid } from '../../components/Field';
import { Modal } from '../../components/Modal';
import { FormError } from '../../components/States';
import { dateTime } from '../../lib/format';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';

type IdentityType = CustomAuthIdentity['identityType'];
type SignMode = CustomAuthIdentity['signMode'];
type PermitAction = CustomAuthPermission['permitAction'];
type Effect = CustomAuthPermission['effect'];

/** A labelled select over fixed values. */
function Choice<T extends string>(p: { id: string; label: string; value: T; options: [T, string][]; onChange: (v: T) => void }) {
  return (
    <div class="field">
      <label for={p.id}>{p.label}</label>
      <select id={p.id} value={p.value} onChange={(e) => p.onChange((e.target as HTMLSelectElement).value as T)}>
        {p.options.map(([v, text]) => (
          <option value={v}>{text}</option>
        ))}
      </select>
    </div>
  );
}

/**
 * An add form: `submit(save, reset)` is its submit handler. After `save` succeeds, `reset` empties the
 * fields, the form gets a new key (so they start untouched rather than saying "Required.") and the list
 * is read again; a failure is shown in `error`.
 */
function useAddForm(reload: () => void) {
  const [error, setError] = useState<Error | null>(null);
  const [formKey, setFormKey] = useState(0);
  const submit = (save: () => Promise<unknown>, reset: () => void) => async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await save();
      reset();
      setFormKey((k) => k + 1);
      reload();
    } catch (err) {
      setError(err as Error);
    }
  };
  return { error, formKey, submit };
}

const TYPES: [IdentityType, string][] = [
  ['USER', 'USER (any client ID)'],
  ['CLIENT', 'CLIENT (one client ID)'],
];
const MODES: [SignMode, string][] = [
  ['ORIGIN', 'ORIGIN (the secret)'],
  ['SIGNED', 'SIGNED (HMAC-SHA1)'],
];

export function CustomAuth({ instance }: { instance: Instance }) {
  return (
    <div class="stack">
      <p class="muted small">
        Clients connect with an identity's username alone (no mode prefix, no instance id); usernames are unique across the service. A client may
        publish and subscribe only where its permissions allow; a matching DENY wins.
      </p>
      <h2>Identities</h2>
      <Identities instance={instance} />
      <h2>Permissions</h2>
      <Permissions instance={instance} />
      <h2>Connect blacklist</h2>
      <Blacklist instance={instance} />
    </div>
  );
}

function Identities({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const maxClientId = instance.quotas.maxClientIdLength;
  const list = useAsync(() => Api.listCustomIdentities(id), [id]);
  const [username, setUsername] = useState('');
  const [secret, setSecret] = useState('');
  const [type, setType] = useState<IdentityType>('USER');
  const [clientId, setClientId] = useState('');
  const [mode, setMode] = useState<SignMode>('ORIGIN');
  const [editing, setEditing] = useState<CustomAuthIdentity | null>(null);
  const [deleting, setDeleting] = useState<CustomAuthIdentity | null>(null);
  const { error, formKey, submit } = useAddForm(list.reload);
  const clientCheck = (v: string) => (type === 'CLIENT' ? rules.anyClientId(v, maxClientId) : null);
  const add = submit(
    () => Api.addCustomIdentity(id, { username, secret, identityType: type, signMode: mode, clientId: type === 'CLIENT' ? clientId : null }),
    () => {
      setUsername('');
      setSecret('');
      setClientId('');
    },
  );

  return (
    <>
      <form key={formKey} class="card inline-form" onSubmit={add} aria-label="Add identity">
        <Field label="Username" value={username} onInput={setUsername} check={rules.customUsername} autocomplete="off" />
        <Field label="Secret" type="password" value={secret} onInput={setSecret} check={rules.customSecret} autocomplete="new-password" />
        <Choice id="ca-type" label="Identity type" value={type} options={TYPES} onChange={setType} />
        {type === 'CLIENT' ? <Field label="Client ID" value={clientId} onInput={setClientId} check={clientCheck} /> : null}
        <Choice id="ca-mode" label="Sign mode" value={mode} options={MODES} onChange={setMode} />
        <button
          type="submit"
          class="btn primary"
          disabled={!valid(rules.customUsername(username), rules.customSecret(secret), clientCheck(clientId))}
        >
          Add identity
        </button>
        <FormError error={error} />
      </form>
      <DataTable<CustomAuthIdentity>
        label="identities"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(i) => i.username}
        filterText={(i) => `${i.username} ${i.clientId ?? ''}`}
        empty="No identity yet: add one to let devices connect with their own username and secret."
        columns={[
          { title: 'Username', render: (i) => <strong class="mono">{i.username}</strong> },
          { title: 'Type', render: (i) => i.identityType },
          { title: 'Client ID', render: (i) => (i.clientId ? <span class="mono">{i.clientId}</span> : <span class="muted">any</span>) },
          { title: 'Sign mode', render: (i) => i.signMode },
          { title: 'Updated', render: (i) => dateTime(i.updatedAt) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (i) => (
              <>
                <button type="button" class="btn small" onClick={() => setEditing(i)} aria-label={`Change ${i.username}`}>
                  Change
                </button>
                <button type="button" class="btn small danger" onClick={() => setDeleting(i)} aria-label={`Delete ${i.username}`}>
                  Delete
                </button>
              </>
            ),
          },
        ]}
      />
      {editing ? <EditIdentity instance={instance} identity={editing} onClose={() => setEditing(null)} onSaved={list.reload} /> : null}
      {deleting ? (
        <Confirm
          title="Delete identity"
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await Api.deleteCustomIdentity(id, deleting.username);
            list.reload();
          }}
        >
          Delete <strong class="mono">{deleting.username}</strong>? Clients connected with it are disconnected.
        </Confirm>
      ) : null}
    </>
  );
}

/** A new secret (and type, client ID, sign mode) for an identity; the old secret is never shown. */
function EditIdentity(p: { instance: Instance; identity: CustomAuthIdentity; onClose: () => void; onSaved: () => void }) {
  const [secret, setSecret] = useState('');
  const [type, setType] = useState<IdentityType>(p.identity.identityType);
  const [clientId, setClientId] = useState(p.identity.clientId ?? '');
  const [mode, setMode] = useState<SignMode>(p.identity.signMode);
  const [error, setError] = useState<Error | null>(null);
  const clientCheck = (v: string) => (type === 'CLIENT' ? rules.anyClientId(v, p.instance.quotas.maxClientIdLength) : null);
  const save = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await Api.updateCustomIdentity(p.instance.instanceId, p.identity.username, {
        secret,
        identityType: type,
        signMode: mode,
        clientId: type === 'CLIENT' ? clientId : null,
      });
      p.onSaved();
      p.onClose();
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <Modal title={`Change ${p.identity.username}`} onClose={p.onClose}>
      <form class="stack" onSubmit={save} aria-label="Change identity">
        <Field label="New secret" type="password" value={secret} onInput={setSecret} check={rules.customSecret} autocomplete="new-password" />
        <Choice id="ca-edit-type" label="Identity type" value={type} options={TYPES} onChange={setType} />
        {type === 'CLIENT' ? <Field label="Client ID" value={clientId} onInput={setClientId} check={clientCheck} /> : null}
        <Choice id="ca-edit-mode" label="Sign mode" value={mode} options={MODES} onChange={setMode} />
        <p class="small muted">Clients connected with the old settings are disconnected.</p>
        <FormError error={error} />
        <div class="actions">
          <button type="button" class="btn" onClick={p.onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={!valid(rules.customSecret(secret), clientCheck(clientId))}>
            Save
          </button>
        </div>
      </form>
    </Modal>
  );
}

const permissionKey = (p: CustomAuthPermission) => `${p.identityType}\u0000${p.identity}\u0000${p.topic}`;

function Permissions({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const list = useAsync(() => Api.listCustomPermissions(id), [id]);
  const [identityType, setIdentityType] = useState<IdentityType>('USER');
  const [identity, setIdentity] = useState('');
  const [topic, setTopic] = useState('');
  const [action, setAction] = useState<PermitAction>('PUB_SUB');
  const [effect, setEffect] = useState<Effect>('ALLOW');
  const [rowError, setRowError] = useState<Error | null>(null);
  const [deleting, setDeleting] = useState<CustomAuthPermission | null>(null);
  const { error, formKey, submit } = useAddForm(list.reload);
  const identityCheck = (v: string) =>
    identityType === 'USER' ? rules.customUsername(v) : rules.anyClientId(v, instance.quotas.maxClientIdLength);
  const topicCheck = (v: string) => rules.topic(v, { wildcards: true, max: instance.quotas.maxTopicLength });

  const add = submit(
    () => Api.addCustomPermission(id, { identityType, identity, topic, permitAction: action, effect }),
    () => setTopic(''),
  );
  const flip = async (p: CustomAuthPermission) => {
    setRowError(null);
    try {
      await Api.updateCustomPermission(id, { ...p, effect: p.effect === 'ALLOW' ? 'DENY' : 'ALLOW' });
      list.reload();
    } catch (err) {
      setRowError(err as Error);
    }
  };

  return (
    <>
      <form key={formKey} class="card inline-form" onSubmit={add} aria-label="Add permission">
        <Choice
          id="perm-type"
          label="For"
          value={identityType}
          options={[
            ['USER', 'USER (a username)'],
            ['CLIENT', 'CLIENT (a client ID)'],
          ]}
          onChange={setIdentityType}
        />
        <Field label={identityType === 'USER' ? 'Username' : 'Client ID'} value={identity} onInput={setIdentity} check={identityCheck} />
        <Field label="Topic filter" value={topic} onInput={setTopic} check={topicCheck} hint="Wildcards + and # allowed." />
        <Choice
          id="perm-action"
          label="Action"
          value={action}
          options={[
            ['PUB_SUB', 'PUB_SUB'],
            ['PUB', 'PUB'],
            ['SUB', 'SUB'],
          ]}
          onChange={setAction}
        />
        <Choice
          id="perm-effect"
          label="Effect"
          value={effect}
          options={[
            ['ALLOW', 'ALLOW'],
            ['DENY', 'DENY'],
          ]}
          onChange={setEffect}
        />
        <button type="submit" class="btn primary" disabled={!valid(identityCheck(identity), topicCheck(topic))}>
          Add permission
        </button>
        <FormError error={error} />
      </form>
      <FormError error={rowError} />
      <DataTable<CustomAuthPermission>
        label="permissions"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={permissionKey}
        filterText={(p) => `${p.identity} ${p.topic}`}
        empty="No permission yet: a custom-auth client without a matching ALLOW may neither publish nor subscribe."
        columns={[
          { title: 'Identity', render: (p) => <span class="mono">{p.identity}</span> },
          { title: 'Type', render: (p) => p.identityType },
          { title: 'Topic', render: (p) => <span class="mono">{p.topic}</span> },
          { title: 'Action', render: (p) => p.permitAction },
          { title: 'Effect', render: (p) => <strong>{p.effect}</strong> },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (p) => (
              <>
                <button type="button" class="btn small" onClick={() => flip(p)}>
                  {p.effect === 'ALLOW' ? 'Make DENY' : 'Make ALLOW'}
                </button>
                <button type="button" class="btn small danger" onClick={() => setDeleting(p)} aria-label={`Delete permission ${p.identity} ${p.topic}`}>
                  Delete
                </button>
              </>
            ),
          },
        ]}
      />
      {deleting ? (
        <Confirm
          title="Delete permission"
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await Api.deleteCustomPermission(id, deleting);
            list.reload();
          }}
        >
          Delete the {deleting.effect} {deleting.permitAction} permission of <strong class="mono">{deleting.identity}</strong> on{' '}
          <strong class="mono">{deleting.topic}</strong>?
        </Confirm>
      ) : null}
    </>
  );
}

function Blacklist({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const list = useAsync(() => Api.listConnectBlacklist(id), [id]);
  const [clientId, setClientId] = useState('');
  const [removing, setRemoving] = useState<ConnectBlacklistEntry | null>(null);
  const { error, formKey, submit } = useAddForm(list.reload);
  const check = (v: string) => rules.anyClientId(v, instance.quotas.maxClientIdLength);
  const add = submit(
    () => Api.addToConnectBlacklist(id, clientId),
    () => setClientId(''),
  );
  return (
    <>
      <form key={formKey} class="card inline-form" onSubmit={add} aria-label="Blacklist client ID">
        <Field label="Client ID" value={clientId} onInput={setClientId} check={check} hint="Refused in every authentication mode; live connections are closed." />
        <button type="submit" class="btn primary" disabled={!valid(check(clientId))}>
          Blacklist
        </button>
        <FormError error={error} />
      </form>
      <DataTable<ConnectBlacklistEntry>
        label="blacklisted client IDs"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(b) => b.clientId}
        filterText={(b) => b.clientId}
        empty="No client ID is blacklisted."
        columns={[
          { title: 'Client ID', render: (b) => <strong class="mono">{b.clientId}</strong> },
          { title: 'Since', render: (b) => dateTime(b.createdAt) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (b) => (
              <button type="button" class="btn small" onClick={() => setRemoving(b)} aria-label={`Remove ${b.clientId}`}>
                Remove
              </button>
            ),
          },
        ]}
      />
      {removing ? (
        <Confirm
          title="Remove from the blacklist"
          confirmLabel="Remove"
          onClose={() => setRemoving(null)}
          onConfirm={async () => {
            await Api.removeFromConnectBlacklist(id, removing.clientId);
            list.reload();
          }}
        >
          Let <strong class="mono">{removing.clientId}</strong> connect again?
        </Confirm>
      ) : null}
    </>
  );
}
