// Group IDs of an instance: create (checked as you type), list, delete.
import { useState } from 'preact/hooks';
import { Api, type GroupId, type Instance } from '../../api/endpoints';
import { Confirm } from '../../components/Confirm';
import { DataTable } from '../../components/DataTable';
import { Field, valid } from '../../components/Field';
import { FormError } from '../../components/States';
import { dateTime } from '../../lib/format';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';

export function Groups({ instance, onChange }: { instance: Instance; onChange: () => void }) {
  const id = instance.instanceId;
  const list = useAsync(() => Api.listGroups(id), [id]);
  const [groupId, setGroupId] = useState('GID_');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<GroupId | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await Api.createGroup(id, { groupId, description });
      setGroupId('GID_');
      setDescription('');
      list.reload();
      onChange();
    } catch (err) {
      setError(err as Error);
    }
    setBusy(false);
  };

  return (
    <div class="stack">
      <form class="card inline-form" onSubmit={create} aria-label="Create group ID">
        <Field label="Group ID" value={groupId} onInput={setGroupId} check={rules.groupId} hint="GID_ or GID- then letters, digits, _ and -; 7-64 characters" />
        <Field label="Description" value={description} onInput={setDescription} />
        <button type="submit" class="btn primary" disabled={busy || !valid(rules.groupId(groupId))}>
          Create group
        </button>
        <FormError error={error} />
      </form>
      <DataTable<GroupId>
        label="group IDs"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(g) => g.groupId}
        filterText={(g) => `${g.groupId} ${g.description}`}
        empty="Client IDs are <GroupID>@@@<DeviceID>: create the group first."
        columns={[
          { title: 'Group ID', render: (g) => <strong class="mono">{g.groupId}</strong> },
          { title: 'Description', render: (g) => g.description || <span class="muted">—</span> },
          { title: 'Created', render: (g) => dateTime(g.createdAt) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (g) => (
              <button type="button" class="btn small danger" onClick={() => setDeleting(g)} aria-label={`Delete ${g.groupId}`}>
                Delete
              </button>
            ),
          },
        ]}
      />
      {deleting ? (
        <Confirm
          title="Delete group ID"
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await Api.deleteGroup(id, deleting.groupId);
            list.reload();
            onChange();
          }}
        >
          Delete <strong class="mono">{deleting.groupId}</strong>? Its device credentials are deleted and its clients disconnected.
        </Confirm>
      ) : null}
    </div>
  );
}
