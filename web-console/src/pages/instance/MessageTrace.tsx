// Message trace (docs/trace.md): by message ID or client, who published a message and to whom it
// was pushed, live or from offline messages, as every live broker recorded it; newest first.
import { useEffect, useState } from 'preact/hooks';
import { Api, type Instance, type MessageTracePage, type MessageTraceRecord } from '../../api/endpoints';
import { Badge } from '../../components/Badge';
import { Field } from '../../components/Field';
import { FormError } from '../../components/States';
import { dateTime } from '../../lib/format';
import { href } from '../../lib/router';

const ACTIONS: Record<string, string> = {
  pub_mqtt: 'published by the client',
  pub_mq: 'published by the backend',
  sub: 'pushed to the client',
  push_offline: 'pushed from offline messages',
};

const MSG_ID = /^[0-9A-Fa-f]{32}$/;

export function MessageTrace({ instance, msgId: initialMsgId, clientId: initialClientId }: { instance: Instance; msgId: string; clientId: string }) {
  const id = instance.instanceId;
  const [msgId, setMsgId] = useState(initialMsgId);
  const [clientId, setClientId] = useState(initialClientId);
  const [kind, setKind] = useState('');
  const [result, setResult] = useState<MessageTracePage | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const msgCheck = (v: string) => (v && !MSG_ID.test(v) ? '32 hexadecimal characters (the ID SendMessage answers).' : null);
  const ready = (msgId || clientId) && !msgCheck(msgId);

  const search = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setResult(await Api.queryMessageTrace(id, { msgId, clientId, kind }));
    } catch (err) {
      setError(err as Error);
    }
    setBusy(false);
  };
  // Opened from a link (a message ID or a client ID): look at once.
  useEffect(() => {
    if ((initialMsgId && !msgCheck(initialMsgId)) || initialClientId) void search();
  }, []);

  return (
    <div class="stack">
      <form class="card inline-form" onSubmit={search} aria-label="Search the message trace">
        <Field label="Message ID" value={msgId} onInput={setMsgId} check={msgCheck} class="mono" />
        <Field label="Client ID" value={clientId} onInput={setClientId} hint="A publisher or receiver." />
        <div class="field">
          <label for="trace-kind">Steps</label>
          <select id="trace-kind" value={kind} onChange={(e) => setKind((e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            <option value="publish">publications</option>
            <option value="delivery">deliveries</option>
          </select>
        </div>
        <button type="submit" class="btn primary" disabled={busy || !ready}>
          {busy ? 'Searching…' : 'Search'}
        </button>
        <FormError error={error} />
      </form>
      {result ? <TraceTable instanceId={id} page={result} /> : <p class="muted">Records are kept 3 days on the brokers; every live broker is asked.</p>}
    </div>
  );
}

function TraceTable({ instanceId, page }: { instanceId: string; page: MessageTracePage }) {
  return (
    <div class="card">
      {page.brokersAsked === 0 ? (
        <p class="field-error" role="alert">
          No broker is live: the records are kept on the brokers, so none can be shown now.
        </p>
      ) : null}
      {page.missingNodes.length ? (
        <p class="field-error" role="alert">
          Brokers that did not answer in time (their records are missing): {page.missingNodes.join(', ')}
        </p>
      ) : null}
      {page.records.length === 0 ? (
        <p class="muted">No records.</p>
      ) : (
        <table aria-label="message trace">
          <caption class="muted small">
            {page.records.length} of {page.total} records, newest first
          </caption>
          <thead>
            <tr>
              <th>Time</th>
              <th>Step</th>
              <th>Client ID</th>
              <th>Message ID</th>
            </tr>
          </thead>
          <tbody>
            {page.records.map((r: MessageTraceRecord) => (
              <tr>
                <td data-label="Time">{dateTime(r.time)}</td>
                <td data-label="Step">
                  <Badge tone={r.action.startsWith('pub') ? 'ok' : 'muted'}>{r.action}</Badge> <span class="small muted">{ACTIONS[r.action] ?? ''}</span>
                </td>
                <td data-label="Client ID" class="mono">
                  {r.clientId ? <a href={href(`/instances/${instanceId}/message-trace?clientId=${encodeURIComponent(r.clientId)}`)}>{r.clientId}</a> : <span class="muted">backend</span>}
                </td>
                <td data-label="Message ID" class="mono small">
                  <a href={href(`/instances/${instanceId}/message-trace?msgId=${r.msgId}`)}>{r.msgId}</a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
