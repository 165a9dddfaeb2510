// Coloured status pill.
export function Badge({ tone, children }: { tone: 'ok' | 'warn' | 'bad' | 'muted'; children: string }) {
  return <span class={`badge ${tone}`}>{children}</span>;
}
