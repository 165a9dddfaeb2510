// One typed function per control-plane operation (operationId in the name), over the generated schema.
import { request, seg } from './client';
import type { components } from './schema';
import type { BrokerList, CommandAccepted, CreateBrokerNodeRequest, CreatedBrokerNode, SessionView, SessionList, ClientEventPage, SendMessageRequest, SendMessageResponse } from './live';

type S = components['schemas'];
export type Instance = S['Instance'];
export type Quotas = S['QuotasView'];
export type QuotasPatch = S['QuotasPatch'];
export type Topic = S['Topic'];
export type GroupId = S['GroupId'];
export type AccessKey = S['AccessKey'];
export type CreatedAccessKey = S['CreatedAccessKey'];
export type DeviceCredential = S['DeviceCredential'];
export type DeviceCredentialResult = S['DeviceCredentialResult'];
export type GroupIdResult = S['GroupIdResult'];
export type ApplyTokenResponse = S['ApplyTokenResponse'];
export type QueryTokenResponse = S['QueryTokenResponse'];
export type UsageHistory = S['UsageHistory'];
export type UsagePoint = S['UsagePoint'];
export type Rule = S['Rule'];
export type RuleTestResult = S['RuleTestResult'];
export type DeadLetter = S['DeadLetter'];
export type CustomAuthIdentity = S['CustomAuthIdentity'];
export type CustomAuthIdentitySettings = S['CustomAuthIdentitySettings'];
export type CustomAuthPermission = S['CustomAuthPermission'];
export type ConnectBlacklistEntry = S['ConnectBlacklistEntry'];
export type MessageTracePage = S['MessageTracePage'];
export type MessageTraceRecord = S['MessageTraceRecord'];

/** Every item of a list paged by `nextToken`. */
async function allPages<P extends { nextToken?: string | null }, T>(fetch: (token: string) => Promise<P>, items: (page: P) => T[]): Promise<T[]> {
  const all: T[] = [];
  let token = '';
  do {
    const page = await fetch(token);
    all.push(...items(page));
    token = page.nextToken ?? '';
  } while (token);
  return all;
}

const inst = (id: string) => `/instances/${seg(id)}`;

export const Api = {
  signIn: (body: S['LoginRequest']) => request<S['ConsoleSession']>('POST', '/console/session', body),
  session: () => request<S['ConsoleSession']>('GET', '/console/session'),
  signOut: () => request<void>('DELETE', '/console/session'),

  listInstances: () => request<S['InstanceList']>('GET', '/instances').then((r) => r.instances),
  getInstance: (id: string) => request<Instance>('GET', inst(id)),
  createInstance: (body: S['CreateInstanceRequest']) => request<Instance>('POST', '/instances', body),
  updateInstance: (id: string, body: S['UpdateInstanceRequest']) => request<Instance>('PATCH', inst(id), body),
  deleteInstance: (id: string) => request<void>('DELETE', inst(id)),
  getInstanceUsageHistory: (id: string, minutes: number) => request<UsageHistory>('GET', `${inst(id)}/usage-history?minutes=${minutes}`),

  listTopics: (id: string) => request<S['TopicList']>('GET', `${inst(id)}/topics`).then((r) => r.topics),
  createTopic: (id: string, body: S['CreateTopicRequest']) => request<Topic>('POST', `${inst(id)}/topics`, body),
  deleteTopic: (id: string, topic: string) => request<void>('DELETE', `${inst(id)}/topics/${seg(topic)}`),

  listGroups: (id: string) => request<S['GroupIdList']>('GET', `${inst(id)}/groups`).then((r) => r.groupIds),
  createGroup: (id: string, body: S['CreateGroupIdRequest']) => request<GroupId>('POST', `${inst(id)}/groups`, body),
  deleteGroup: (id: string, groupId: string) => request<void>('DELETE', `${inst(id)}/groups/${seg(groupId)}`),

  listRules: (id: string) => request<S['RuleList']>('GET', `${inst(id)}/rules`).then((r) => r.rules),
  getRule: (id: string, ruleId: string) => request<Rule>('GET', `${inst(id)}/rules/${seg(ruleId)}`),
  createRule: (id: string, body: S['CreateRuleRequest']) => request<Rule>('POST', `${inst(id)}/rules`, body),
  updateRule: (id: string, ruleId: string, body: S['UpdateRuleRequest']) => request<Rule>('PATCH', `${inst(id)}/rules/${seg(ruleId)}`, body),
  deleteRule: (id: string, ruleId: string) => request<void>('DELETE', `${inst(id)}/rules/${seg(ruleId)}`),
  enableRule: (id: string, ruleId: string) => request<Rule>('POST', `${inst(id)}/rules/${seg(ruleId)}/enable`),
  disableRule: (id: string, ruleId: string) => request<Rule>('POST', `${inst(id)}/rules/${seg(ruleId)}/disable`),
  testRule: (id: string, ruleId: string) => request<RuleTestResult>('POST', `${inst(id)}/rules/${seg(ruleId)}/test`),
  listRuleDeadLetters: (id: string, ruleId: string) =>
    request<S['DeadLetterList']>('GET', `${inst(id)}/rules/${seg(ruleId)}/dead-letters`).then((r) => r.deadLetters),

  listAccessKeys: () => request<S['AccessKeyList']>('GET', '/access-keys').then((r) => r.accessKeys),
  createAccessKey: (body: S['CreateAccessKeyRequest']) => request<CreatedAccessKey>('POST', '/access-keys', body),
  updateAccessKey: (akId: string, body: S['UpdateAccessKeyRequest']) => request<AccessKey>('PATCH', `/access-keys/${seg(akId)}`, body),
  deleteAccessKey: (akId: string) => request<void>('DELETE', `/access-keys/${seg(akId)}`),

  applyToken: (id: string, body: S['ApplyTokenRequest']) => request<ApplyTokenResponse>('POST', `${inst(id)}/tokens`, body),
  revokeToken: (id: string, token: string) => request<void>('POST', `${inst(id)}/tokens/revoke`, { token }),
  queryToken: (id: string, token: string) => request<QueryTokenResponse>('POST', `${inst(id)}/tokens/query`, { token }),

  listDeviceClientIds: (id: string, groupId: string, pageNo = 1, pageSize = 100) =>
    request<S['ClientIdPage']>('GET', `${inst(id)}/device-credentials?groupId=${seg(groupId)}&pageNo=${pageNo}&pageSize=${pageSize}`),
  registerDevice: (id: string, clientId: string) => request<DeviceCredential>('POST', `${inst(id)}/device-credentials`, { clientId }),
  batchCreateGroups: (id: string, groups: S['NewGroup'][]) =>
    request<S['BatchCreateGroupIdResponse']>('POST', `${inst(id)}/groups/batch`, { groups }),
  batchRegisterDevices: (id: string, clientIds: string[]) =>
    request<S['BatchRegisterDeviceCredentialResponse']>('POST', `${inst(id)}/device-credentials/batch`, { clientIds }),
  getDevice: (id: string, clientId: string) => request<DeviceCredential>('GET', `${inst(id)}/device-credentials/${seg(clientId)}`),
  refreshDevice: (id: string, clientId: string) => request<DeviceCredential>('POST', `${inst(id)}/device-credentials/${seg(clientId)}/refresh`),
  unregisterDevice: (id: string, clientId: string) => request<void>('DELETE', `${inst(id)}/device-credentials/${seg(clientId)}`),

  listBrokers: () => request<BrokerList>('GET', '/brokers'),
  createBrokerNode: (body: CreateBrokerNodeRequest) => request<CreatedBrokerNode>('POST', '/brokers', body),
  deleteBrokerNode: (nodeId: string) => request<void>('DELETE', `/brokers/${seg(nodeId)}`),
  querySession: (id: string, clientId: string) => request<SessionView>('GET', `${inst(id)}/sessions/${seg(clientId)}`),
  batchQuerySessions: (id: string, clientIds: string[]) =>
    request<SessionList>('POST', `${inst(id)}/sessions/batch-query`, { clientIds }).then((r) => r.sessions),
  closeConnection: (id: string, clientId: string) => request<CommandAccepted>('POST', `${inst(id)}/sessions/${seg(clientId)}/close`),
  listClientEvents: (id: string, clientId: string, pageSize = 50) =>
    request<ClientEventPage>('GET', `${inst(id)}/client-events?clientId=${seg(clientId)}&pageNo=1&pageSize=${pageSize}`),
  sendMessage: (id: string, body: SendMessageRequest) => request<SendMessageResponse>('POST', `${inst(id)}/messages`, body),

  queryMessageTrace: (id: string, q: { msgId?: string; clientId?: string; kind?: string }) => {
    const params = new URLSearchParams({ pageSize: '100', reverse: 'true' });
    for (const [k, v] of Object.entries(q)) if (v) params.set(k, v);
    return request<MessageTracePage>('GET', `${inst(id)}/message-trace?${params}`);
  },
  listCustomIdentities: (id: string) =>
    allPages(
      (t) => request<S['CustomAuthIdentityPage']>('GET', `${inst(id)}/custom-auth/identities?nextToken=${seg(t)}`),
      (p: S['CustomAuthIdentityPage']) => p.identities,
    ),
  addCustomIdentity: (id: string, body: S['AddCustomAuthIdentityRequest']) =>
    request<CustomAuthIdentity>('POST', `${inst(id)}/custom-auth/identities`, body),
  updateCustomIdentity: (id: string, username: string, body: CustomAuthIdentitySettings) =>
    request<CustomAuthIdentity>('PUT', `${inst(id)}/custom-auth/identities/${seg(username)}`, body),
  deleteCustomIdentity: (id: string, username: string) => request<void>('DELETE', `${inst(id)}/custom-auth/identities/${seg(username)}`),
  listCustomPermissions: (id: string) =>
    allPages(
      (t) => request<S['CustomAuthPermissionPage']>('GET', `${inst(id)}/custom-auth/permissions?nextToken=${seg(t)}`),
      (p: S['CustomAuthPermissionPage']) => p.permissions,
    ),
  addCustomPermission: (id: string, body: CustomAuthPermission) => request<CustomAuthPermission>('POST', `${inst(id)}/custom-auth/permissions`, body),
  updateCustomPermission: (id: string, body: CustomAuthPermission) => request<CustomAuthPermission>('PUT', `${inst(id)}/custom-auth/permissions`, body),
  deleteCustomPermission: (id: string, p: CustomAuthPermission) =>
    request<void>(
      'DELETE',
      `${inst(id)}/custom-auth/permissions?identityType=${p.identityType}&identity=${seg(p.identity)}&topic=${seg(p.topic)}`,
    ),
  listConnectBlacklist: (id: string) =>
    allPages(
      (t) => request<S['ConnectBlacklistPage']>('GET', `${inst(id)}/custom-auth/connect-blacklist?nextToken=${seg(t)}`),
      (p: S['ConnectBlacklistPage']) => p.entries,
    ),
  addToConnectBlacklist: (id: string, clientId: string) => request<void>('POST', `${inst(id)}/custom-auth/connect-blacklist`, { clientId }),
  removeFromConnectBlacklist: (id: string, clientId: string) =>
    request<void>('DELETE', `${inst(id)}/custom-auth/connect-blacklist/${seg(clientId)}`),
};
