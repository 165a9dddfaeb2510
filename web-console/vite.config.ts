// Vite config: Preact, and in `npm run dev` a proxy of /api (and health endpoints) to the control plane
// given by CP_URL (default http://127.0.0.1:8080), so the console runs against a real API while editing.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

const target = process.env.CP_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [preact()],
  server: { proxy: { '/api': target, '/readyz': target, '/healthz': target } },
  preview: { proxy: { '/api': target } },
  build: { target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 200 },
});
