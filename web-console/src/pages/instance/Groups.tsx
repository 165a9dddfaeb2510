// Group IDs of an instance: create one (checked as you type) or many from a CSV file, list, delete.
import { Api, type GroupId, type Instance } from '../../api/endpoints';
import { NamedItems } from '../../components/NamedItems';
import * as rules from '../../lib/validate';
import { GroupImport } from './GroupImport';

export function Groups({ instance, onChange }: { instance: Instance; onChange: () => void }) {
  return (
    <NamedItems<GroupId>
      instanceId={instance.instanceId}
      onChange={onChange}
      title="Group ID"
      noun="group ID"
      createLabel="Create group"
      initialName="GID_"
      check={rules.groupId}
      hint="GID_ or GID- then letters, digits, _ and -; 7-64 characters"
      empty="Client IDs are <GroupID>@@@<DeviceID>: create the group first."
      deleteNote="Its device credentials are deleted and its clients disconnected."
      nameOf={(g) => g.groupId}
      list={Api.listGroups}
      create={(id, groupId, description) => Api.createGroup(id, { groupId, description })}
      remove={Api.deleteGroup}
      extra={(reload) => (
        <GroupImport
          instance={instance}
          onDone={() => {
            reload();
            onChange();
          }}
        />
      )}
    />
  );
}
