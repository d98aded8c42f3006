import { defineConfig } from "vitest/config";

// Test tiers (STYLE.md): unit tests beside the code (`*.test.ts`), integration
// tests that start real servers (`*.int.test.ts`), end-to-end tests in `test/`.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/{src,test}/**/*.test.ts", "services/*/{src,test}/**/*.test.ts"],
          exclude: ["**/*.int.test.ts", "**/node_modules/**"],
        },
      },
      {
        extends: true,
        test: {
          name: "int",
          include: ["packages/*/{src,test}/**/*.int.test.ts", "services/*/{src,test}/**/*.int.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["test/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
