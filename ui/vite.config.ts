import { defineConfig } from "vite";

// Preact through esbuild's automatic JSX runtime: no framework plugin needed.
// `npm run dev` proxies the API to a running `sightline serve` (SIGHTLINE_URL, default :4318).
export default defineConfig({
  base: "/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { target: "es2020", sourcemap: false, chunkSizeWarningLimit: 800 },
  server: {
    proxy: { "/api": process.env.SIGHTLINE_URL ?? "http://127.0.0.1:4318" },
  },
});
