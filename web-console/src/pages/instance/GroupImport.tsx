// Creates group IDs in bulk from a CSV file (a group ID and an optional description per row), 1,000
// per call, and lists the ones refused.
import { useState } from 'preact/hooks';
import { Api, type GroupIdResult, type Instance } from '../../api/endpoints';
import { FormError } from '../../components/States';
import { rows } from '../../lib/csv';
import { num } from '../../lib/format';

const PER_CALL = 1000;

export function GroupImport({ instance, onDone }: { instance: Instance; onDone: () => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [results, setResults] = useState<GroupIdResult[] | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setError(null);
    setResults(null);
    setBusy(true);
    try {
      const groups = rows(await file.text(), /^group[ _-]?id$/i).map(([groupId, description = '']) => ({ groupId, description }));
      if (groups.length === 0) throw new Error('The file holds no group ID.');
      const all: GroupIdResult[] = [];
      for (let i = 0; i < groups.length; i += PER_CALL) {
        const r = await Api.batchCreateGroups(instance.instanceId, groups.slice(i, i + PER_CALL));
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

  const created = results?.filter((r) => r.group).length ?? 0;
  const failed = results?.filter((r) => r.error) ?? [];
  return (
    <form class="card inline-form" onSubmit={submit} aria-label="Import group IDs">
      <div class="field">
        <label for="group-import">Import from CSV (group ID, then an optional description, per row)</label>
        <input id="group-import" type="file" accept=".csv,.txt,text/csv,text/plain" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
      </div>
      <button type="submit" class="btn" disabled={!file || busy}>
        {busy ? 'Importing…' : 'Import'}
      </button>
      <FormError error={error} />
      {results ? (
        <div class="import-result" role="status" aria-label="Import result">
          <p>
            {num(created)} created, {num(failed.length)} failed.
          </p>
          {failed.length > 0 ? (
            <ul class="small" aria-label="Import failures">
              {failed.slice(0, 100).map((r) => (
                <li>
                  <span class="mono">{r.groupId}</span>: {r.error!.message}
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
