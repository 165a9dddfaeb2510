// docs/spec.md section 1 naming rules, checked as the user types. Each returns an error message or null.
// The server checks them too; its message is shown when it disagrees.

const NAME_CHARS = /^[A-Za-z0-9_-]*$/;

export function instanceName(v: string): string | null {
  if (!v) return 'Required.';
  if (!NAME_CHARS.test(v)) return 'Only letters, digits, "_" and "-".';
  if (v.length < 3 || v.length > 64) return `3 to 64 characters (now ${v.length}).`;
  return null;
}

export function parentTopic(v: string): string | null {
  if (!v) return 'Required.';
  if (!NAME_CHARS.test(v)) return 'Only letters, digits, "_" and "-" (no "/": this is the first level).';
  if (v.length > 64) return `At most 64 characters (now ${v.length}).`;
  return null;
}

export function groupId(v: string): string | null {
  if (!v) return 'Required.';
  if (!v.startsWith('GID_') && !v.startsWith('GID-')) return 'Must start with "GID_" or "GID-".';
  if (!NAME_CHARS.test(v)) return 'Only letters, digits, "_" and "-".';
  if (v.length < 7 || v.length > 64) return `7 to 64 characters (now ${v.length}).`;
  return null;
}

export function deviceId(v: string): string | null {
  if (!v) return 'Required.';
  if (!NAME_CHARS.test(v)) return 'Only letters, digits, "_" and "-".';
  return null;
}

/** `<GroupID>@@@<DeviceID>`, at most `max` characters (64 by default). */
export function clientId(v: string, max = 64): string | null {
  if (!v) return 'Required.';
  const parts = v.split('@@@');
  if (parts.length !== 2) return 'Format: <GroupID>@@@<DeviceID>.';
  const g = groupId(parts[0]);
  if (g) return `Group ID: ${g}`;
  const d = deviceId(parts[1]);
  if (d) return `Device ID: ${d}`;
  if (v.length > max) return `At most ${max} characters (now ${v.length}).`;
  return null;
}

/** A topic or filter for a token resource or a message: under a parent topic, at most `max` chars. */
export function topic(v: string, opts: { wildcards: boolean; max?: number; parents?: string[] }): string | null {
  const max = opts.max ?? 64;
  if (!v) return 'Required.';
  if (v.length > max) return `At most ${max} characters (now ${v.length}).`;
  const levels = v.split('/');
  if (!opts.wildcards && /[+#]/.test(v)) return 'No wildcards ("+", "#") in a topic name.';
  if (opts.wildcards) {
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i];
      if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return '"#" must be a whole last level.';
      if (l.includes('+') && l !== '+') return '"+" must be a whole level.';
    }
  }
  if (opts.parents && !opts.parents.includes(levels[0])) return `"${levels[0]}" is not a parent topic of this instance.`;
  return null;
}

/** A custom-auth username: 1-64 printable ASCII characters without spaces or "|". */
export function customUsername(v: string): string | null {
  if (!v) return 'Required.';
  if (!/^[!-{}~]*$/.test(v)) return 'Printable ASCII only, without spaces or "|".';
  if (v.length > 64) return `At most 64 characters (now ${v.length}).`;
  return null;
}

/** A custom-auth secret: 1-256 bytes without control characters. */
export function customSecret(v: string): string | null {
  if (!v) return 'Required.';
  if (/\p{Cc}/u.test(v)) return 'No control characters.';
  const bytes = new TextEncoder().encode(v).length;
  if (bytes > 256) return `At most 256 bytes (now ${bytes}).`;
  return null;
}

/** Any MQTT client ID (custom-auth clients need no group), without "/", "+", "#" or control characters. */
export function anyClientId(v: string, max = 64): string | null {
  if (!v) return 'Required.';
  if (/[/+#]|\p{Cc}/u.test(v)) return 'No "/", "+", "#" or control characters.';
  if ([...v].length > max) return `At most ${max} characters (now ${[...v].length}).`;
  return null;
}
