// One instance: header, tabs for everything inside it.
import { Api } from '../api/endpoints';
import { ErrorBox, Loading } from '../components/States';
import { href } from '../lib/router';
import { useAsync } from '../lib/useAsync';
import { Summary } from './instance/Summary';
import { Topics } from './instance/Topics';
import { Groups } from './instance/Groups';
import { InstanceAccessKeys } from './instance/InstanceAccessKeys';
import { Tokens } from './instance/Tokens';
import { Devices } from './instance/Devices';
import { Clients } from './instance/Clients';
import { SendMessage } from './instance/SendMessage';
import { Rules } from './instance/Rules';
import { CustomAuth } from './instance/CustomAuth';
import { MessageTrace } from './instance/MessageTrace';

const TABS = [
  ['overview', 'Overview'],
  ['topics', 'Parent topics'],
  ['groups', 'Group IDs'],
  ['access-keys', 'AccessKeys'],
  ['tokens', 'Tokens'],
  ['devices', 'Device credentials'],
  ['custom-auth', 'Custom auth'],
  ['rules', 'Rules'],
  ['clients', 'Online clients'],
  ['message-trace', 'Message trace'],
  ['send', 'Send message'],
] as const;

export function InstanceDetail({ instanceId, tab, params }: { instanceId: string; tab: string; params?: URLSearchParams }) {
  const inst = useAsync(() => Api.getInstance(instanceId), [instanceId]);
  if (inst.error && !inst.data)
    return (
      <section>
        <p class="crumbs">
          <a href={href('/instances')}>Instances</a> /
        </p>
        <ErrorBox error={inst.error} onRetry={inst.reload} />
      </section>
    );
  if (!inst.data) return <Loading />;
  const i = inst.data;
  const body = (() => {
    switch (tab) {
      case 'topics':
        return <Topics instance={i} onChange={inst.reload} />;
      case 'groups':
        return <Groups instance={i} onChange={inst.reload} />;
      case 'access-keys':
        return <InstanceAccessKeys instance={i} />;
      case 'tokens':
        return <Tokens instance={i} />;
      case 'devices':
        return <Devices instance={i} />;
      case 'custom-auth':
        return <CustomAuth instance={i} />;
      case 'rules':
        return <Rules instance={i} onChange={inst.reload} />;
      case 'clients':
        return <Clients instance={i} />;
      case 'message-trace':
        return <MessageTrace key={params?.toString()} instance={i} msgId={params?.get('msgId') ?? ''} clientId={params?.get('clientId') ?? ''} />;
      case 'send':
        return <SendMessage instance={i} />;
      default:
        return <Summary instance={i} onChange={inst.reload} />;
    }
  })();
  return (
    <section>
      <p class="crumbs">
        <a href={href('/instances')}>Instances</a> / <span class="mono">{i.instanceId}</span>
      </p>
      <div class="page-head">
        <h1>{i.name}</h1>
      </div>
      <nav class="tabs" aria-label="Instance sections">
        {TABS.map(([t, label]) => (
          <a href={href(`/instances/${i.instanceId}${t === 'overview' ? '' : `/${t}`}`)} class={tab === t ? 'active' : ''} aria-current={tab === t ? 'page' : undefined}>
            {label}
          </a>
        ))}
      </nav>
      {body}
    </section>
  );
}
