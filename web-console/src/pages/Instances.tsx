// Instances: filterable list and the create form.
import { useState } from 'preact/hooks';
import { Api, type Instance } from '../api/endpoints';
import { DataTable } from '../components/DataTable';
import { InstanceForm } from './instance/InstanceForm';
import { Modal } from '../components/Modal';
import { dateTime } from '../lib/format';
import { href, navigate } from '../lib/router';
import { useAsync } from '../lib/useAsync';

export function Instances() {
  const list = useAsync(() => Api.listInstances(), []);
  const [creating, setCreating] = useState(false);
  return (
    <section>
      <div class="page-head">
        <h1>Instances</h1>
        <button type="button" class="btn primary" onClick={() => setCreating(true)}>
          Create instance
        </button>
      </div>
      <DataTable<Instance>
        label="instances"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(i) => i.instanceId}
        filterText={(i) => `${i.name} ${i.instanceId} ${i.description}`}
        empty="An instance is an isolated MQTT service with its own topics, groups and credentials."
        columns={[
          {
            title: 'Name',
            render: (i) => (
              <a href={href(`/instances/${i.instanceId}`)}>
                <strong>{i.name}</strong>
              </a>
            ),
          },
          { title: 'Instance ID', render: (i) => <span class="mono">{i.instanceId}</span> },
          { title: 'Description', render: (i) => i.description || <span class="muted">—</span> },
          { title: 'Max connections', render: (i) => i.quotas.maxConnections.toLocaleString(), class: 'num' },
          { title: 'Created', render: (i) => dateTime(i.createdAt) },
        ]}
      />
      {creating ? (
        <Modal title="Create instance" onClose={() => setCreating(false)}>
          <InstanceForm
            submitLabel="Create"
            onCancel={() => setCreating(false)}
            onSubmit={async (v) => {
              const inst = await Api.createInstance(v);
              navigate(`/instances/${inst.instanceId}`);
            }}
          />
        </Modal>
      ) : null}
    </section>
  );
}
