// An instance's traffic against its quotas (GetInstance's usage: the brokers' latest heartbeats, read
// again every 5 s) and over time (GetInstanceUsageHistory: one point per minute, the highest totals of
// that minute, for the last hour or day, read again every 10 s; the window ends at the minute it was read).
import { useState } from 'preact/hooks';
import { Api, type Instance, type UsagePoint } from '../../api/endpoints';
import { Chart } from '../../components/Chart';
import { Meter } from '../../components/Meter';
import { ErrorBox } from '../../components/States';
import { num } from '../../lib/format';
import { useAsync, useInterval } from '../../lib/useAsync';

const WINDOWS: [number, string][] = [
  [60, 'last hour'],
  [1440, 'last 24 hours'],
];

/** One value per minute of the window, oldest first; a minute without a point (no broker reported the instance) is 0. */
export function perMinute(points: UsagePoint[], minutes: number, pick: (p: UsagePoint) => number, now = Date.now()): number[] {
  const last = Math.floor(now / 60_000);
  const byMinute = new Map(points.map((p) => [Math.floor(new Date(p.time).getTime() / 60_000), pick(p)]));
  return Array.from({ length: minutes }, (_, i) => byMinute.get(last - minutes + 1 + i) ?? 0);
}

interface Row {
  label: string;
  used: number;
  /** The quota it counts against, if any. */
  limit?: number;
  digits?: number;
}

export function Usage({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const current = useAsync(() => Api.getInstance(id), [id]);
  const [minutes, setMinutes] = useState(60);
  const history = useAsync(
    () => Api.getInstanceUsageHistory(id, minutes).then((h) => ({ points: h.points, at: Date.now() })),
    [id, minutes],
  );
  useInterval(current.reload, 5000);
  useInterval(history.reload, 10_000);
  const { usage: u, quotas: q } = current.data ?? instance;
  const rows: Row[] = u
    ? [
        { label: 'Connections', used: u.connections, limit: q.maxConnections },
        { label: 'Messages in per second', used: u.messagesInPerSec, limit: q.maxMessagesPerSecond, digits: 1 },
        { label: 'Offline messages stored', used: u.offlineMessages, limit: q.maxOfflineMessages },
        { label: 'Subscriptions', used: u.subscriptions },
        { label: 'Messages out per second', used: u.messagesOutPerSec, digits: 1 },
      ]
    : [];
  const points = history.data?.points ?? [];
  const series = (pick: (p: UsagePoint) => number) => perMinute(points, minutes, pick, history.data?.at);
  return (
    <div class="card">
      <div class="card-head">
        <h2>Usage</h2>
        <span class="muted">
          {u ? `reported by ${u.reportingBrokers} broker${u.reportingBrokers === 1 ? '' : 's'}` : ''}
        </span>
      </div>
      {current.error ? <ErrorBox error={current.error} onRetry={current.reload} /> : null}
      <table class="quotas" aria-label="usage">
        <tbody>
          {rows.map((r) => (
            <tr>
              <th scope="row">{r.label}</th>
              <td class="num">
                {num(r.used, r.digits)}
                {r.limit !== undefined ? ` / ${num(r.limit)}` : ''}
                {r.limit !== undefined ? <Meter label={r.label} used={r.used} limit={r.limit} /> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="card-head">
        <h3>Per minute</h3>
        <label>
          History{' '}
          <select value={minutes} onChange={(e) => setMinutes(Number((e.target as HTMLSelectElement).value))}>
            {WINDOWS.map(([m, label]) => (
              <option value={m}>{label}</option>
            ))}
          </select>
        </label>
      </div>
      {history.error ? <ErrorBox error={history.error} onRetry={history.reload} /> : null}
      <div class="charts">
        <Chart title="Connections per minute" series={[{ name: 'connections', color: '#2563eb', points: series((p) => p.connections) }]} />
        <Chart
          title="Messages per second, per minute"
          unit="/s"
          series={[
            { name: 'in', color: '#059669', points: series((p) => p.messagesInPerSec) },
            { name: 'out', color: '#d97706', points: series((p) => p.messagesOutPerSec) },
          ]}
        />
      </div>
      <p class="muted">
        Each point is the highest total seen in its minute, {WINDOWS.find(([m]) => m === minutes)?.[1]} up to {history.data ? new Date(history.data.at).toLocaleTimeString() : 'now'};
        a minute in which no broker reported the instance counts as zero.
      </p>
    </div>
  );
}
