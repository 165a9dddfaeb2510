// Polls ListBrokers and keeps a rolling history of totals for the live charts.
import { useState } from 'preact/hooks';
import { Api } from '../api/endpoints';
import type { BrokerNode } from '../api/live';
import { useAsync, useInterval } from './useAsync';

export interface BrokerSample {
  connections: number;
  inRate: number;
  outRate: number;
}

const HISTORY = 60;

export function useBrokers(pollMs = 2000) {
  const [history, setHistory] = useState<BrokerSample[]>([]);
  const state = useAsync(async () => {
    const list = await Api.listBrokers();
    const live = list.brokers.filter((b) => b.state !== 'silent' && b.state !== 'never_seen');
    const sample = {
      connections: sum(live, (b) => b.connections),
      inRate: sum(live, (b) => b.messagesInPerSec),
      outRate: sum(live, (b) => b.messagesOutPerSec),
    };
    setHistory((h) => [...h.slice(-(HISTORY - 1)), sample]);
    return list;
  }, []);
  useInterval(state.reload, pollMs);
  return { ...state, history };
}

function sum(bs: BrokerNode[], f: (b: BrokerNode) => number | null | undefined): number {
  return bs.reduce((a, b) => a + (f(b) ?? 0), 0);
}

export function brokerTone(state: string): 'ok' | 'warn' | 'bad' | 'muted' {
  return state === 'in_sync' ? 'ok' : state === 'lagging' ? 'warn' : state === 'silent' ? 'bad' : 'muted';
}

export function brokerLabel(state: string): string {
  return state.replace('_', ' ');
}

/** A clustered broker's link to NATS: up, down, or none for a broker that runs alone. */
export function clusterLinkTone(link: BrokerNode['clusterLink']): 'ok' | 'bad' | 'muted' {
  return link === 'up' ? 'ok' : link === 'down' ? 'bad' : 'muted';
}

export function clusterLinkLabel(link: BrokerNode['clusterLink']): string {
  return link === 'up' ? 'up' : link === 'down' ? 'down' : 'alone';
}
