// Polls ListBrokers and keeps a rolling history of totals for the live charts.
import { useState } from 'preact/hooks';
import { Api } from '../api/endpoints';
import type { BrokerNode } from '../api/pending';
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
    const brokers = await Api.listBrokers();
    const sample = {
      connections: sum(brokers, (b) => b.connections),
      inRate: sum(brokers, (b) => b.messagesInPerSec),
      outRate: sum(brokers, (b) => b.messagesOutPerSec),
    };
    setHistory((h) => [...h.slice(-(HISTORY - 1)), sample]);
    return brokers;
  }, []);
  useInterval(state.reload, pollMs);
  return { ...state, history };
}

function sum(bs: BrokerNode[], f: (b: BrokerNode) => number | undefined): number {
  return bs.reduce((a, b) => a + (f(b) ?? 0), 0);
}

export function brokerTone(status: string): 'ok' | 'warn' | 'bad' | 'muted' {
  return status === 'inSync' ? 'ok' : status === 'lagging' ? 'warn' : status === 'silent' ? 'bad' : 'muted';
}

export function brokerLabel(status: string): string {
  return status === 'inSync' ? 'in sync' : status;
}
