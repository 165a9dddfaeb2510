// CSV in and out for bulk onboarding: the first column of each row in, quoted fields out.

/** The first field of each non-empty row (quotes and surrounding spaces removed), without a header. */
export function firstColumn(text: string): string[] {
  const rows = text
    .split(/\r?\n/)
    .map((line) => firstField(line).trim())
    .filter((v) => v !== '');
  if (rows.length > 0 && /^client[ _-]?id$/i.test(rows[0])) rows.shift();
  return rows;
}

function firstField(line: string): string {
  const t = line.trimStart();
  if (t.startsWith('"')) {
    // A quoted field ends at the next quote not doubled.
    let out = '';
    for (let i = 1; i < t.length; i++) {
      if (t[i] !== '"') out += t[i];
      else if (t[i + 1] === '"') out += t[i++];
      else break;
    }
    return out;
  }
  return t.split(/[,;\t]/)[0];
}

/** A CSV document (RFC 4180 quoting) of a header and rows. */
export function toCsv(header: string[], rows: string[][]): string {
  const field = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [header, ...rows].map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}
