// Confirmation before anything destructive: the user must press the red button.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { Modal } from './Modal';
import { ErrorBox } from './States';

interface Props {
  title: string;
  confirmLabel: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
  children: ComponentChildren;
}

export function Confirm({ title, confirmLabel, onConfirm, onClose, children }: Props) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (e) {
      setError(e as Error);
      setBusy(false);
    }
  };
  return (
    <Modal title={title} onClose={onClose}>
      <div class="modal-body">{children}</div>
      {error ? <ErrorBox error={error} /> : null}
      <div class="actions">
        <button type="button" class="btn" onClick={onClose}>
          Cancel
        </button>
        <button type="button" class="btn danger" disabled={busy} onClick={go}>
          {busy ? 'Working…' : confirmLabel}
        </button>
      </div>
    </Modal>
  );
}
