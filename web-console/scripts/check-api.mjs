// Fails when src/api/schema.d.ts differs from what openapi-typescript generates from
// ../openapi/openapi.json, so an API change that the console has not picked up breaks the build.
// Fix with `npm run gen:api`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'check-api-'));
const out = join(dir, 'schema.d.ts');
try {
  execFileSync(join(root, 'node_modules/.bin/openapi-typescript'), [join(root, '../openapi/openapi.json'), '-o', out], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const fresh = readFileSync(out, 'utf8');
  const committed = readFileSync(join(root, 'src/api/schema.d.ts'), 'utf8');
  if (fresh !== committed) {
    console.error('src/api/schema.d.ts is out of date with openapi/openapi.json: run `npm run gen:api` and commit it.');
    process.exit(1);
  }
  console.log('API types match openapi/openapi.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
