import { defineConfig } from "vitest/config";

export default defineConfig({
  // The browser build of tus-js-client, as Next bundles it (its "browser" field), not the Node one.
  resolve: { alias: [{ find: /^tus-js-client$/, replacement: "tus-js-client/lib.esm/browser/index.js" }] },
  test: { environment: "happy-dom", include: ["lib/**/*.test.ts"] },
});
