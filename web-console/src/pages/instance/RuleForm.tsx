// Create / edit form of a rule: kind-specific source fields (outflow: topic filters and group IDs;
// status: group IDs; inflow: NATS server, subject and the topic to publish on), the target (webhook,
// NATS subject or republish; none for inflow) and the outbox limits. Secrets are write-only: when
// editing, an empty secret field keeps the stored one and a checkbox removes it. The server's field
// errors (`target.url`, `source.topicFilters[1]`, ...) show next to their field.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { Rule } from '../../api/endpoints';
import type { components } from '../../api/schema';
import { Field } from '../../components/Field';
import { FormError } from '../../components/States';

type S = components['schemas'];
type Kind = 'outflow' | 'status' | 'inflow';
type TargetType = 'webhook' | 'nats' | 'republish';
export type RuleBody = S['CreateRuleRequest'];

const list = (v: string) =>
  v
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

/** The form's text state, from an existing rule or the defaults. */
function initialState(r?: Rule) {
  const src = r?.source;
  const tgt = r?.target;
  return {
    name: r?.name ?? '',
    enabled: r?.enabled ?? true,
    kind: (src?.kind ?? 'outflow') as Kind,
    topicFilters: src?.kind === 'outflow' ? src.topicFilters.join(', ') : '',
    groupIds: src && src.kind !== 'inflow' ? src.groupIds.join(', ') : '',
    inUrls: src?.kind === 'inflow' ? src.nats.urls.join(', ') : '',
    inUser: src?.kind === 'inflow' ? (src.nats.user ?? '') : '',
    inPassword: '',
    inSubject: src?.kind === 'inflow' ? src.subject : '',
    inStream: src?.kind === 'inflow' ? (src.stream ?? '') : '',
    inTopic: src?.kind === 'inflow' ? src.topic : '',
    inQos: src?.kind === 'inflow' ? String(src.qos) : '0',
    inRetain: src?.kind === 'inflow' ? src.retain : false,
    targetType: (tgt?.type ?? 'webhook') as TargetType,
    url: tgt?.type === 'webhook' ? tgt.url : '',
    format: tgt?.type === 'webhook' ? tgt.format : ('json' as const),
    secret: '',
    timeoutMs: tgt?.type === 'webhook' ? String(tgt.timeoutMs) : '5000',
    natsUrls: tgt?.type === 'nats' ? tgt.nats.urls.join(', ') : '',
    natsUser: tgt?.type === 'nats' ? (tgt.nats.user ?? '') : '',
    natsPassword: '',
    natsToken: '',
    subject: tgt?.type === 'nats' ? tgt.subject : '',
    jetstream: tgt?.type === 'nats' ? tgt.jetstream : false,
    repTopic: tgt?.type === 'republish' ? tgt.topic : '',
    repQos: tgt?.type === 'republish' ? String(tgt.qos) : '0',
    repRetain: tgt?.type === 'republish' ? tgt.retain : false,
    maxBytes: r ? String(r.outbox.maxBytes) : '',
    maxAgeSecs: r ? String(r.outbox.maxAgeSecs) : '',
    clearSecrets: false,
  };
}
type State = ReturnType<typeof initialState>;

/** A secret as the API takes it: typed = new value; empty = keep (edit) or none (create); cleared = "". */
const secret = (v: string, clear: boolean) => (clear ? '' : v === '' ? undefined : v);
const optional = (v: string) => (v.trim() === '' ? undefined : v.trim());

function body(s: State): RuleBody {
  const source: S['RuleSourceInput'] =
    s.kind === 'outflow'
      ? { kind: 'outflow', topicFilters: list(s.topicFilters), groupIds: list(s.groupIds) }
      : s.kind === 'status'
        ? { kind: 'status', groupIds: list(s.groupIds) }
        : {
            kind: 'inflow',
            nats: { urls: list(s.inUrls), user: optional(s.inUser), password: secret(s.inPassword, s.clearSecrets) },
            subject: s.inSubject.trim(),
            stream: optional(s.inStream),
            topic: s.inTopic.trim(),
            qos: Number(s.inQos),
            retain: s.inRetain,
          };
  const target: S['RuleTargetInput'] | undefined =
    s.kind === 'inflow'
      ? undefined
      : s.targetType === 'webhook'
        ? { type: 'webhook', url: s.url.trim(), format: s.format, secret: secret(s.secret, s.clearSecrets), timeoutMs: Number(s.timeoutMs) }
        : s.targetType === 'nats'
          ? {
              type: 'nats',
              nats: {
                urls: list(s.natsUrls),
                user: optional(s.natsUser),
                password: secret(s.natsPassword, s.clearSecrets),
                token: secret(s.natsToken, s.clearSecrets),
              },
              subject: s.subject.trim(),
              jetstream: s.jetstream,
            }
          : { type: 'republish', topic: s.repTopic.trim(), qos: Number(s.repQos), retain: s.repRetain };
  const outbox: S['OutboxInput'] = {};
  if (s.maxBytes !== '') outbox.maxBytes = Number(s.maxBytes);
  if (s.maxAgeSecs !== '') outbox.maxAgeSecs = Number(s.maxAgeSecs);
  return { name: s.name.trim(), enabled: s.enabled, source, target, outbox };
}

function Select<T extends string>({ label, value, options, onChange }: { label: string; value: T; options: [T, string][]; onChange: (v: T) => void }) {
  const [id] = useState(() => `sel-${label.replace(/\W+/g, '-').toLowerCase()}`);
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value as T)}>
        {options.map(([v, l]) => (
          <option value={v}>{l}</option>
        ))}
      </select>
    </div>
  );
}

function Check({ id, label, checked, onChange }: { id: string; label: string; checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <div class="field checkbox">
      <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange((e.target as HTMLInputElement).checked)} />
      <label for={id}>{label}</label>
    </div>
  );
}

const QOS: ['0' | '1' | '2', string][] = [
  ['0', 'QoS 0'],
  ['1', 'QoS 1'],
  ['2', 'QoS 2'],
];

interface Props {
  initial?: Rule;
  submitLabel: string;
  onSubmit: (body: RuleBody) => Promise<void>;
  onCancel: () => void;
}

export function RuleForm({ initial, submitLabel, onSubmit, onCancel }: Props) {
  const [s, setS] = useState(() => initialState(initial));
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof State>(k: K) => (v: State[K]) => setS((cur) => ({ ...cur, [k]: v }));
  const fieldOf = (e: Error | null) => (e && 'field' in e ? ((e as { field?: string | null }).field ?? null) : null);
  // A server error for this field or one inside it (`source.topicFilters` covers `source.topicFilters[1]`).
  const serverField = (...fields: string[]) => {
    const f = fieldOf(error);
    return f && fields.some((x) => f === x || f.startsWith(`${x}[`) || f.startsWith(`${x}.`)) ? error!.message : null;
  };
  const had = (has: boolean | undefined) => (initial && has ? 'set: leave empty to keep it' : undefined);
  const tgt = initial?.target;
  const src = initial?.source;
  const hasAnySecret =
    (tgt?.type === 'webhook' && tgt.hasSecret) ||
    (tgt?.type === 'nats' && (tgt.nats.hasPassword || tgt.nats.hasToken || tgt.nats.hasCreds)) ||
    (src?.kind === 'inflow' && (src.nats.hasPassword || src.nats.hasToken || src.nats.hasCreds));

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSubmit(body(s));
    } catch (err) {
      setError(err as Error);
      setBusy(false);
    }
  };

  let sourceFields: ComponentChildren;
  if (s.kind === 'inflow') {
    sourceFields = (
      <>
        <Field label="NATS URLs" value={s.inUrls} onInput={set('inUrls')} serverError={serverField('source.nats.urls')} hint="nats://host:4222, comma separated" />
        <div class="grid2">
          <Field label="NATS user" value={s.inUser} onInput={set('inUser')} serverError={serverField('source.nats.user')} />
          <Field label="NATS password" type="password" autoComplete="new-password" value={s.inPassword} onInput={set('inPassword')} placeholder={had(src?.kind === 'inflow' && src.nats.hasPassword)} serverError={serverField('source.nats.password')} />
        </div>
        <div class="grid2">
          <Field label="Subject" value={s.inSubject} onInput={set('inSubject')} serverError={serverField('source.subject')} hint="e.g. orders.> (wildcards allowed)" />
          <Field label="JetStream stream (optional)" value={s.inStream} onInput={set('inStream')} serverError={serverField('source.stream')} />
        </div>
        <Field label="Publish on topic" value={s.inTopic} onInput={set('inTopic')} serverError={serverField('source.topic')} hint="Under a parent topic; {subject} is replaced by the subject with . as /" />
        <div class="grid2">
          <Select label="Inflow QoS" value={s.inQos as '0' | '1' | '2'} options={QOS} onChange={set('inQos')} />
          <Check id="in-retain" label="Retain" checked={s.inRetain} onChange={set('inRetain')} />
        </div>
      </>
    );
  } else {
    sourceFields = (
      <>
        {s.kind === 'outflow' ? (
          <Field label="Topic filters" value={s.topicFilters} onInput={set('topicFilters')} serverError={serverField('source.topicFilters')} hint="Under the instance's parent topics, comma separated; + and # allowed" />
        ) : null}
        <Field label="Group IDs (optional)" value={s.groupIds} onInput={set('groupIds')} serverError={serverField('source.groupIds')} hint="Only clients of these groups; empty = every client" />
      </>
    );
  }

  let targetFields: ComponentChildren = null;
  if (s.kind !== 'inflow') {
    targetFields =
      s.targetType === 'webhook' ? (
        <>
          <Field label="Webhook URL" value={s.url} onInput={set('url')} serverError={serverField('target.url')} hint="http:// or https://; POSTed with an x-mq-signature header" />
          <div class="grid2">
            <Field label="Signing secret" type="password" autoComplete="new-password" value={s.secret} onInput={set('secret')} placeholder={had(tgt?.type === 'webhook' && tgt.hasSecret)} serverError={serverField('target.secret')} />
            <Field label="Timeout (ms)" inputMode="numeric" value={s.timeoutMs} onInput={set('timeoutMs')} serverError={serverField('target.timeoutMs')} />
          </div>
          {s.kind === 'outflow' ? (
            <Select
              label="Body"
              value={s.format}
              options={[
                ['json', 'JSON envelope'],
                ['raw', 'Raw payload (metadata in headers)'],
              ]}
              onChange={set('format')}
            />
          ) : null}
        </>
      ) : s.targetType === 'nats' ? (
        <>
          <Field label="Target NATS URLs" value={s.natsUrls} onInput={set('natsUrls')} serverError={serverField('target.nats.urls')} hint="nats://host:4222, comma separated" />
          <div class="grid3">
            <Field label="Target NATS user" value={s.natsUser} onInput={set('natsUser')} serverError={serverField('target.nats.user')} />
            <Field label="Target NATS password" type="password" autoComplete="new-password" value={s.natsPassword} onInput={set('natsPassword')} placeholder={had(tgt?.type === 'nats' && tgt.nats.hasPassword)} serverError={serverField('target.nats.password')} />
            <Field label="Target NATS token" type="password" autoComplete="new-password" value={s.natsToken} onInput={set('natsToken')} placeholder={had(tgt?.type === 'nats' && tgt.nats.hasToken)} serverError={serverField('target.nats.token')} />
          </div>
          <div class="grid2">
            <Field label="Target subject" value={s.subject} onInput={set('subject')} serverError={serverField('target.subject')} />
            <Check id="jetstream" label="JetStream (publish acknowledged by a stream)" checked={s.jetstream} onChange={set('jetstream')} />
          </div>
        </>
      ) : (
        <>
          <Field label="Republish on topic" value={s.repTopic} onInput={set('repTopic')} serverError={serverField('target.topic')} />
          <div class="grid2">
            <Select label="Republish QoS" value={s.repQos as '0' | '1' | '2'} options={QOS} onChange={set('repQos')} />
            <Check id="rep-retain" label="Retain" checked={s.repRetain} onChange={set('repRetain')} />
          </div>
        </>
      );
  }

  return (
    <form onSubmit={submit} aria-label="Rule">
      <div class="grid2">
        <Field label="Name" value={s.name} onInput={set('name')} serverError={serverField('name')} />
        <Select
          label="Kind"
          value={s.kind}
          options={[
            ['outflow', 'Data outflow (messages to a target)'],
            ['status', 'Status notification (connect / disconnect events)'],
            ['inflow', 'Data inflow (NATS into the instance)'],
          ]}
          onChange={set('kind')}
        />
      </div>
      <fieldset>
        <legend>Source</legend>
        {sourceFields}
      </fieldset>
      {s.kind !== 'inflow' ? (
        <fieldset>
          <legend>Target</legend>
          <Select
            label="Target type"
            value={s.targetType}
            options={[
              ['webhook', 'HTTP(S) webhook'],
              ['nats', 'NATS subject'],
              ['republish', 'Republish in this instance'],
            ]}
            onChange={set('targetType')}
          />
          {targetFields}
          {fieldOf(error) === 'target' ? <div class="field-error">{error!.message}</div> : null}
        </fieldset>
      ) : null}
      <fieldset>
        <legend>Outbox on each broker {initial ? '' : '(empty = default: 64 MiB, 3 days)'}</legend>
        <div class="grid2">
          <Field label="Max bytes" inputMode="numeric" value={s.maxBytes} onInput={set('maxBytes')} serverError={serverField('outbox.maxBytes')} />
          <Field label="Max age (s)" inputMode="numeric" value={s.maxAgeSecs} onInput={set('maxAgeSecs')} serverError={serverField('outbox.maxAgeSecs')} />
        </div>
      </fieldset>
      <Check id="rule-enabled" label="Enabled" checked={s.enabled} onChange={set('enabled')} />
      {initial && hasAnySecret ? <Check id="clear-secrets" label="Remove the stored secrets" checked={s.clearSecrets} onChange={set('clearSecrets')} /> : null}
      <FormError error={error} />
      <div class="actions">
        <button type="button" class="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" class="btn primary" disabled={busy || s.name.trim() === ''}>
          {busy ? 'Saving…' : submitLabel}
        </button>
      </div>
    </form>
  );
}
