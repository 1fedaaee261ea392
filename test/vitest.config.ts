import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

// Integration tests start real services (Ceph radosgw, PostgreSQL, dockerd, sshd, cron);
// the machine has 2 cores, so test files run at most two at a time and get generous timeouts.
export default defineConfig({
  // examples/ import the package by name: in tests that is its source, not dist/ (which only
  // `npm run build` makes, and test/integration/package.test.ts rebuilds while it runs).
  resolve: { alias: { restorable: resolve(__dirname, "../infra/lib.ts") } },
  test: {
    root: ".",
    include: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    maxWorkers: 2,
    // json: the counts .ci/run prints as its closing "N passed, N failed" line.
    reporters: ["default", "json"],
    outputFile: { json: "test-results/vitest.json" },
  },
});
