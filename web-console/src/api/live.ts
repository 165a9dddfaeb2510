// Broker and session shapes (ListBrokers, CreateBrokerNode, QuerySessionByClientId,
// BatchQuerySessionByClientIds, CloseConnection, SendMessage, ListClientEvents), from the generated schema.
import type { components } from './schema';

type S = components['schemas'];
export type BrokerState = S['BrokerState'];
export type BrokerNode = S['BrokerNode'];
export type BrokerList = S['BrokerList'];
export type CreatedBrokerNode = S['CreatedBrokerNode'];
export type CreateBrokerNodeRequest = S['CreateBrokerNodeRequest'];
export type SessionView = S['Session'];
export type SessionChannel = S['Channel'];
export type SessionList = S['SessionList'];
export type ClientEvent = S['ClientEventRecord'];
export type ClientEventPage = S['ClientEventPage'];
export type SendMessageRequest = S['SendMessageRequest'];
export type SendMessageResponse = S['SendMessageResponse'];
export type CommandAccepted = S['CommandAccepted'];
