// AccessKeys bound to this instance; new ones are bound to it.
import type { Instance } from '../../api/endpoints';
import { AccessKeyTable } from '../../components/AccessKeyTable';

export function InstanceAccessKeys({ instance }: { instance: Instance }) {
  return <AccessKeyTable instance={instance} />;
}
