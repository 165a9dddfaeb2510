// Copies a value to the clipboard and says so.
import { useState } from 'preact/hooks';

export function CopyButton({ value, label = 'Copy' }: { value: string; label?: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      // Non-secure origins have no clipboard API: fall back to a hidden textarea.
      const t = document.createElement('textarea');
      t.value = value;
      document.body.appendChild(t);
      t.select();
      document.execCommand('copy');
      t.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1500);
  };
  return (
    <button type="button" class="btn small" onClick={copy} aria-label={`${label}: copy to clipboard`}>
      {done ? 'Copied ✓' : label}
    </button>
  );
}

/** A read-only secret value with its copy button. */
export function SecretValue({ label, value }: { label: string; value: string }) {
  const id = `sv-${label.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <div class="input-row">
        <input id={id} class="mono" readOnly value={value} onFocus={(e) => (e.target as HTMLInputElement).select()} />
        <CopyButton value={value} />
      </div>
    </div>
  );
}
