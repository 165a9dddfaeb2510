// Shapes of the broker and session operations (ListBrokers, CreateBrokerNode, QuerySessionByClientId,
// BatchQuerySessionByClientIds, CloseConnection, SendMessage, ListClientEvents) as described by
// docs/sync-protocol.md and common/src/sync.rs, used until they appear in openapi/openapi.json; then
// these aliases point at the generated schema instead.

export type BrokerState = 'inSync' | 'lagging' | 'silent' | string;

export interface BrokerNode {
  nodeId: string;
  description?: string;
  enabled?: boolean;
  status: BrokerState;
  appliedVersion?: number | null;
  currentVersion?: number | null;
  lastSeenAt?: string | null;
  lastError?: string | null;
  softwareVersion?: string | null;
  connections?: number;
  subscriptions?: number;
  messagesInPerSec?: number;
  messagesOutPerSec?: number;
  startedAtMs?: number | null;
}
export interface BrokerList {
  brokers: BrokerNode[];
  currentVersion?: number;
}
export interface CreatedBrokerNode extends BrokerNode {
  nodeSecret: string;
}
export interface SessionConnection {
  nodeId?: string;
  channelId?: string;
  clientIp?: string;
  connectedAt?: string | number;
}
export interface SessionView {
  clientId: string;
  online: boolean;
  connections?: SessionConnection[];
  subscriptions?: string[];
  clientIp?: string | null;
  nodeId?: string | null;
}
export interface SessionList {
  sessions: SessionView[];
}
export interface ClientEvent {
  clientId: string;
  eventType: string;
  time: number;
  channelId: string;
  clientIp: string;
  nodeId?: string;
  topics?: string[];
}
export interface ClientEventList {
  events: ClientEvent[];
}
export interface SendMessageResponse {
  msgId: string;
}
