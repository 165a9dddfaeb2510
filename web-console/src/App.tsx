// The shell: login gate, navigation and the route table.
import { useEffect, useState } from 'preact/hooks';
import { setSession } from './api/client';
import { Api } from './api/endpoints';
import { href, useRoute } from './lib/router';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { Instances } from './pages/Instances';
import { InstanceDetail } from './pages/InstanceDetail';
import { Brokers } from './pages/Brokers';
import { AccessKeys } from './pages/AccessKeys';
import { SignatureHelper } from './pages/SignatureHelper';
import { NotFound } from './pages/NotFound';

const NAV = [
  { path: '/', label: 'Overview', icon: '◎' },
  { path: '/instances', label: 'Instances', icon: '▤' },
  { path: '/access-keys', label: 'AccessKeys', icon: '◆' },
  { path: '/brokers', label: 'Brokers', icon: '⛁' },
  { path: '/signature', label: 'Signature helper', icon: '✎' },
];

export function App() {
  // undefined: still asking the control plane whether the session cookie is valid.
  const [signedIn, setSignedIn] = useState<boolean | undefined>(undefined);
  const path = useRoute();
  useEffect(() => {
    Api.session().then(
      (s) => (setSession(s.csrfToken), setSignedIn(true)),
      () => setSignedIn(false),
    );
    const out = () => setSignedIn(false);
    window.addEventListener('console:logout', out);
    return () => window.removeEventListener('console:logout', out);
  }, []);

  if (signedIn === undefined) return null;
  if (!signedIn) return <Login onLogin={(csrf) => (setSession(csrf), setSignedIn(true))} />;

  const logout = () => {
    Api.signOut().catch(() => undefined);
    setSession(null);
    setSignedIn(false);
  };
  const base = path.split('?')[0];
  const active = (p: string) => (p === '/' ? base === '/' : base === p || base.startsWith(`${p}/`));

  return (
    <div class="shell">
      <header class="topbar">
        <a class="brand" href={href('/')}>
          <span class="logo" aria-hidden="true" /> MQTT Console
        </a>
        <nav class="nav" aria-label="Main">
          {NAV.map((n) => (
            <a href={href(n.path)} class={active(n.path) ? 'active' : ''} aria-current={active(n.path) ? 'page' : undefined}>
              <span aria-hidden="true" class="nav-icon">
                {n.icon}
              </span>
              {n.label}
            </a>
          ))}
        </nav>
        <button type="button" class="btn ghost logout" onClick={logout}>
          Sign out
        </button>
      </header>
      <main class="content">{route(path)}</main>
    </div>
  );
}

function route(full: string) {
  const [path, query = ''] = full.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case undefined:
      return <Overview />;
    case 'instances':
      if (parts.length === 1) return <Instances />;
      return <InstanceDetail instanceId={parts[1]} tab={parts[2] ?? 'overview'} params={new URLSearchParams(query)} />;
    case 'access-keys':
      return <AccessKeys />;
    case 'brokers':
      return <Brokers />;
    case 'signature':
      return <SignatureHelper params={new URLSearchParams(query)} />;
    default:
      return <NotFound />;
  }
}
