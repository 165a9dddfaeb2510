// Tokens: apply (resource picker from the parent topics, actions, expiry), query and revoke.
import { useState } from 'preact/hooks';
import { Api, type ApplyTokenResponse, type Instance, type QueryTokenResponse } from '../../api/endpoints';
import { Badge } from '../../components/Badge';
import { Confirm } from '../../components/Confirm';
import { SecretValue } from '../../components/CopyButton';
import { ErrorBox, FormError, Loading } from '../../components/States';
import { dateTime } from '../../lib/format';
import { href } from '../../lib/router';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';

const EXPIRY = [
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['604800', '7 days'],
  ['2592000', '30 days (maximum)'],
  ['custom', 'Custom date and time'],
] as const;

export function Tokens({ instance }: { instance: Instance }) {
  return (
    <div class="stack">
      <Apply instance={instance} />
      <div class="grid2">
        <Query instance={instance} />
        <Revoke instance={instance} />
      </div>
    </div>
  );
}

function Apply({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const data = useAsync(async () => {
    const [topics, keys] = await Promise.all([Api.listTopics(id), Api.listAccessKeys()]);
    return { topics: topics.map((t) => t.topic), keys: keys.filter((k) => k.instanceIds.includes(id) && k.enabled) };
  }, [id]);
  const [resources, setResources] = useState<string[]>([]);
  const [custom, setCustom] = useState('');
  const [actions, setActions] = useState('R,W');
  const [akId, setAkId] = useState('');
  const [expiry, setExpiry] = useState('3600');
  const [customTime, setCustomTime] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [result, setResult] = useState<ApplyTokenResponse | null>(null);
  const [busy, setBusy] = useState(false);

  if (data.error) return <ErrorBox error={data.error} onRetry={data.reload} />;
  if (!data.data) return <Loading />;
  const { topics, keys } = data.data;
  const accessKeyId = akId || keys[0]?.accessKeyId || '';
  const customErr = custom ? rules.topic(custom, { wildcards: true, max: instance.quotas.maxTopicLength, parents: topics }) : null;
  const expireTime = expiry === 'custom' ? (customTime ? new Date(customTime).getTime() : NaN) : Date.now() + Number(expiry) * 1000;
  const expiryErr = Number.isNaN(expireTime) ? 'Pick a date and time.' : expireTime < Date.now() + 60_000 ? 'At least one minute from now.' : null;
  const toggle = (r: string) => setResources(resources.includes(r) ? resources.filter((x) => x !== r) : [...resources, r]);
  const addCustom = () => {
    if (custom && !customErr && !resources.includes(custom)) setResources([...resources, custom]);
    setCustom('');
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await Api.applyToken(id, { resources: resources.join(','), actions, expireTime, accessKeyId }));
    } catch (err) {
      setError(err as Error);
    }
    setBusy(false);
  };

  if (topics.length === 0 || keys.length === 0)
    return (
      <div class="card">
        <h2>Apply for a token</h2>
        <p class="muted">
          A token needs {topics.length === 0 ? <a href={href(`/instances/${id}/topics`)}>a parent topic</a> : null}
          {topics.length === 0 && keys.length === 0 ? ' and ' : ''}
          {keys.length === 0 ? <a href={href(`/instances/${id}/access-keys`)}>an enabled AccessKey bound to this instance</a> : null}.
        </p>
      </div>
    );

  return (
    <form class="card" onSubmit={submit} aria-label="Apply for a token">
      <h2>Apply for a token</h2>
      <fieldset>
        <legend>Resources (topics or filters)</legend>
        <div class="chips" role="group" aria-label="Parent topics">
          {topics.flatMap((t) =>
            [`${t}/#`, t].map((r) => (
              <label class={`chip toggle${resources.includes(r) ? ' on' : ''}`}>
                <input type="checkbox" checked={resources.includes(r)} onChange={() => toggle(r)} />
                {r}
              </label>
            )),
          )}
        </div>
        <div class="input-row">
          <div class={`field grow${customErr ? ' invalid' : ''}`}>
            <label for="tok-custom">Other topic or filter</label>
            <input
              id="tok-custom"
              value={custom}
              placeholder={`${topics[0]}/devices/+`}
              onInput={(e) => setCustom((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => e.key === 'Enter' && (e.preventDefault(), addCustom())}
            />
            {customErr ? <div class="field-error">{customErr}</div> : null}
          </div>
          <button type="button" class="btn" disabled={!custom || !!customErr} onClick={addCustom}>
            Add
          </button>
        </div>
        {resources.length ? (
          <p class="small">
            Selected: <span class="mono">{resources.join(',')}</span> ({resources.length}/{instance.quotas.maxTokenResources})
          </p>
        ) : (
          <p class="field-hint">Pick at least one resource.</p>
        )}
      </fieldset>
      <div class="grid3">
        <div class="field">
          <label for="tok-actions">Actions</label>
          <select id="tok-actions" value={actions} onChange={(e) => setActions((e.target as HTMLSelectElement).value)}>
            <option value="R">R (subscribe)</option>
            <option value="W">W (publish)</option>
            <option value="R,W">R,W (both)</option>
          </select>
        </div>
        <div class="field">
          <label for="tok-ak">AccessKey clients log in with</label>
          <select id="tok-ak" value={accessKeyId} onChange={(e) => setAkId((e.target as HTMLSelectElement).value)}>
            {keys.map((k) => (
              <option value={k.accessKeyId}>
                {k.accessKeyId}
                {k.description ? ` (${k.description})` : ''}
              </option>
            ))}
          </select>
        </div>
        <div class={`field${expiryErr ? ' invalid' : ''}`}>
          <label for="tok-expiry">Expires in</label>
          <select id="tok-expiry" value={expiry} onChange={(e) => setExpiry((e.target as HTMLSelectElement).value)}>
            {EXPIRY.map(([v, l]) => (
              <option value={v}>{l}</option>
            ))}
          </select>
          {expiry === 'custom' ? (
            <>
              <label for="tok-expiry-at" class="sr-only">
                Expiry date and time
              </label>
              <input id="tok-expiry-at" type="datetime-local" value={customTime} onInput={(e) => setCustomTime((e.target as HTMLInputElement).value)} />
            </>
          ) : null}
          {expiryErr ? <div class="field-error">{expiryErr}</div> : null}
        </div>
      </div>
      <FormError error={error} />
      <div class="actions">
        <button type="submit" class="btn primary" disabled={busy || resources.length === 0 || !!expiryErr}>
          {busy ? 'Applying…' : 'Apply token'}
        </button>
      </div>
      {result ? (
        <div class="result" role="status">
          <SecretValue label="Token" value={result.token} />
          <p class="small">
            Valid until <strong>{dateTime(result.expireTime)}</strong>. Clients log in with username{' '}
            <span class="mono">
              Token|{accessKeyId}|{id}
            </span>{' '}
            and password <span class="mono">{actions === 'R,W' ? 'RW' : actions}|&lt;token&gt;</span>.
          </p>
        </div>
      ) : null}
    </form>
  );
}

function Query({ instance }: { instance: Instance }) {
  const [token, setToken] = useState('');
  const [result, setResult] = useState<QueryTokenResponse | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    try {
      setResult(await Api.queryToken(instance.instanceId, token.trim()));
    } catch (err) {
      setError(err as Error);
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-label="Query a token">
      <h2>Query a token</h2>
      <div class="field">
        <label for="tok-query">Token</label>
        <textarea id="tok-query" rows={3} class="mono" value={token} onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)} />
      </div>
      <FormError error={error} />
      {result ? (
        <p role="status">
          <Badge tone={result.valid ? 'ok' : 'bad'}>{result.status}</Badge>{' '}
          {result.expireTime ? <span class="small">expires {dateTime(result.expireTime)}</span> : null}
        </p>
      ) : null}
      <div class="actions">
        <button type="submit" class="btn" disabled={!token.trim()}>
          Query
        </button>
      </div>
    </form>
  );
}

function Revoke({ instance }: { instance: Instance }) {
  const [token, setToken] = useState('');
  const [confirming, setConfirming] = useState(false);
  const [done, setDone] = useState(false);
  return (
    <form
      class="card"
      aria-label="Revoke a token"
      onSubmit={(e) => {
        e.preventDefault();
        setDone(false);
        setConfirming(true);
      }}
    >
      <h2>Revoke a token</h2>
      <div class="field">
        <label for="tok-revoke">Token</label>
        <textarea id="tok-revoke" rows={3} class="mono" value={token} onInput={(e) => setToken((e.target as HTMLTextAreaElement).value)} />
      </div>
      {done ? (
        <p role="status" class="text-ok">
          Revoked. Clients using it are disconnected.
        </p>
      ) : null}
      <div class="actions">
        <button type="submit" class="btn danger" disabled={!token.trim()}>
          Revoke
        </button>
      </div>
      {confirming ? (
        <Confirm
          title="Revoke token"
          confirmLabel="Revoke"
          onClose={() => setConfirming(false)}
          onConfirm={async () => {
            await Api.revokeToken(instance.instanceId, token.trim());
            setToken('');
            setDone(true);
          }}
        >
          Revoke this token? Every client using it is disconnected and cannot log in with it again.
        </Confirm>
      ) : null}
    </form>
  );
}
