// The hooks' tests: React's development build (StrictMode's double effects on) in happy-dom.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "happy-dom",
    include: ["test/**/*.test.ts"],
  },
});
