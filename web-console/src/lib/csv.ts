// CSV in and out for bulk onboarding: rows of fields in (RFC 4180 quoting, one row per line, `,` `;`
// or tab between fields), quoted fields out.

/** The fields of each non-empty row, trimmed, without a header row whose first field is `header`. */
export function rows(text: string, header: RegExp): string[][] {
  const out = text
    .split(/\r?\n/)
    .map(fields)
    .filter((r) => r.length > 0 && r[0] !== '');
  if (out.length > 0 && header.test(out[0][0])) out.shift();
  return out;
}

/** The first field of each non-empty row, without a `clientId` header. */
export function firstColumn(text: string): string[] {
  return rows(text, /^client[ _-]?id$/i).map((r) => r[0]);
}

function fields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    while (line[i] === ' ') i++;
    let value = '';
    if (line[i] === '"') {
      // A quoted field ends at the next quote not doubled.
      for (i++; i < line.length; i++) {
        if (line[i] !== '"') value += line[i];
        else if (line[i + 1] === '"') value += line[i++];
        else break;
      }
      i++;
      while (i < line.length && !/[,;\t]/.test(line[i])) i++;
    } else {
      const end = line.slice(i).search(/[,;\t]/);
      value = end < 0 ? line.slice(i) : line.slice(i, i + end);
      i = end < 0 ? line.length : i + end;
    }
    out.push(value.trim());
    i++;
  }
  return out.length === 1 && out[0] === '' ? [] : out;
}

/** A CSV document (RFC 4180 quoting) of a header and rows. */
export function toCsv(header: string[], rows: string[][]): string {
  const field = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [header, ...rows].map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}
