// Broker nodes: applied config version, lag, last error and load, refreshed every 2 s; new node credentials.
import { useState } from 'preact/hooks';
import { Api } from '../api/endpoints';
import type { BrokerNode, CreatedBrokerNode } from '../api/pending';
import { Badge } from '../components/Badge';
import { SecretValue } from '../components/CopyButton';
import { DataTable } from '../components/DataTable';
import { Field, valid } from '../components/Field';
import { Modal } from '../components/Modal';
import { FormError } from '../components/States';
import { brokerLabel, brokerTone, useBrokers } from '../lib/brokers';
import { ago, num } from '../lib/format';
import * as rules from '../lib/validate';

export function Brokers() {
  const brokers = useBrokers();
  const [creating, setCreating] = useState(false);
  const lag = (b: BrokerNode) =>
    b.currentVersion != null && b.appliedVersion != null ? Math.max(0, b.currentVersion - b.appliedVersion) : null;
  return (
    <section>
      <div class="page-head">
        <h1>Brokers</h1>
        <button type="button" class="btn primary" onClick={() => setCreating(true)}>
          Add broker node
        </button>
      </div>
      <DataTable<BrokerNode>
        label="brokers"
        rows={brokers.data}
        loading={brokers.loading}
        error={brokers.error}
        onRetry={brokers.reload}
        rowKey={(b) => b.nodeId}
        filterText={(b) => `${b.nodeId} ${b.status} ${b.lastError ?? ''} ${b.description ?? ''}`}
        empty="Create a node credential, then start a broker with it."
        columns={[
          { title: 'Node', render: (b) => <strong class="mono">{b.nodeId}</strong> },
          { title: 'Status', render: (b) => <Badge tone={brokerTone(b.status)}>{brokerLabel(b.status)}</Badge> },
          { title: 'Applied version', render: (b) => num(b.appliedVersion), class: 'num' },
          { title: 'Lag', render: (b) => (lag(b) === null ? '—' : `${lag(b)} versions`), class: 'num' },
          { title: 'Last seen', render: (b) => ago(b.lastSeenAt) },
          { title: 'Connections', render: (b) => num(b.connections), class: 'num' },
          { title: 'Msg in/out per s', render: (b) => `${num(b.messagesInPerSec, 1)} / ${num(b.messagesOutPerSec, 1)}`, class: 'num' },
          { title: 'Last error', render: (b) => (b.lastError ? <span class="text-bad">{b.lastError}</span> : <span class="muted">none</span>) },
        ]}
      />
      {creating ? <CreateNode onClose={() => setCreating(false)} onCreated={brokers.reload} /> : null}
    </section>
  );
}

function CreateNode({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const [nodeId, setNodeId] = useState('');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [created, setCreated] = useState<CreatedBrokerNode | null>(null);
  const check = (v: string) => rules.deviceId(v);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await Api.createBrokerNode({ nodeId, description }));
      onCreated();
    } catch (err) {
      setError(err as Error);
    }
  };
  if (created)
    return (
      <Modal title="Broker node created" onClose={onClose}>
        <p class="notice">The node secret is shown only now. Give it to the broker (its node credential).</p>
        <SecretValue label="Node ID" value={created.nodeId} />
        <SecretValue label="Node secret" value={created.nodeSecret} />
        <div class="actions">
          <button type="button" class="btn primary" onClick={onClose}>
            Done
          </button>
        </div>
      </Modal>
    );
  return (
    <Modal title="Add broker node" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Node ID" value={nodeId} onInput={setNodeId} check={check} hint="Letters, digits, _ and -" />
        <Field label="Description" value={description} onInput={setDescription} />
        <FormError error={error} />
        <div class="actions">
          <button type="button" class="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="btn primary" disabled={!valid(check(nodeId))}>
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}
