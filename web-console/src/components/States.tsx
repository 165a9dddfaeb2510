// Loading, empty and error states shared by every page.
import type { ComponentChildren } from 'preact';
import { ApiError } from '../api/client';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="state loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {label}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="state empty">
      <strong>{title}</strong>
      {children ? <div>{children}</div> : null}
    </div>
  );
}

export function ErrorBox({ error, onRetry }: { error: Error | string; onRetry?: () => void }) {
  const msg = typeof error === 'string' ? error : error.message;
  const meta = error instanceof ApiError ? `${error.code}${error.requestId ? ` · request ${error.requestId}` : ''}` : null;
  return (
    <div class="state error" role="alert">
      <div>
        <strong>{msg}</strong>
        {meta ? <div class="muted small">{meta}</div> : null}
      </div>
      {onRetry ? (
        <button type="button" class="btn" onClick={onRetry}>
          Retry
        </button>
      ) : null}
    </div>
  );
}

/** The server's message for a failed form submission (or nothing). */
export function FormError({ error }: { error: Error | null | undefined }) {
  if (!error) return null;
  return <ErrorBox error={error} />;
}
