// drizzle-kit settings for `deno task db:generate` (writes SQL migrations into db/migrations).
import { defineConfig } from "npm:drizzle-kit@0.31.11";

export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema.ts",
  out: "./db/migrations",
});
