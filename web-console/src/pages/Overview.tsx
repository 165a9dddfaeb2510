// Overview: instance count, broker health (in sync / lagging / silent) and live charts from ListBrokers.
import { Api } from '../api/endpoints';
import { Chart } from '../components/Chart';
import { ErrorBox, Loading } from '../components/States';
import { Badge } from '../components/Badge';
import { brokerLabel, brokerTone, useBrokers } from '../lib/brokers';
import { ago, num } from '../lib/format';
import { href } from '../lib/router';
import { useAsync } from '../lib/useAsync';

export function Overview() {
  const instances = useAsync(() => Api.listInstances(), []);
  const brokers = useBrokers();
  const list = brokers.data?.brokers ?? [];
  const count = (s: string) => list.filter((b) => b.state === s).length;
  const last = brokers.history[brokers.history.length - 1];

  return (
    <section>
      <div class="page-head">
        <h1>Overview</h1>
      </div>
      <div class="stats">
        <a class="stat" href={href('/instances')}>
          <span class="stat-label">Instances</span>
          <span class="stat-value" data-testid="instances-count">
            {instances.loading && !instances.data ? '…' : instances.error ? '!' : num(instances.data?.length)}
          </span>
        </a>
        <a class="stat ok" href={href('/brokers')}>
          <span class="stat-label">Brokers in sync</span>
          <span class="stat-value">{brokers.data ? count('in_sync') : '…'}</span>
        </a>
        <a class="stat warn" href={href('/brokers')}>
          <span class="stat-label">Lagging</span>
          <span class="stat-value">{brokers.data ? count('lagging') : '…'}</span>
        </a>
        <a class="stat bad" href={href('/brokers')}>
          <span class="stat-label">Silent</span>
          <span class="stat-value">{brokers.data ? count('silent') : '…'}</span>
        </a>
        <div class="stat">
          <span class="stat-label">Live connections</span>
          <span class="stat-value">{last ? num(last.connections) : '…'}</span>
        </div>
      </div>
      {instances.error ? <ErrorBox error={instances.error} onRetry={instances.reload} /> : null}
      {brokers.error && !brokers.data ? (
        <ErrorBox error={brokers.error} onRetry={brokers.reload} />
      ) : !brokers.data ? (
        <Loading label="Loading broker status…" />
      ) : (
        <div class="charts">
          <Chart title="Live connections" series={[{ name: 'connections', color: '#2563eb', points: brokers.history.map((s) => s.connections) }]} />
          <Chart
            title="Messages per second"
            unit="/s"
            series={[
              { name: 'in', color: '#16a34a', points: brokers.history.map((s) => s.inRate) },
              { name: 'out', color: '#ea580c', points: brokers.history.map((s) => s.outRate) },
            ]}
          />
        </div>
      )}
      {list.some((b) => b.state !== 'in_sync') ? (
        <div class="card attention">
          <h2>Brokers needing attention</h2>
          <ul class="plain">
            {list
              .filter((b) => b.state !== 'in_sync')
              .map((b) => (
                <li>
                  <Badge tone={brokerTone(b.state)}>{brokerLabel(b.state)}</Badge> <strong class="mono">{b.nodeId}</strong>{' '}
                  <span class="muted">
                    last seen {ago(b.lastHeartbeatAt)}
                    {b.lastError ? ` · ${b.lastError}` : ''}
                  </span>
                </li>
              ))}
          </ul>
        </div>
      ) : null}
      {brokers.data && list.length === 0 ? (
        <p class="muted">
          No broker has reported yet. Add one on the <a href={href('/brokers')}>Brokers</a> page.
        </p>
      ) : null}
    </section>
  );
}
