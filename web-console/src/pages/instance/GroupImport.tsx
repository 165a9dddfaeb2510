// Creates group IDs in bulk from a CSV file: a group ID and an optional description per row.
import { Api, type Instance } from '../../api/endpoints';
import { CsvImport } from '../../components/CsvImport';
import { rows } from '../../lib/csv';
import { num } from '../../lib/format';

export function GroupImport({ instance, onDone }: { instance: Instance; onDone: () => void }) {
  return (
    <CsvImport
      label="Import group IDs"
      fieldLabel="Import from CSV (group ID, then an optional description, per row)"
      inputId="group-import"
      parse={(text) => rows(text, /^group[ _-]?id$/i).map(([groupId, description = '']) => ({ groupId, description }))}
      send={async (groups) => (await Api.batchCreateGroups(instance.instanceId, groups)).results}
      nameOf={(r) => r.groupId}
      summary={(done, failed) => `${num(done)} created, ${num(failed)} failed.`}
      onDone={onDone}
    />
  );
}
