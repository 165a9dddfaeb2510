// The fetch wrapper every page uses. The operator's session is an HttpOnly cookie the browser sends by
// itself (no script, ours or injected, can read it); this adds the session's CSRF token to every
// request but GETs, turns the control plane's `{code, message, requestId, field}` error bodies into
// ApiError, and sends the user back to the login page when the session is no longer accepted.
import type { components } from './schema';

export type ErrorBody = components['schemas']['ErrorBody'];

/** The CSRF token of the current session (from sign-in or GET /console/session); kept in memory only. */
let csrfToken: string | null = null;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
    readonly field?: string | null,
  ) {
    super(message);
  }
}

export function setSession(csrf: string | null): void {
  csrfToken = csrf;
}

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';

export async function request<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'NetworkError', 'The control plane cannot be reached. Check that it is running.');
  }
  const text = await res.text();
  const data: unknown = text ? safeJson(text) : undefined;
  if (!res.ok) {
    const err = isErrorBody(data)
      ? new ApiError(res.status, data.code, data.message, data.requestId, data.field)
      : new ApiError(res.status, `HTTP${res.status}`, `${res.status} ${res.statusText || 'error'}`);
    if (res.status === 401 && !path.startsWith('/console/session')) {
      setSession(null);
      window.dispatchEvent(new CustomEvent('console:logout'));
    }
    throw err;
  }
  return data as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isErrorBody(v: unknown): v is ErrorBody {
  return typeof v === 'object' && v !== null && typeof (v as ErrorBody).code === 'string' && typeof (v as ErrorBody).message === 'string';
}

/** Path segment encoding (client IDs contain `@@@`). */
export const seg = (s: string) => encodeURIComponent(s);
