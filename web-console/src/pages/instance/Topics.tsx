// Parent topics of an instance: create (checked as you type), list, delete.
import { Api, type Instance, type Topic } from '../../api/endpoints';
import { NamedItems } from '../../components/NamedItems';
import * as rules from '../../lib/validate';

export function Topics({ instance, onChange }: { instance: Instance; onChange: () => void }) {
  return (
    <NamedItems<Topic>
      instanceId={instance.instanceId}
      onChange={onChange}
      title="Parent topic"
      noun="parent topic"
      createLabel="Create topic"
      initialName=""
      check={rules.parentTopic}
      hint="1-64 characters: letters, digits, _ and -"
      empty="Clients can only use topics under a parent topic created here."
      deleteNote="Clients can no longer publish or subscribe under it."
      nameOf={(t) => t.topic}
      list={Api.listTopics}
      create={(id, topic, description) => Api.createTopic(id, { topic, description })}
      remove={Api.deleteTopic}
    />
  );
}
