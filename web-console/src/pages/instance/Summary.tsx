// Instance overview tab: endpoints, traffic against the quotas and over time, quotas with usage, edit
// and delete.
import { useState } from 'preact/hooks';
import { Api, type Instance, type Quotas } from '../../api/endpoints';
import { Confirm } from '../../components/Confirm';
import { CopyButton } from '../../components/CopyButton';
import { Meter } from '../../components/Meter';
import { Modal } from '../../components/Modal';
import { bytes, dateTime, duration, num } from '../../lib/format';
import { navigate } from '../../lib/router';
import { InstanceForm } from './InstanceForm';
import { Usage } from './Usage';

const QUOTAS: { key: keyof Quotas; label: string; fmt?: (n: number) => string; usage?: 'parentTopics' | 'rules' }[] = [
  { key: 'maxConnections', label: 'Concurrent connections' },
  { key: 'maxMessagesPerSecond', label: 'Messages per second' },
  { key: 'maxParentTopics', label: 'Parent topics', usage: 'parentTopics' },
  { key: 'maxSubscriptionsPerClient', label: 'Subscriptions per client' },
  { key: 'maxWildcardSubscriptionsPerParentTopic', label: 'Wildcard subscriptions per parent topic' },
  { key: 'maxTopicLength', label: 'Topic length' },
  { key: 'maxClientIdLength', label: 'Client ID length' },
  { key: 'maxMessageSize', label: 'Message size', fmt: bytes },
  { key: 'offlineRetentionSecs', label: 'Offline message retention', fmt: duration },
  { key: 'maxOfflineMessages', label: 'Offline messages stored' },
  { key: 'maxOfflineBytes', label: 'Offline message bytes stored', fmt: bytes },
  { key: 'maxPersistentSessions', label: 'Persistent sessions' },
  { key: 'maxRetainedMessages', label: 'Retained messages' },
  { key: 'maxRetainedBytes', label: 'Retained message bytes', fmt: bytes },
  { key: 'maxTokenResources', label: 'Resources per token' },
  { key: 'maxRules', label: 'Rules', usage: 'rules' },
];

export function Summary({ instance: i, onChange }: { instance: Instance; onChange: () => void }) {
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  return (
    <div class="stack">
      <div class="card">
        <div class="card-head">
          <h2>Details</h2>
          <div class="actions inline">
            <button type="button" class="btn" onClick={() => setEditing(true)}>
              Edit
            </button>
            <button type="button" class="btn danger" onClick={() => setDeleting(true)}>
              Delete
            </button>
          </div>
        </div>
        <dl class="kv">
          <dt>Instance ID</dt>
          <dd>
            <span class="mono">{i.instanceId}</span> <CopyButton value={i.instanceId} />
          </dd>
          <dt>Description</dt>
          <dd>{i.description || <span class="muted">—</span>}</dd>
          <dt>Duplicate client ID</dt>
          <dd>{i.rejectDuplicateClientId ? 'newcomer rejected' : 'newcomer takes over'}</dd>
          <dt>Created</dt>
          <dd>{dateTime(i.createdAt)}</dd>
          {i.usage ? (
            <>
              <dt>Contents</dt>
              <dd>
                {i.usage.parentTopics} parent topics · {i.usage.groupIds} group IDs · {i.usage.accessKeys} AccessKeys · {i.usage.deviceCredentials} device credentials · {i.usage.rules} rules
              </dd>
            </>
          ) : null}
        </dl>
      </div>
      <Usage instance={i} />
      <div class="card">
        <h2>Endpoints</h2>
        {i.endpoints.length === 0 ? (
          <p class="muted">No endpoint configured (CP_MQTT_ENDPOINTS).</p>
        ) : (
          <ul class="endpoints">
            {i.endpoints.map((e) => (
              <li>
                <span class="mono">{e}</span> <CopyButton value={e} />
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="card">
        <h2>Quotas</h2>
        <table class="quotas" aria-label="quotas">
          <tbody>
            {QUOTAS.map((q) => {
              const limit = Number(i.quotas[q.key]);
              const used = q.usage && i.usage ? Number(i.usage[q.usage]) : null;
              return (
                <tr>
                  <th scope="row">{q.label}</th>
                  <td class="num">
                    {used !== null ? `${used} / ` : ''}
                    {q.fmt ? q.fmt(limit) : num(limit)}
                    {used !== null ? <Meter label={q.label} used={used} limit={limit} /> : null}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {editing ? (
        <Modal title={`Edit ${i.name}`} onClose={() => setEditing(false)}>
          <InstanceForm
            initial={i}
            submitLabel="Save"
            onCancel={() => setEditing(false)}
            onSubmit={async (v) => {
              await Api.updateInstance(i.instanceId, v);
              setEditing(false);
              onChange();
            }}
          />
        </Modal>
      ) : null}
      {deleting ? (
        <Confirm
          title="Delete instance"
          confirmLabel="Delete instance"
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await Api.deleteInstance(i.instanceId);
            navigate('/instances');
          }}
        >
          Delete <strong>{i.name}</strong> ({i.instanceId}) with all its topics, groups, device credentials and tokens? Connected clients are
          disconnected. This cannot be undone.
        </Confirm>
      ) : null}
    </div>
  );
}
