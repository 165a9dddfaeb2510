// Registers device credentials in bulk from a CSV file (one client ID or device ID per row), 1,000 per
// call, and offers the new credentials as a CSV download: their secrets are shown this once.
import { useState } from 'preact/hooks';
import { Api, type DeviceCredentialResult, type Instance } from '../../api/endpoints';
import { FormError } from '../../components/States';
import { firstColumn, toCsv } from '../../lib/csv';
import { num } from '../../lib/format';

const PER_CALL = 1000;

export function DeviceImport({ instance, groupId, onDone }: { instance: Instance; groupId: string; onDone: () => void }) {
  const id = instance.instanceId;
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [results, setResults] = useState<DeviceCredentialResult[] | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setError(null);
    setResults(null);
    setBusy(true);
    try {
      // A bare device ID joins the group chosen above; a full client ID names its own group.
      const ids = firstColumn(await file.text()).map((v) => (v.includes('@@@') ? v : `${groupId}@@@${v}`));
      if (ids.length === 0) throw new Error('The file holds no client ID.');
      const all: DeviceCredentialResult[] = [];
      for (let i = 0; i < ids.length; i += PER_CALL) {
        const r = await Api.batchRegisterDevices(id, ids.slice(i, i + PER_CALL));
        all.push(...r.results);
        setResults([...all]);
      }
      onDone();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  const registered = results?.filter((r) => r.credential) ?? [];
  const failed = results?.filter((r) => r.error) ?? [];
  const download = () => {
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
    <form class="card inline-form" onSubmit={submit} aria-label="Import device credentials">
      <div class="field">
        <label for="dev-import">Import from CSV (one client ID or device ID per row)</label>
        <input id="dev-import" type="file" accept=".csv,.txt,text/csv,text/plain" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
      </div>
      <button type="submit" class="btn" disabled={!file || busy}>
        {busy ? 'Importing…' : 'Import'}
      </button>
      <FormError error={error} />
      {results ? (
        <div class="import-result" role="status" aria-label="Import result">
          <p>
            {num(registered.length)} registered, {num(failed.length)} failed.
            {registered.length > 0 ? (
              <>
                {' '}
                <button type="button" class="btn small" onClick={download}>
                  Download credentials (CSV)
                </button>
              </>
            ) : null}
          </p>
          {failed.length > 0 ? (
            <ul class="small" aria-label="Import failures">
              {failed.slice(0, 100).map((r) => (
                <li>
                  <span class="mono">{r.clientId}</span>: {r.error!.message}
                </li>
              ))}
              {failed.length > 100 ? <li>… and {num(failed.length - 100)} more</li> : null}
            </ul>
          ) : null}
        </div>
      ) : null}
    </form>
  );
}
