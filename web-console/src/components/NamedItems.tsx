// Named items of an instance with a description (parent topics, group IDs): create one (its name
// checked as you type), list them, delete one after confirming.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { dateTime } from '../lib/format';
import { useAsync } from '../lib/useAsync';
import { Confirm } from './Confirm';
import { DataTable } from './DataTable';
import { Field, valid } from './Field';
import { FormError } from './States';

export interface NamedItem {
  description: string;
  createdAt: string;
}

interface Props<T extends NamedItem> {
  instanceId: string;
  /** Called after an item was created or deleted. */
  onChange: () => void;
  /** The name's field label and column title: "Group ID". */
  title: string;
  /** One item in running text: "group ID" ("Create group ID", "Delete group ID", "group IDs"). */
  noun: string;
  /** The create button's text. */
  createLabel: string;
  /** What the name field holds at first and after each creation. */
  initialName: string;
  check: (name: string) => string | null;
  hint: string;
  /** Shown when there are none. */
  empty: string;
  /** What deleting one does, after "Delete <name>?". */
  deleteNote: ComponentChildren;
  nameOf: (item: T) => string;
  list: (instanceId: string) => Promise<T[]>;
  create: (instanceId: string, name: string, description: string) => Promise<unknown>;
  remove: (instanceId: string, name: string) => Promise<unknown>;
  /** Shown between the create form and the list (an import form), given what reads the list again. */
  extra?: (reload: () => void) => ComponentChildren;
}

export function NamedItems<T extends NamedItem>(p: Props<T>) {
  const id = p.instanceId;
  const list = useAsync(() => p.list(id), [id]);
  const [name, setName] = useState(p.initialName);
  const [description, setDescription] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<T | null>(null);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await p.create(id, name, description);
      setName(p.initialName);
      setDescription('');
      list.reload();
      p.onChange();
    } catch (err) {
      setError(err as Error);
    }
    setBusy(false);
  };

  return (
    <div class="stack">
      <form class="card inline-form" onSubmit={create} aria-label={`Create ${p.noun}`}>
        <Field label={p.title} value={name} onInput={setName} check={p.check} hint={p.hint} />
        <Field label="Description" value={description} onInput={setDescription} />
        <button type="submit" class="btn primary" disabled={busy || !valid(p.check(name))}>
          {p.createLabel}
        </button>
        <FormError error={error} />
      </form>
      {p.extra?.(list.reload)}
      <DataTable<T>
        label={`${p.noun}s`}
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={p.nameOf}
        filterText={(t) => `${p.nameOf(t)} ${t.description}`}
        empty={p.empty}
        columns={[
          { title: p.title, render: (t) => <strong class="mono">{p.nameOf(t)}</strong> },
          { title: 'Description', render: (t) => t.description || <span class="muted">—</span> },
          { title: 'Created', render: (t) => dateTime(t.createdAt) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (t) => (
              <button type="button" class="btn small danger" onClick={() => setDeleting(t)} aria-label={`Delete ${p.nameOf(t)}`}>
                Delete
              </button>
            ),
          },
        ]}
      />
      {deleting ? (
        <Confirm
          title={`Delete ${p.noun}`}
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await p.remove(id, p.nameOf(deleting));
            list.reload();
            p.onChange();
          }}
        >
          Delete <strong class="mono">{p.nameOf(deleting)}</strong>? {p.deleteNote}
        </Confirm>
      ) : null}
    </div>
  );
}
