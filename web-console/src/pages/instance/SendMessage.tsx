// Send a message to a topic from the backend (SendMessage), as a client would publish it.
import { useState } from 'preact/hooks';
import { Api, type Instance } from '../../api/endpoints';
import { Field, valid } from '../../components/Field';
import { ErrorBox, FormError, Loading } from '../../components/States';
import { href } from '../../lib/router';
import { useAsync } from '../../lib/useAsync';
import * as rules from '../../lib/validate';

export function SendMessage({ instance }: { instance: Instance }) {
  const id = instance.instanceId;
  const topics = useAsync(() => Api.listTopics(id).then((ts) => ts.map((t) => t.topic)), [id]);
  const [topic, setTopic] = useState('');
  const [payload, setPayload] = useState('');
  const [qos, setQos] = useState('1');
  const [error, setError] = useState<Error | null>(null);
  const [sent, setSent] = useState<{ msgId: string; topic: string }[]>([]);
  const [busy, setBusy] = useState(false);
  if (topics.error) return <ErrorBox error={topics.error} onRetry={topics.reload} />;
  if (!topics.data) return <Loading />;
  const check = (v: string) => rules.topic(v, { wildcards: false, max: instance.quotas.maxTopicLength, parents: topics.data });
  const size = new TextEncoder().encode(payload).length;
  const sizeErr = size > instance.quotas.maxMessageSize ? `Payload is ${size} bytes; the limit is ${instance.quotas.maxMessageSize}.` : null;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await Api.sendMessage(id, { topic, payload, qos: Number(qos) });
      setSent([{ msgId: r.msgId, topic }, ...sent].slice(0, 10));
    } catch (err) {
      setError(err as Error);
    }
    setBusy(false);
  };

  return (
    <form class="card" onSubmit={submit} aria-label="Send a message">
      <h2>Send a message</h2>
      <Field label="Topic" value={topic} onInput={setTopic} check={check} list="send-topics" placeholder={`${topics.data[0] ?? 'parent'}/p2p/GID_x@@@device`} />
      <datalist id="send-topics">
        {topics.data.map((t) => (
          <option value={`${t}/`} />
        ))}
      </datalist>
      <div class={`field${sizeErr ? ' invalid' : ''}`}>
        <label for="send-payload">Payload (UTF-8 text)</label>
        <textarea id="send-payload" rows={5} class="mono" value={payload} onInput={(e) => setPayload((e.target as HTMLTextAreaElement).value)} />
        {sizeErr ? <div class="field-error">{sizeErr}</div> : <div class="field-hint">{size} bytes</div>}
      </div>
      <div class="field narrow">
        <label for="send-qos">QoS</label>
        <select id="send-qos" value={qos} onChange={(e) => setQos((e.target as HTMLSelectElement).value)}>
          <option value="0">0 (at most once)</option>
          <option value="1">1 (at least once)</option>
        </select>
      </div>
      <FormError error={error} />
      <div class="actions">
        <button type="submit" class="btn primary" disabled={busy || !valid(check(topic), sizeErr)}>
          {busy ? 'Sending…' : 'Send'}
        </button>
      </div>
      {sent.length ? (
        <div role="status">
          <h3>Sent</h3>
          <ul class="plain mono small">
            {sent.map((s) => (
              <li>
                {s.msgId} → {s.topic} <a href={href(`/instances/${id}/message-trace?msgId=${s.msgId}`)}>trace</a>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
    </form>
  );
}
