// A form that reads a CSV file, sends its items in calls of at most 1,000 to a batch operation, and
// shows how many were done and why the others were refused.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { num } from '../lib/format';
import { FormError } from './States';

const PER_CALL = 1000;

/** One item's answer of a batch operation. */
interface Result {
  error?: { message: string } | null;
}

interface Props<T, R extends Result> {
  /** The form's accessible name: "Import device credentials". */
  label: string;
  /** The file field's label. */
  fieldLabel: string;
  inputId: string;
  /** The file's items; none is an error the form shows. */
  parse: (text: string) => T[];
  /** One batch call: an answer per item, in order. */
  send: (items: T[]) => Promise<R[]>;
  /** What names an item in the failures list. */
  nameOf: (r: R) => string;
  /** The summary line: "2 registered, 1 failed." */
  summary: (done: number, failed: number) => string;
  /** More after the summary (a download of what was made). */
  after?: (done: R[]) => ComponentChildren;
  onDone: () => void;
}

export function CsvImport<T, R extends Result>(p: Props<T, R>) {
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const [results, setResults] = useState<R[] | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setError(null);
    setResults(null);
    setBusy(true);
    try {
      const items = p.parse(await file.text());
      if (items.length === 0) throw new Error('The file holds nothing to import.');
      const all: R[] = [];
      for (let i = 0; i < items.length; i += PER_CALL) {
        all.push(...(await p.send(items.slice(i, i + PER_CALL))));
        setResults([...all]);
      }
      p.onDone();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  const done = results?.filter((r) => !r.error) ?? [];
  const failed = results?.filter((r) => r.error) ?? [];
  return (
    <form class="card inline-form" onSubmit={submit} aria-label={p.label}>
      <div class="field">
        <label for={p.inputId}>{p.fieldLabel}</label>
        <input id={p.inputId} type="file" accept=".csv,.txt,text/csv,text/plain" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
      </div>
      <button type="submit" class="btn" disabled={!file || busy}>
        {busy ? 'Importing…' : 'Import'}
      </button>
      <FormError error={error} />
      {results ? (
        <div class="import-result" role="status" aria-label="Import result">
          <p>
            {p.summary(done.length, failed.length)}
            {done.length > 0 && p.after ? <> {p.after(done)}</> : null}
          </p>
          {failed.length > 0 ? (
            <ul class="small" aria-label="Import failures">
              {failed.slice(0, 100).map((r) => (
                <li>
                  <span class="mono">{p.nameOf(r)}</span>: {r.error!.message}
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
