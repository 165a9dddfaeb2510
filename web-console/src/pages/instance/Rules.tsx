// Rules of an instance: the list with each rule's delivery figures (summed over the brokers), create and
// edit (RuleForm), enable/disable, delete, "Test target" (one broker sends a sample and its answer is
// shown) and the dead letters (deliveries a target refused for good).
import { useState } from 'preact/hooks';
import { Api, type DeadLetter, type Instance, type Rule, type RuleTestResult } from '../../api/endpoints';
import { Badge } from '../../components/Badge';
import { Confirm } from '../../components/Confirm';
import { DataTable } from '../../components/DataTable';
import { Modal } from '../../components/Modal';
import { ErrorBox, Loading } from '../../components/States';
import { ago, dateTime, num } from '../../lib/format';
import { useAsync, useInterval } from '../../lib/useAsync';
import { RuleForm } from './RuleForm';

const KIND: Record<Rule['kind'], string> = { outflow: 'Data outflow', status: 'Status notification', inflow: 'Data inflow' };

function sourceText(r: Rule): string {
  const s = r.source;
  const groups = s.kind !== 'inflow' && s.groupIds.length ? ` (${s.groupIds.join(', ')})` : '';
  if (s.kind === 'outflow') return s.topicFilters.join(', ') + groups;
  if (s.kind === 'status') return `client status${groups || ' (every client)'}`;
  return `NATS ${s.stream ? `stream ${s.stream}, ` : ''}${s.subject} → ${s.topic}`;
}

function targetText(r: Rule): string {
  const t = r.target;
  if (!t) return 'this instance';
  if (t.type === 'webhook') return t.url;
  if (t.type === 'nats') return `${t.jetstream ? 'JetStream' : 'NATS'} ${t.subject}`;
  return `republish on ${t.topic}`;
}

function TestTarget({ instanceId, rule, onClose }: { instanceId: string; rule: Rule; onClose: () => void }) {
  const result = useAsync<RuleTestResult>(() => Api.testRule(instanceId, rule.ruleId), [rule.ruleId]);
  const r = result.data;
  return (
    <Modal title="Test target" onClose={onClose}>
      <div class="modal-body" data-testid="rule-test-result">
        <p>
          One broker sends a sample through <strong>{rule.name}</strong> to {targetText(rule)}.
        </p>
        {result.loading ? (
          <Loading label="Waiting for the broker's answer…" />
        ) : result.error ? (
          <ErrorBox error={result.error} onRetry={result.reload} />
        ) : r ? (
          <dl class="kv">
            <dt>Answer</dt>
            <dd>{r.delivered ? <Badge tone="ok">Delivered</Badge> : <Badge tone="bad">Not delivered</Badge>}</dd>
            {r.status != null ? (
              <>
                <dt>HTTP status</dt>
                <dd>{r.status}</dd>
              </>
            ) : null}
            {r.error ? (
              <>
                <dt>Error</dt>
                <dd class="mono">{r.error}</dd>
              </>
            ) : null}
            <dt>Latency</dt>
            <dd>{num(r.latencyMs)} ms</dd>
            <dt>Broker</dt>
            <dd class="mono">{r.nodeId}</dd>
          </dl>
        ) : null}
      </div>
      <div class="actions">
        <button type="button" class="btn" onClick={result.reload} disabled={result.loading}>
          Test again
        </button>
        <button type="button" class="btn primary" onClick={onClose}>
          Close
        </button>
      </div>
    </Modal>
  );
}

function DeadLetters({ instanceId, rule, onClose }: { instanceId: string; rule: Rule; onClose: () => void }) {
  const letters = useAsync(() => Api.listRuleDeadLetters(instanceId, rule.ruleId), [rule.ruleId]);
  return (
    <Modal title={`Dead letters of ${rule.name}`} onClose={onClose}>
      <DataTable<DeadLetter>
        label="dead letters"
        rows={letters.data}
        loading={letters.loading}
        error={letters.error}
        onRetry={letters.reload}
        rowKey={(d) => `${d.nodeId}-${d.at}-${d.msgId ?? ''}-${d.error}`}
        filterText={(d) => `${d.error} ${d.topic ?? ''} ${d.clientId ?? ''} ${d.msgId ?? ''}`}
        empty="Deliveries a target refuses for good (an answer other than 2xx, 408, 429 or 5xx) show here; the latest 100 are kept."
        columns={[
          { title: 'When', render: (d) => dateTime(d.at) },
          { title: 'Status', render: (d) => (d.status != null ? String(d.status) : '—') },
          { title: 'Error', render: (d) => <span class="mono">{d.error}</span> },
          { title: 'Topic', render: (d) => <span class="mono">{d.topic ?? '—'}</span> },
          { title: 'Client ID', render: (d) => <span class="mono">{d.clientId ?? '—'}</span> },
          { title: 'Broker', render: (d) => <span class="mono">{d.nodeId}</span> },
        ]}
      />
      <div class="actions">
        <button type="button" class="btn primary" onClick={onClose}>
          Close
        </button>
      </div>
    </Modal>
  );
}

type Open = { what: 'create' } | { what: 'edit' | 'test' | 'dead' | 'delete'; rule: Rule } | null;

export function Rules({ instance, onChange }: { instance: Instance; onChange: () => void }) {
  const id = instance.instanceId;
  const list = useAsync(() => Api.listRules(id), [id]);
  const [open, setOpen] = useState<Open>(null);
  const [toggleError, setToggleError] = useState<Error | null>(null);
  // The figures come from the brokers' heartbeats: keep them current while the page is open.
  useInterval(list.reload, 5000);
  const close = () => setOpen(null);
  const changed = () => {
    list.reload();
    onChange();
  };
  const toggle = async (r: Rule) => {
    setToggleError(null);
    try {
      await (r.enabled ? Api.disableRule(id, r.ruleId) : Api.enableRule(id, r.ruleId));
      list.reload();
    } catch (e) {
      setToggleError(e as Error);
    }
  };

  return (
    <div class="stack">
      {toggleError ? <ErrorBox error={toggleError} /> : null}
      <DataTable<Rule>
        label="rules"
        rows={list.data}
        loading={list.loading}
        error={list.error}
        onRetry={list.reload}
        rowKey={(r) => r.ruleId}
        filterText={(r) => `${r.name} ${r.ruleId} ${r.kind} ${sourceText(r)} ${targetText(r)}`}
        empty={`Rules send messages or client status events to a webhook, NATS or another topic, or feed NATS messages into the instance (up to ${instance.quotas.maxRules}).`}
        toolbar={
          <button type="button" class="btn primary" onClick={() => setOpen({ what: 'create' })}>
            Create rule
          </button>
        }
        columns={[
          {
            title: 'Rule',
            render: (r) => (
              <>
                <strong>{r.name}</strong>
                <div class="small">{KIND[r.kind]}</div>
                <div class="muted small mono">{r.ruleId}</div>
              </>
            ),
          },
          {
            title: 'Source → target',
            class: 'wrap-anywhere',
            render: (r) => (
              <span class="mono">
                {sourceText(r)}
                <br />→ {targetText(r)}
              </span>
            ),
          },
          { title: 'State', render: (r) => (r.enabled ? <Badge tone="ok">Enabled</Badge> : <Badge tone="muted">Disabled</Badge>) },
          { title: 'Matched', render: (r) => num(r.status.matched) },
          { title: 'Delivered', render: (r) => num(r.status.delivered) },
          { title: 'Failed', render: (r) => num(r.status.failed) },
          {
            title: 'Queued',
            render: (r) => (
              <>
                {num(r.status.queued)} {r.status.overflowing ? <Badge tone="bad">Overflowing</Badge> : null}
              </>
            ),
          },
          {
            title: 'Last error',
            class: 'wrap-anywhere',
            render: (r) =>
              r.status.lastError ? (
                <span title={dateTime(r.status.lastErrorAt)}>
                  <span class="mono">{r.status.lastError}</span> <span class="muted small">{ago(r.status.lastErrorAt)}</span>
                </span>
              ) : (
                <span class="muted">—</span>
              ),
          },
          {
            title: 'Actions',
            class: 'actions-cell rule-actions',
            render: (r) => (
              <>
                <button type="button" class="btn small" onClick={() => setOpen({ what: 'edit', rule: r })} aria-label={`Edit ${r.name}`}>
                  Edit
                </button>
                <button type="button" class="btn small" onClick={() => toggle(r)} aria-label={`${r.enabled ? 'Disable' : 'Enable'} ${r.name}`}>
                  {r.enabled ? 'Disable' : 'Enable'}
                </button>
                <button type="button" class="btn small" onClick={() => setOpen({ what: 'test', rule: r })} aria-label={`Test target of ${r.name}`}>
                  Test
                </button>
                <button type="button" class="btn small" onClick={() => setOpen({ what: 'dead', rule: r })} aria-label={`Dead letters of ${r.name}`}>
                  Dead letters
                </button>
                <button type="button" class="btn small danger" onClick={() => setOpen({ what: 'delete', rule: r })} aria-label={`Delete ${r.name}`}>
                  Delete
                </button>
              </>
            ),
          },
        ]}
      />
      {open?.what === 'create' ? (
        <Modal title="Create rule" onClose={close}>
          <RuleForm
            submitLabel="Create"
            onCancel={close}
            onSubmit={async (body) => {
              await Api.createRule(id, body);
              close();
              changed();
            }}
          />
        </Modal>
      ) : null}
      {open?.what === 'edit' ? (
        <Modal title="Edit rule" onClose={close}>
          <RuleForm
            initial={open.rule}
            submitLabel="Save"
            onCancel={close}
            onSubmit={async (body) => {
              await Api.updateRule(id, open.rule.ruleId, body);
              close();
              changed();
            }}
          />
        </Modal>
      ) : null}
      {open?.what === 'test' ? <TestTarget instanceId={id} rule={open.rule} onClose={close} /> : null}
      {open?.what === 'dead' ? <DeadLetters instanceId={id} rule={open.rule} onClose={close} /> : null}
      {open?.what === 'delete' ? (
        <Confirm title="Delete rule" confirmLabel="Delete" onClose={close} onConfirm={async () => Api.deleteRule(id, open.rule.ruleId).then(changed)}>
          Delete <strong>{open.rule.name}</strong>? Brokers stop running it with their next configuration.
        </Confirm>
      ) : null}
    </div>
  );
}
