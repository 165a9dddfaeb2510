// The fetch wrapper every page uses: adds the operator's bearer token, turns the control plane's
// `{code, message, requestId, field}` error bodies into ApiError, and sends the user back to the login
// page when the token is no longer accepted.
import type { components } from './schema';

export type ErrorBody = components['schemas']['ErrorBody'];

const TOKEN_KEY = 'mqtt-console-token';

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

export function getToken(): string | null {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';

export async function request<T>(method: Method, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'NetworkError', 'The control plane cannot be reached. Check that it is running.');
  }
  const text = await res.text();
  const data: unknown = text ? safeJson(text) : undefined;
  if (!res.ok) {
    const err = isErrorBody(data)
      ? new ApiError(res.status, data.code, data.message, data.requestId, data.field)
      : new ApiError(res.status, `HTTP${res.status}`, `${res.status} ${res.statusText || 'error'}`);
    if (res.status === 401 && path !== '/login') {
      setToken(null);
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
