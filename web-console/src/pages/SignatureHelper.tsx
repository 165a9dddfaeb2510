// Computes Signature / DeviceCredential MQTT credentials in the browser (WebCrypto); the secret is never sent.
import { useEffect, useState } from 'preact/hooks';
import { CopyButton } from '../components/CopyButton';
import { Field } from '../components/Field';
import { hmacSha1Base64 } from '../lib/signature';
import * as rules from '../lib/validate';

export function SignatureHelper({ params }: { params: URLSearchParams }) {
  const [mode, setMode] = useState<'Signature' | 'DeviceCredential'>('Signature');
  const [keyId, setKeyId] = useState(params.get('accessKeyId') ?? '');
  const [instanceId, setInstanceId] = useState(params.get('instanceId') ?? '');
  const [secret, setSecret] = useState('');
  const [clientId, setClientId] = useState('');
  const [password, setPassword] = useState('');
  useEffect(() => {
    let live = true;
    if (!secret || !clientId) setPassword('');
    else hmacSha1Base64(secret, clientId).then((p) => live && setPassword(p));
    return () => void (live = false);
  }, [secret, clientId]);
  const username = keyId && instanceId ? `${mode}|${keyId}|${instanceId}` : '';

  return (
    <section>
      <div class="page-head">
        <h1>Signature helper</h1>
      </div>
      <div class="grid2">
        <form class="card" onSubmit={(e) => e.preventDefault()} aria-label="Credential inputs">
          <p class="notice">Computed in this page with WebCrypto: the secret is never sent anywhere.</p>
          <div class="field">
            <label for="sig-mode">Mode</label>
            <select id="sig-mode" value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value as typeof mode)}>
              <option value="Signature">Signature (AccessKey)</option>
              <option value="DeviceCredential">DeviceCredential</option>
            </select>
          </div>
          <Field label={mode === 'Signature' ? 'AccessKey ID' : 'DeviceAccessKeyId'} value={keyId} onInput={setKeyId} class="mono" />
          <Field label="Instance ID" value={instanceId} onInput={setInstanceId} class="mono" placeholder="mqtt-xxxxxxxxxxxx" />
          <Field label={mode === 'Signature' ? 'AccessKey secret' : 'DeviceAccessKeySecret'} type="password" value={secret} onInput={setSecret} autoComplete="off" />
          <Field label="Client ID" value={clientId} onInput={setClientId} check={(v) => rules.clientId(v)} class="mono" placeholder="GID_demo@@@device-1" />
        </form>
        <div class="card" aria-live="polite">
          <h2>MQTT CONNECT</h2>
          <Out label="Client ID" value={clientId} />
          <Out label="Username" value={username} />
          <Out label="Password" value={password} />
        </div>
      </div>
    </section>
  );
}

function Out({ label, value }: { label: string; value: string }) {
  const id = `out-${label.replace(/\W+/g, '-').toLowerCase()}`;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <div class="input-row">
        <input id={id} class="mono" readOnly value={value} placeholder="fill in the form" />
        <CopyButton value={value} />
      </div>
    </div>
  );
}
