// drizzle-kit settings for `deno task db:generate` (writes SQL migrations into db/migrations).
// A tool, not in the import map: the server's first start fetches only what the server imports.
// deno-lint-ignore no-import-prefix
import { defineConfig } from "npm:drizzle-kit@0.31.11";

export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
});
