// Broker nodes: applied config version, lag, cluster link, last error and load, refreshed every 2 s; new
// node credentials.
import { useState } from 'preact/hooks';
import { Confirm } from '../components/Confirm';
import { Api } from '../api/endpoints';
import type { BrokerNode, CreatedBrokerNode } from '../api/live';
import { Badge } from '../components/Badge';
import { SecretValue } from '../components/CopyButton';
import { DataTable } from '../components/DataTable';
import { Field, valid } from '../components/Field';
import { Modal } from '../components/Modal';
import { FormError } from '../components/States';
import { brokerLabel, brokerTone, clusterLinkLabel, clusterLinkTone, useBrokers } from '../lib/brokers';
import { ago, num } from '../lib/format';
import * as rules from '../lib/validate';

export function Brokers() {
  const brokers = useBrokers();
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<BrokerNode | null>(null);
  const current = brokers.data?.currentVersion;
  const lag = (b: BrokerNode) => (current != null && b.appliedVersion != null ? Math.max(0, current - b.appliedVersion) : null);
  return (
    <section>
      <div class="page-head">
        <h1>Brokers</h1>
        {current != null ? <span class="muted">current configuration version {num(current)}</span> : null}
        <button type="button" class="btn primary" onClick={() => setCreating(true)}>
          Add broker node
        </button>
      </div>
      <DataTable<BrokerNode>
        label="brokers"
        rows={brokers.data?.brokers}
        loading={brokers.loading}
        error={brokers.error}
        onRetry={brokers.reload}
        rowKey={(b) => b.nodeId}
        filterText={(b) => `${b.nodeId} ${b.state} ${b.clusterLink ?? ''} ${b.lastError ?? ''} ${b.description ?? ''}`}
        empty="Create a node credential, then start a broker with it."
        columns={[
          { title: 'Node', render: (b) => <strong class="mono">{b.nodeId}</strong> },
          { title: 'Status', render: (b) => <Badge tone={brokerTone(b.state)}>{brokerLabel(b.state)}</Badge> },
          {
            title: 'Cluster link',
            render: (b) => (
              <span title={b.clusterLink ? 'link to NATS at the last heartbeat' : 'runs alone (no --cluster-nats-url)'} data-cluster-link={b.clusterLink ?? 'none'}>
                <Badge tone={clusterLinkTone(b.clusterLink)}>{clusterLinkLabel(b.clusterLink)}</Badge>
              </span>
            ),
          },
          { title: 'Applied version', render: (b) => num(b.appliedVersion), class: 'num' },
          { title: 'Lag', render: (b) => (lag(b) === null ? '—' : `${lag(b)} versions`), class: 'num' },
          { title: 'Last seen', render: (b) => ago(b.lastHeartbeatAt) },
          { title: 'Connections', render: (b) => num(b.connections), class: 'num' },
          { title: 'Msg in/out per s', render: (b) => `${num(b.messagesInPerSec, 1)} / ${num(b.messagesOutPerSec, 1)}`, class: 'num' },
          { title: 'Software', render: (b) => b.softwareVersion ?? '—' },
          { title: 'Last error', render: (b) => (b.lastError ? <span class="text-bad">{b.lastError}</span> : <span class="muted">none</span>) },
          {
            title: 'Actions',
            class: 'actions-cell',
            render: (b) => (
              <button type="button" class="btn small danger" onClick={() => setDeleting(b)} aria-label={`Delete ${b.nodeId}`}>
                Delete
              </button>
            ),
          },
        ]}
      />
      {deleting ? (
        <Confirm
          title="Delete broker node"
          confirmLabel="Delete"
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            await Api.deleteBrokerNode(deleting.nodeId);
            brokers.reload();
          }}
        >
          Delete <strong class="mono">{deleting.nodeId}</strong>? Its credential stops working: the broker can no longer fetch configuration or report.
        </Confirm>
      ) : null}
      {creating ? <CreateNode onClose={() => setCreating(false)} onCreated={brokers.reload} /> : null}
    </section>
  );
}

function CreateNode({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const [nodeId, setNodeId] = useState('');
  const [description, setDescription] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [created, setCreated] = useState<CreatedBrokerNode | null>(null);
  const check = (v: string) => (v ? rules.deviceId(v) : null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await Api.createBrokerNode({ nodeId: nodeId || null, description }));
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
        <Field label="Node ID" value={nodeId} onInput={setNodeId} check={check} hint="Letters, digits, _ and -; empty = generated" />
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
