// Create / edit form of an instance: name, description, duplicate-client-ID policy and the main quotas.
import { useState } from 'preact/hooks';
import type { Instance, QuotasPatch } from '../../api/endpoints';
import { Field, valid } from '../../components/Field';
import { FormError } from '../../components/States';
import * as rules from '../../lib/validate';

export interface InstanceValues {
  name: string;
  description: string;
  rejectDuplicateClientId: boolean;
  quotas: QuotasPatch;
}

const QUOTA_FIELDS: { key: keyof QuotasPatch; label: string }[] = [
  { key: 'maxConnections', label: 'Max connections' },
  { key: 'maxMessagesPerSecond', label: 'Max messages per second' },
  { key: 'maxParentTopics', label: 'Max parent topics' },
  { key: 'maxSubscriptionsPerClient', label: 'Max subscriptions per client' },
  { key: 'maxMessageSize', label: 'Max message size (bytes)' },
  { key: 'maxTokenResources', label: 'Max resources per token' },
];

interface Props {
  initial?: Instance;
  submitLabel: string;
  onSubmit: (v: InstanceValues) => Promise<void>;
  onCancel: () => void;
}

export function InstanceForm({ initial, submitLabel, onSubmit, onCancel }: Props) {
  const [name, setName] = useState(initial?.name ?? '');
  const [description, setDescription] = useState(initial?.description ?? '');
  const [reject, setReject] = useState(initial?.rejectDuplicateClientId ?? false);
  const [quotas, setQuotas] = useState<Record<string, string>>(() =>
    Object.fromEntries(QUOTA_FIELDS.map((q) => [q.key, initial ? String(initial.quotas[q.key]) : ''])),
  );
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);

  const quotaError = (v: string) => (v === '' || /^[1-9][0-9]*$/.test(v) ? null : 'A whole number of at least 1.');
  const ok = valid(rules.instanceName(name), ...QUOTA_FIELDS.map((q) => quotaError(quotas[q.key])));
  const serverField = (f: string) => (error && 'field' in error && (error as { field?: string | null }).field === f ? error.message : null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const patch: QuotasPatch = {};
    for (const q of QUOTA_FIELDS) if (quotas[q.key] !== '') (patch as Record<string, number>)[q.key] = Number(quotas[q.key]);
    try {
      await onSubmit({ name, description, rejectDuplicateClientId: reject, quotas: patch });
    } catch (err) {
      setError(err as Error);
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit}>
      <Field label="Name" value={name} onInput={setName} check={rules.instanceName} serverError={serverField('name')} hint="3-64 characters: letters, digits, _ and -" />
      <Field label="Description" value={description} onInput={setDescription} />
      <div class="field checkbox">
        <input id="reject-dup" type="checkbox" checked={reject} onChange={(e) => setReject((e.target as HTMLInputElement).checked)} />
        <label for="reject-dup">Reject a new connection that reuses a connected client ID (default: take over)</label>
      </div>
      <fieldset>
        <legend>Quotas {initial ? '' : '(empty = default)'}</legend>
        <div class="grid2">
          {QUOTA_FIELDS.map((q) => (
            <Field
              label={q.label}
              inputMode="numeric"
              value={quotas[q.key]}
              onInput={(v) => setQuotas({ ...quotas, [q.key]: v })}
              check={quotaError}
              serverError={serverField(`quotas.${q.key}`)}
            />
          ))}
        </div>
      </fieldset>
      <FormError error={error} />
      <div class="actions">
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="btn primary" disabled={!ok || busy}>
          {busy ? 'Saving…' : submitLabel}
        </button>
      </div>
    </form>
  );
}
