// A labelled input with an as-you-type rule check and an optional server error for the same field.
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';

interface Props extends Omit<JSX.InputHTMLAttributes<HTMLInputElement>, 'onInput' | 'label' | 'value'> {
  label: string;
  value: string;
  onInput: (v: string) => void;
  check?: (v: string) => string | null;
  serverError?: string | null;
  hint?: string;
}

let seq = 0;

export function Field({ label, value, onInput, check, serverError, hint, id, ...rest }: Props) {
  const [fid] = useState(() => (id as string) ?? `f${++seq}`);
  const [touched, setTouched] = useState(false);
  const ruleError = check && (touched || value !== '') ? check(value) : null;
  const error = ruleError ?? serverError ?? null;
  const describedBy = error ? `${fid}-err` : hint ? `${fid}-hint` : undefined;
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={fid}>{label}</label>
      <input
        id={fid}
        value={value}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={describedBy}
        onInput={(e) => onInput((e.target as HTMLInputElement).value)}
        onBlur={() => setTouched(true)}
        {...rest}
      />
      {error ? (
        <div class="field-error" id={`${fid}-err`} role="alert">
          {error}
        </div>
      ) : hint ? (
        <div class="field-hint" id={`${fid}-hint`}>
          {hint}
        </div>
      ) : null}
    </div>
  );
}

/** True when every check passes (used to enable a submit button). */
export const valid = (...errs: (string | null)[]) => errs.every((e) => e === null);
