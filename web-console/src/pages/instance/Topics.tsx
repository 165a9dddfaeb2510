// Parent topics of an instance: create (checked as you type), list, delete.
import { useState } from 'preact/hooks';
import { Api, type Instance, type Topic } from '../../api/endpoints';
import { Confirm } from '../../components/Confirm';
import { DataTable } from '../../components/DataTable';
import { Field, valid } from '../../components/Field';
import { FormError } from '../../components/States';
import { dateTime } from '../../lib/format';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';

export function Topics({ instance, onChange }: { instance: Instance; onChange: () => void }) {
  const id = instance.instanceId;
  const list = useAsync(() => Api.listTopics(id), [id]);
  const [topic, setTopic] = useState('');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<Topic | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await Api.createTopic(id, { topic, description });
      setTopic('');
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
      <form class="card inline-form" onSubmit={create} aria-label="Create parent topic">
        <Field label="Parent topic" value={topic} onInput={setTopic} check={rules.parentTopic} hint="1-64 characters: letters, digits, _ and -" />
        <Field label="Description" value={description} onInput={setDescription} />
        <button type="submit" class="btn primary" disabled={busy || !valid(rules.parentTopic(topic))}>
          Create topic
        </button>
        <FormError error={error} />
      </form>
      <DataTable<Topic>
        label="parent topics"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(t) => t.topic}
        filterText={(t) => `${t.topic} ${t.description}`}
        empty="Clients can only use topics under a parent topic created here."
        columns={[
          { title: 'Parent topic', render: (t) => <strong class="mono">{t.topic}</strong> },
          { title: 'Description', render: (t) => t.description || <span class="muted">—</span> },
          { title: 'Created', render: (t) => dateTime(t.createdAt) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (t) => (
              <button type="button" class="btn small danger" onClick={() => setDeleting(t)} aria-label={`Delete ${t.topic}`}>
                Delete
              </button>
            ),
          },
        ]}
      />
      {deleting ? (
        <Confirm
          title="Delete parent topic"
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await Api.deleteTopic(id, deleting.topic);
            list.reload();
            onChange();
          }}
        >
          Delete <strong class="mono">{deleting.topic}</strong>? Clients can no longer publish or subscribe under it.
        </Confirm>
      ) : null}
    </div>
  );
}
