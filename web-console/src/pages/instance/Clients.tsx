// Online clients: look up one or up to 10 client IDs, see connections and subscriptions, kick.
import { useState } from 'preact/hooks';
import { Api, type Instance } from '../../api/endpoints';
import type { ClientEvent, SessionView } from '../../api/live';
import { Badge } from '../../components/Badge';
import { Confirm } from '../../components/Confirm';
import { Empty, ErrorBox, FormError, Loading } from '../../components/States';
import { dateTime } from '../../lib/format';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';

export function Clients({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const [input, setInput] = useState('');
  const [results, setResults] = useState<SessionView[] | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const ids = input
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const idError =
    ids.length > 10 ? 'At most 10 client IDs at once.' : ids.map((c) => rules.clientId(c, instance.quotas.maxClientIdLength)).find((e) => e) ?? null;

  const lookup = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setResults(ids.length === 1 ? [await Api.querySession(id, ids[0])] : await Api.batchQuerySessions(id, ids));
    } catch (err) {
      setError(err as Error);
      setResults(null);
    }
    setBusy(false);
  };

  return (
    <div class="stack">
      <form class="card inline-form" onSubmit={lookup} aria-label="Look up clients">
        <div class={`field grow${input && idError ? ' invalid' : ''}`}>
          <label for="client-lookup">Client ID (up to 10, separated by commas)</label>
          <input id="client-lookup" class="mono" value={input} placeholder="GID_demo@@@device-1" onInput={(e) => setInput((e.target as HTMLInputElement).value)} />
          {input && idError ? <div class="field-error">{idError}</div> : null}
        </div>
        <button type="submit" class="btn primary" disabled={busy || ids.length === 0 || !!idError}>
          {busy ? 'Looking up…' : 'Look up'}
        </button>
      </form>
      <FormError error={error} />
      {results === null ? (
        <Empty title="Look up a client">Enter a client ID to see whether it is online, where from, and what it subscribes to.</Empty>
      ) : (
        results.map((s) => <ClientCard key={s.clientId} instanceId={id} session={s} onKicked={() => lookup()} />)
      )}
    </div>
  );
}

function ClientCard({ instanceId, session: s, onKicked }: { instanceId: string; session: SessionView; onKicked: () => void }) {
  const [kicking, setKicking] = useState(false);
  const [showEvents, setShowEvents] = useState(false);
  const subs = [...new Set(s.channels.flatMap((c) => c.subscriptions))];
  return (
    <div class="card client-card" data-client-id={s.clientId}>
      <div class="card-head">
        <h2 class="mono">{s.clientId}</h2>
        <div class="actions inline">
          <Badge tone={s.online ? 'ok' : 'muted'}>{s.online ? `online · ${s.connections} connection${s.connections === 1 ? '' : 's'}` : 'offline'}</Badge>
          {s.online ? (
            <button type="button" class="btn danger" onClick={() => setKicking(true)}>
              Kick
            </button>
          ) : null}
        </div>
      </div>
      {s.channels.length ? (
        <table aria-label={`connections of ${s.clientId}`}>
          <thead>
            <tr>
              <th>Address</th>
              <th>Broker</th>
              <th>Channel</th>
              <th>Connected</th>
            </tr>
          </thead>
          <tbody>
            {s.channels.map((c) => (
              <tr>
                <td data-label="Address" class="mono">
                  {c.clientIp}
                </td>
                <td data-label="Broker">{c.nodeId}</td>
                <td data-label="Channel" class="mono small">
                  {c.channelId}
                </td>
                <td data-label="Connected">{dateTime(c.connectedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <h3>Subscriptions</h3>
      {subs.length ? (
        <ul class="chips" aria-label="subscriptions">
          {subs.map((t) => (
            <li class="chip mono">{t}</li>
          ))}
        </ul>
      ) : (
        <p class="muted">none</p>
      )}
      <button type="button" class="btn small ghost" onClick={() => setShowEvents(!showEvents)} aria-expanded={showEvents}>
        {showEvents ? 'Hide' : 'Show'} connection history
      </button>
      {showEvents ? <Events instanceId={instanceId} clientId={s.clientId} /> : null}
      {kicking ? (
        <Confirm
          title="Kick client"
          confirmLabel="Kick"
          onClose={() => setKicking(false)}
          onConfirm={async () => {
            await Api.closeConnection(instanceId, s.clientId);
            setTimeout(onKicked, 1000);
          }}
        >
          Close every connection of <strong class="mono">{s.clientId}</strong>? The client may reconnect unless its credentials are revoked.
        </Confirm>
      ) : null}
    </div>
  );
}

function Events({ instanceId, clientId }: { instanceId: string; clientId: string }) {
  const ev = useAsync(() => Api.listClientEvents(instanceId, clientId), [instanceId, clientId]);
  if (ev.error) return <ErrorBox error={ev.error} onRetry={ev.reload} />;
  if (!ev.data) return <Loading />;
  if (ev.data.events.length === 0) return <p class="muted">No events recorded.</p>;
  return (
    <table aria-label="connection history">
      {ev.data.total > ev.data.events.length ? (
        <caption class="muted small">
          latest {ev.data.events.length} of {ev.data.total} events
        </caption>
      ) : null}
      <thead>
        <tr>
          <th>Time</th>
          <th>Event</th>
          <th>Why</th>
          <th>Address</th>
          <th>Channel</th>
        </tr>
      </thead>
      <tbody>
        {ev.data.events.map((e: ClientEvent) => (
          <tr>
            <td data-label="Time">{dateTime(e.time)}</td>
            <td data-label="Event">
              <Badge tone={e.eventType === 'connect' ? 'ok' : 'muted'}>{e.eventType}</Badge>
            </td>
            <td data-label="Why">{e.reason ?? <span class="muted">—</span>}</td>
            <td data-label="Address" class="mono">
              {e.clientIp}
            </td>
            <td data-label="Channel" class="mono small">
              {e.channelId}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
