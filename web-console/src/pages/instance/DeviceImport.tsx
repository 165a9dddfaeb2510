// Registers device credentials in bulk from a CSV file (one client ID or device ID per row), and offers
// the new credentials as a CSV download: their secrets are shown this once.
import { Api, type DeviceCredentialResult, type Instance } from '../../api/endpoints';
import { CsvImport } from '../../components/CsvImport';
import { firstColumn, toCsv } from '../../lib/csv';
import { num } from '../../lib/format';

export function DeviceImport({ instance, groupId, onDone }: { instance: Instance; groupId: string; onDone: () => void }) {
  const id = instance.instanceId;
  const download = (registered: DeviceCredentialResult[]) => {
    const csv = toCsv(
      ['clientId', 'deviceAccessKeyId', 'deviceAccessKeySecret'],
      registered.map((r) => [r.clientId, r.credential!.deviceAccessKeyId, r.credential!.deviceAccessKeySecret]),
    );
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
    a.download = `device-credentials-${id}.csv`;
    a.click();
    URL.revokeObjectURL(a.href);
  };
  return (
    <CsvImport
      label="Import device credentials"
      fieldLabel="Import from CSV (one client ID or device ID per row)"
      inputId="dev-import"
      // A bare device ID joins the group chosen above; a full client ID names its own group.
      parse={(text) => firstColumn(text).map((v) => (v.includes('@@@') ? v : `${groupId}@@@${v}`))}
      send={async (clientIds) => (await Api.batchRegisterDevices(id, clientIds)).results}
      nameOf={(r) => r.clientId}
      summary={(done, failed) => `${num(done)} registered, ${num(failed)} failed.`}
      after={(registered) => (
        <button type="button" class="btn small" onClick={() => download(registered)}>
          Download credentials (CSV)
        </button>
      )}
      onDone={onDone}
    />
  );
}
