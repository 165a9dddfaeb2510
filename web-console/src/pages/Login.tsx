// Operator sign-in: POST /console/session; the session is an HttpOnly cookie, the page keeps only its
// CSRF token.
import { useState } from 'preact/hooks';
import { Api } from '../api/endpoints';
import { Field } from '../components/Field';
import { FormError } from '../components/States';

export function Login({ onLogin }: { onLogin: (csrfToken: string) => void }) {
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await Api.signIn({ username, password });
      onLogin(r.csrfToken);
    } catch (err) {
      setError(err as Error);
      setBusy(false);
    }
  };
  return (
    <div class="login-page">
      <form class="card login-card" onSubmit={submit}>
        <div class="brand big">
          <span class="logo" aria-hidden="true" /> MQTT Console
        </div>
        <p class="muted">Sign in as an operator to manage instances, credentials and brokers.</p>
        <Field label="Username" value={username} onInput={setUsername} autoComplete="username" required />
        <Field label="Password" type="password" value={password} onInput={setPassword} autoComplete="current-password" required />
        <FormError error={error} />
        <button class="btn primary wide" type="submit" disabled={busy || !username || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </div>
  );
}
